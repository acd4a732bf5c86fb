/* The runner with the real runtimes on a ladder bundle (one file per backend, an entry point per rung) built by
 * restnetc: memory shrinking on a fixture tree walks it down through every rung, memory coming back walks it up
 * again, and every rung gives the Python runtimes' logits. The ladder file is spoiled on disk once the runner has
 * opened it, so every switch is served from the program opened then.
 *
 * usage: test_ladder BUNDLE LIBLITERT WORKDIR EXPECTED INPUT_F32
 * BUNDLE is modified (pass a copy); its index gives the rungs of each backend memory needs 100, 200, ... MiB in
 * order of accuracy. EXPECTED has a line "BACKEND ID LOGIT..." per artifact. ExecuTorch is tested when this
 * program is built with it (RS_WITH_EXECUTORCH). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "restnet_shim.h"
#include "restnet_shim_litert.h"
#ifdef RS_WITH_EXECUTORCH
#include "restnet_shim_executorch.h"
#endif

#define MIB (1024ull * 1024ull)
#define HEADROOM MIB
#define MAX_CLASSES 64

static const char *bundle_dir, *workdir, *expected_path;
static float input[1 << 16];
static size_t input_count;

static void set_available(uint64_t bytes) {
    char path[4200];
    snprintf(path, sizeof path, "%s/proc/meminfo", workdir);
    FILE *file = fopen(path, "w");
    if (file == NULL || fprintf(file, "MemTotal: 99999999 kB\nMemAvailable: %llu kB\n",
                                (unsigned long long)(bytes / 1024)) < 0) {
        exit(2);
    }
    fclose(file);
}

/* The Python runtimes' logits for `id` of `backend`, from EXPECTED; 0 if absent. */
static size_t expected_logits(const char *backend, const char *id, float *logits) {
    FILE *file = fopen(expected_path, "r");
    char line[8192];
    size_t count = 0;
    while (file != NULL && count == 0 && fgets(line, sizeof line, file) != NULL) {
        char *save = NULL, *b = strtok_r(line, " \n", &save), *i = strtok_r(NULL, " \n", &save);
        if (b == NULL || i == NULL || strcmp(b, backend) != 0 || strcmp(i, id) != 0) continue;
        for (char *v = strtok_r(NULL, " \n", &save); v != NULL && count < MAX_CLASSES; v = strtok_r(NULL, " \n", &save)) {
            logits[count++] = strtof(v, NULL);
        }
    }
    if (file != NULL) fclose(file);
    return count;
}

static void check_runs(rs_runner *runner, const rs_bundle *bundle, const char *backend) {
    const rs_artifact *a = rs_runner_current(runner);
    float logits[MAX_CLASSES], want[MAX_CLASSES];
    size_t classes = rs_bundle_label_count(bundle);
    rs_error err = {RS_OK, ""};
    CHECK(a != NULL && rs_runner_run(runner, input, input_count, logits, classes, &err) == RS_OK, "%s run: %s",
          backend, err.message);
    CHECK(a != NULL && expected_logits(backend, a->id, want) == classes, "%s: expected logits of %s", backend,
          a ? a->id : "(none)");
    for (size_t i = 0; a != NULL && i < classes; i++) {
        CHECK(fabsf(logits[i] - want[i]) <= 1e-5f, "%s %s logit %zu: %g vs %g", backend, a->id, i, logits[i],
              want[i]);
    }
}

/* The rungs of `backend` in order of memory need, and the ladder file they share. */
static size_t rungs(const rs_bundle *bundle, const char *backend, const rs_artifact **out) {
    size_t count = 0;
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        if (strcmp(a->backend, backend) != 0) continue;
        size_t at = count++;
        while (at > 0 && out[at - 1]->memory_bytes > a->memory_bytes) {
            out[at] = out[at - 1];
            at--;
        }
        out[at] = a;
    }
    return count;
}

