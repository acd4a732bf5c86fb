/* The runner with the real LiteRT backend on a bundle built by restnetc (paths given by the caller):
 * loading, running, switching variants in the documented order (release-then-load unless both fit, a rung left
 * resident taking over without a load), and a variant's file replaced on disk by another valid model (the
 * loaded bytes keep running; the new ones never).
 * The bundle directory is modified: pass a copy.
 *
 * usage: test_litert BUNDLE LIBLITERT PLENTY_ROOT
 * The backend is wrapped to record the order of its calls; every call goes to LiteRT. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "restnet_shim.h"
#include "restnet_shim_litert.h"

#define MIB (1024ull * 1024ull)

static char events[24][80];
static int event_count = 0;
static rs_backend real;


typedef struct {
    void *model;
    char id[64];
} recorded;

static void note(const char *what, const char *id) {
    if (event_count < 24) snprintf(events[event_count++], sizeof events[0], "%s %.63s", what, id);
}

static rs_status open_program(void *context, const void *data, size_t size, const rs_artifact *artifact,
                              void **program, rs_error *err) {
    (void)context;
    rs_status status = real.open(real.context, data, size, artifact, program, err);
    if (status == RS_OK) note("open", artifact->file);
    return status;
}

static void close_program(void *program) {
    note("close", "");
    real.close(program);
}

static rs_status load(void *program, const rs_artifact *artifact, void **model, rs_error *err) {
    recorded *r = calloc(1, sizeof *r);
    rs_status status = real.load(program, artifact, &r->model, err);
    if (status != RS_OK) {
        free(r);
        return status;
    }
    snprintf(r->id, sizeof r->id, "%s", artifact->id);
    note("load", r->id);
    *model = r;
    return RS_OK;
}

static rs_status run(void *model, const void *in, size_t in_bytes, void *out, size_t out_bytes, rs_error *err) {
    return real.run(((recorded *)model)->model, in, in_bytes, out, out_bytes, err);
}

static void unload(void *model) {
    recorded *r = model;
    note("unload", r->id);
    real.unload(r->model);
    free(r);
}

/* Runs a zero image (logits into `logits`, 64 at most) and checks a short input is refused. */
static void run_once(rs_runner *runner, const rs_bundle *bundle) {
    static float logits[64];
    const rs_input_spec *spec = rs_bundle_input(bundle);
    size_t count = (size_t)spec->shape[1] * spec->shape[2] * spec->shape[3];
    float *input = calloc(count, sizeof *input);
    rs_error err = {RS_OK, ""};
    rs_status status = rs_runner_run(runner, input, count, logits, rs_bundle_label_count(bundle), &err);
    CHECK(status == RS_OK, "run %s: %s", rs_runner_current(runner)->id, err.message);
    status = rs_runner_run(runner, input, count - 1, logits, rs_bundle_label_count(bundle), &err);
    CHECK(status == RS_ERR_ARGUMENT && strstr(err.message, "expected") != NULL, "short input: %s", err.message);
    input[0] = NAN;
    status = rs_runner_run(runner, input, count, logits, rs_bundle_label_count(bundle), &err);
    CHECK(status == RS_ERR_ARGUMENT && strstr(err.message, "not finite") != NULL, "NaN input: %s", err.message);
    free(input);
}

static void run_zero(rs_runner *runner, const rs_bundle *bundle, float *logits) {
    const rs_input_spec *spec = rs_bundle_input(bundle);
    size_t count = (size_t)spec->shape[1] * spec->shape[2] * spec->shape[3];
    float *input = calloc(count, sizeof *input);
    rs_error err = {RS_OK, ""};
    CHECK(rs_runner_run(runner, input, count, logits, rs_bundle_label_count(bundle), &err) == RS_OK, "%s",
          err.message);
    free(input);
}