static void walk(const rs_backend *backend) {
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle;
    if (rs_bundle_open(bundle_dir, &bundle, &err) != RS_OK) {
        fprintf(stderr, "open: %s\n", err.message);
        exit(2);
    }
    const rs_artifact *ladder[RS_MAX_ARTIFACTS];
    size_t count = rungs(bundle, backend->name, ladder);
    CHECK(count >= 3, "%s: %zu rungs", backend->name, count);
    for (size_t i = 1; i < count; i++) {
        CHECK(strcmp(ladder[i]->file, ladder[0]->file) == 0, "%s: not one ladder file", backend->name);
    }
    set_available(1 << 30);
    rs_policy policy = {backend->name, HEADROOM, 0.0, NULL, 0};
    rs_runner *runner;
    CHECK(rs_runner_open(bundle, &policy, backend, workdir, &runner, &err) == RS_OK, "%s: %s", backend->name,
          err.message);
    if (failures) exit(1);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", bundle_dir, ladder[0]->file);
    FILE *spoil = fopen(path, "w");
    if (spoil == NULL || fputs("spoiled", spoil) < 0) exit(2);
    fclose(spoil);
    CHECK(rs_runner_current(runner) == ladder[count - 1], "%s: opened on the top rung", backend->name);
    check_runs(runner, bundle, backend->name);
    /* Nothing free beside the rung in use: each refresh steps down one rung (100 MiB apart). */
    set_available(0);
    for (size_t k = count - 1; k-- > 0;) {
        int switched = 0;
        CHECK(rs_runner_refresh(runner, &switched, &err) == RS_OK && switched, "%s down: %s", backend->name,
              err.message);
        CHECK(rs_runner_current(runner) == ladder[k], "%s: down to %s, not %s", backend->name, ladder[k]->id,
              rs_runner_current(runner)->id);
        check_runs(runner, bundle, backend->name);
    }
    /* 100 MiB more than the rung in use needs, plus the headroom: each refresh steps up one rung. */
    set_available(100 * MIB + HEADROOM);
    for (size_t k = 1; k < count; k++) {
        int switched = 0;
        CHECK(rs_runner_refresh(runner, &switched, &err) == RS_OK && switched, "%s up: %s", backend->name,
              err.message);
        CHECK(rs_runner_current(runner) == ladder[k], "%s: up to %s, not %s", backend->name, ladder[k]->id,
              rs_runner_current(runner)->id);
        check_runs(runner, bundle, backend->name);
    }
    rs_runner_close(runner);
    rs_bundle_close(bundle);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: test_ladder BUNDLE LIBLITERT WORKDIR EXPECTED INPUT_F32\n");
        return 2;
    }
    bundle_dir = argv[1];
    workdir = argv[3];
    expected_path = argv[4];
    FILE *file = fopen(argv[5], "rb");
    input_count = file != NULL ? fread(input, sizeof *input, sizeof input / sizeof *input, file) : 0;
    if (file != NULL) fclose(file);
    char proc[4200];
    snprintf(proc, sizeof proc, "%s/proc", workdir);
    mkdir(proc, 0755);
    rs_error err = {RS_OK, ""};
    rs_backend litert;
    if (input_count == 0 || rs_litert_backend_open(argv[2], &litert, &err) != RS_OK) {
        fprintf(stderr, "setup: %s\n", input_count == 0 ? "no input" : err.message);
        return 2;
    }
    walk(&litert);
    rs_backend_close(&litert);
#ifdef RS_WITH_EXECUTORCH
    rs_backend executorch;
    rs_status opened = rs_executorch_backend_open(&executorch, &err);
    CHECK(opened == RS_OK, "%s", err.message);
    if (opened == RS_OK) {
        walk(&executorch);
        rs_backend_close(&executorch);
    }
#endif
    printf("%s (%d failures)\n", failures ? "FAILED" : "all ladder tests passed", failures);
    return failures ? 1 : 0;
}