/* Replaces `to`'s file in `dir` by a copy of `from`'s (a valid model of the same kind), as an update would. */
static void replace_file(const char *dir, const rs_artifact *to, const rs_artifact *from) {
    char source[4200], temporary[4200], target[4200], command[17000];
    snprintf(source, sizeof source, "%s/%s", dir, from->file);
    snprintf(temporary, sizeof temporary, "%s/%s.new", dir, to->file);
    snprintf(target, sizeof target, "%s/%s", dir, to->file);
    snprintf(command, sizeof command, "cp '%s' '%s' && mv '%s' '%s'", source, temporary, temporary, target);
    if (system(command) != 0) exit(2);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_litert BUNDLE LIBLITERT PLENTY_ROOT\n");
        return 2;
    }
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle;
    if (rs_bundle_open(argv[1], &bundle, &err) != RS_OK || rs_litert_backend_open(argv[2], &real, &err) != RS_OK) {
        fprintf(stderr, "setup: %s\n", err.message);
        return 2;
    }
    rs_backend wrapped = {"litert", NULL, open_program, load, run, unload, close_program, NULL};
    /* Headroom above every need, so that any two needs plus a free figure can be told apart. */
    uint64_t headroom = 64 * MIB;
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        uint64_t need = rs_bundle_artifact(bundle, i)->memory_bytes + 64 * MIB;
        headroom = need > headroom ? need : headroom;
    }
    rs_policy policy = {"litert", headroom, 0.0, NULL, 0};
    rs_runner *runner;
    CHECK(rs_runner_open(bundle, &policy, &wrapped, argv[3], &runner, &err) == RS_OK, "open: %s", err.message);
    if (failures) return 1;
    const rs_artifact *best = rs_runner_current(runner);
    run_once(runner, bundle);

    /* The LiteRT variant with the smallest memory need other than the best one. */
    const rs_artifact *small = NULL;
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        if (strcmp(a->backend, "litert") == 0 && a != best && a->memory_bytes < best->memory_bytes &&
            (small == NULL || a->memory_bytes < small->memory_bytes)) {
            small = a;
        }
    }
    CHECK(small != NULL, "the bundle needs two LiteRT variants of different memory needs");
    if (small == NULL) return 1;

    /* Memory pressure: with the best one's memory given back, only `small` fits, and not beside it. */
    int switched = 0;
    uint64_t available = small->memory_bytes + headroom - best->memory_bytes;
    CHECK(rs_runner_refresh_with(runner, available, &switched, &err) == RS_OK, "down: %s", err.message);
    CHECK(switched && rs_runner_current(runner) == small, "switched down to %s", rs_runner_current(runner)->id);
    CHECK(event_count == 6 && strncmp(events[2], "unload", 6) == 0 && strncmp(events[3], "close", 5) == 0 &&
              strncmp(events[4], "open", 4) == 0 && strncmp(events[5], "load", 4) == 0,
          "release first when both do not fit: %s, %s, %s, %s", events[2], events[3], events[4], events[5]);
    run_once(runner, bundle);

    /* Nothing fits even after releasing (the headroom alone exceeds what is there): an error, and the variant
     * in use keeps running, nothing loaded or released. */
    rs_status none = rs_runner_refresh_with(runner, 0, &switched, &err);
    CHECK(none == RS_ERR_NOTHING_FITS && !switched && rs_runner_current(runner) == small && event_count == 6,
          "nothing fits: %s (%s), on %s", rs_status_name(none), err.message, rs_runner_current(runner)->id);
    run_once(runner, bundle);

    /* Memory is back: both fit, so the best one is loaded beside `small`, which stays resident. */
    CHECK(rs_runner_refresh_with(runner, 4096 * MIB, &switched, &err) == RS_OK, "up: %s", err.message);
    CHECK(switched && rs_runner_current(runner) == best, "switched up to %s", rs_runner_current(runner)->id);
    CHECK(event_count == 8 && strncmp(events[6], "open", 4) == 0 && strncmp(events[7], "load", 4) == 0,
          "load beside when both fit: %d events, %s, %s", event_count, events[6], events[7]);
    CHECK(rs_runner_refresh_with(runner, 4096 * MIB, &switched, &err) == RS_OK && !switched, "stays");
    run_once(runner, bundle);

    /* The best variant's file replaced by another valid model while it runs: the verified bytes keep running. */
    CHECK(rs_runner_current(runner) == best, "back on %s", best->id);
    size_t classes = rs_bundle_label_count(bundle);
    float before[64], after[64];
    run_zero(runner, bundle, before);
    replace_file(argv[1], best, small);
    run_zero(runner, bundle, after);
    CHECK(memcmp(before, after, classes * sizeof *before) == 0, "the loaded bytes still run after the replacement");
    /* Under pressure `small`, still resident, takes over without a load (the best one no longer fits even with
     * small's memory given back) and the best one is unloaded for the headroom: its bytes are gone... */
    CHECK(rs_runner_refresh_with(runner, headroom - best->memory_bytes, &switched, &err) == RS_OK && switched,
          "down: %s", err.message);
    CHECK(rs_runner_current(runner) == small && event_count == 10 && strncmp(events[8], "unload", 6) == 0 &&
              strncmp(events[9], "close", 5) == 0,
          "small without a load, best unloaded: on %s, %d events, %s, %s", rs_runner_current(runner)->id,
          event_count, events[8], events[9]);
    /* ...so going back up reads the replaced file, which is refused with the reason instead of running. */
    rs_status status = rs_runner_refresh_with(runner, 4096 * MIB, &switched, &err);
    CHECK((status == RS_ERR_SIZE || status == RS_ERR_DIGEST) && !switched && strstr(err.message, best->id) != NULL,
          "replaced: %s (%s)", rs_status_name(status), err.message);
    CHECK(rs_runner_current(runner) == small, "stays on %s", rs_runner_current(runner)->id);
    run_once(runner, bundle);
    /* The refusal is remembered: the next refresh takes the most accurate of the others, and then stays. */
    CHECK(rs_runner_refresh_with(runner, 4096 * MIB, &switched, &err) == RS_OK, "%s", err.message);
    CHECK(rs_runner_current(runner) != best, "never back to %s", best->id);
    CHECK(rs_runner_refresh_with(runner, 4096 * MIB, &switched, &err) == RS_OK && !switched, "settled");
    run_once(runner, bundle);

    rs_runner_close(runner);
    rs_backend_close(&real);
    rs_bundle_close(bundle);
    printf("%s (%d failures)\n", failures ? "FAILED" : "all runner tests passed", failures);
    return failures ? 1 : 0;
}
