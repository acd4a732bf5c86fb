/* The runner's contracts with a scripted backend over real files: it receives exactly the verified bytes,
 * recovers after a failed switch and restore, refuses non-finite input, does not flap when a variant takes
 * more memory than the index says, and is safe with two threads (run under TSan and ASan by the Python suite).
 *
 * The scripted backend's program is the file's bytes and its "model" two of them: the first two for entry
 * point `forward`, bytes 2k and 2k+1 for `e<k>` (a ladder file), which become the logits, so a test sees which
 * bytes run. Loads fail on demand, and each load can take memory from a fixture meminfo file. A ladder bundle
 * holds the three variants in one file whose copy on disk a test may spoil once it is open.
 *
 * usage: test_runner WORKDIR */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"
#include "restnet_shim.h"

#define MIB (1024ull * 1024ull)
#define CLASSES 2

static const char *workdir;

/* ---- the scripted backend ---- */
typedef struct {
    int fail_loads, fail_opens;     /* loads and opens still to fail */
    rs_status failure;              /* what a scripted failure returns: RS_ERR_BACKEND unless set */
    int refused_opens;              /* opens failed so far */
    int opens, closes, loads, unloads; /* successful calls so far */
    uint64_t program_taken;         /* what an open program takes from the meminfo fixture (loads take the rest) */
    int unreadable_after_open;      /* opens leave the meminfo fixture unreadable (until a load rewrites it) */
    char inflated[64];     /* loads of this id take 1.15 x the index figure from the meminfo fixture, others 1 x */
    char meminfo[2200];
    uint64_t mem_available;
    pthread_mutex_t lock;
} script;

typedef struct {
    script *script;
    unsigned char first[CLASSES];
    uint64_t taken;
} model;

static void write_text(const char *path, const char *text) {
    FILE *file = fopen(path, "w");
    if (file == NULL || fputs(text, file) < 0) exit(2);
    fclose(file);
}

static void set_meminfo(script *s, uint64_t available) {
    char text[128];
    s->mem_available = available;
    snprintf(text, sizeof text, "MemTotal: 99999999 kB\nMemAvailable: %llu kB\n",
             (unsigned long long)(available / 1024));
    write_text(s->meminfo, text);
}

static void count(script *s, int *counter) {
    pthread_mutex_lock(&s->lock);
    (*counter)++;
    pthread_mutex_unlock(&s->lock);
}

typedef struct {
    script *script;
    const unsigned char *data;
    size_t size;
} program;

static rs_status open_program(void *context, const void *data, size_t size, const rs_artifact *artifact, void **out,
                              rs_error *err) {
    script *s = context;
    const char *file = artifact->file;
    pthread_mutex_lock(&s->lock);
    int fail = s->fail_opens > 0;
    s->fail_opens -= fail;
    s->refused_opens += fail;
    pthread_mutex_unlock(&s->lock);
    if (fail) {
        return rs_error_set(err, s->failure ? s->failure : RS_ERR_BACKEND, "%s: scripted open failure", file);
    }
    program *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return rs_error_set(err, RS_ERR_NO_MEMORY, "%s: cannot allocate", file);
    }
    *p = (program){context, data, size};
    count(p->script, &p->script->opens);
    set_meminfo(s, s->mem_available > s->program_taken ? s->mem_available - s->program_taken : 0);
    if (s->unreadable_after_open) {
        write_text(s->meminfo, "not a meminfo file\n");
    }
    *out = p;
    return RS_OK;
}

static void close_program(void *handle) {
    program *p = handle;
    count(p->script, &p->script->closes);
    set_meminfo(p->script, p->script->mem_available + p->script->program_taken);
    free(p);
}

static rs_status load(void *handle, const rs_artifact *artifact, void **out, rs_error *err) {
    program *p = handle;
    script *s = p->script;
    pthread_mutex_lock(&s->lock);
    int fail = s->fail_loads > 0;
    s->fail_loads -= fail;
    pthread_mutex_unlock(&s->lock);
    size_t offset = artifact->entry_point[0] == 'e' ? 2 * (size_t)atoi(artifact->entry_point + 1) : 0;
    if (fail || p->size < offset + CLASSES) {
        return rs_error_set(err, fail && s->failure ? s->failure : RS_ERR_BACKEND, "%s: scripted load failure",
                            artifact->id);
    }
    count(s, &s->loads);
    model *m = calloc(1, sizeof *m);
    m->script = s;
    memcpy(m->first, p->data + offset, CLASSES);
    double factor = strcmp(artifact->id, s->inflated) == 0 ? 1.15 : 1.0;
    m->taken = (uint64_t)(factor * (double)(artifact->memory_bytes - artifact->program_memory_bytes));
    set_meminfo(s, s->mem_available > m->taken ? s->mem_available - m->taken : 0);
    *out = m;
    return RS_OK;
}

static rs_status run(void *handle, const void *input, size_t input_bytes, void *output, size_t output_bytes,
                     rs_error *err) {
    model *m = handle;
    (void)input;
    if (output_bytes != CLASSES * sizeof(float) || input_bytes == 0) {
        return rs_error_set(err, RS_ERR_BACKEND, "unexpected tensor sizes");
    }
    float *logits = output;
    for (int i = 0; i < CLASSES; i++) logits[i] = m->first[i];
    return RS_OK;
}

static void unload(void *handle) {
    model *m = handle;
    count(m->script, &m->script->unloads);
    set_meminfo(m->script, m->script->mem_available + m->taken);
    free(m);
}

/* ---- a bundle of three float variants whose files start with distinct bytes ---- */
typedef struct {
    const char *id;
    double accuracy;
    uint64_t memory_mib;
} variant;

static const variant LADDER[] = {{"small", 80, 10}, {"middle", 81, 20}, {"large", 82, 40}};

/* Writes the bundle `name`: one file per variant, or with `ladder` one file holding all three, and with
 * `ladder` 2 also `other` (30 MiB, the least accurate) in a file of its own; with `ladder` 3 `other` is the
 * most accurate. With `ladder` 4 the ladder file's program holds 30 MiB (`program=`), and each rung needs that
 * plus its entry's 10, 20 or 40. */
static void make_bundle(const char *name, int ladder, char *dir, size_t size) {
    snprintf(dir, size, "%s/%s", workdir, name);
    char path[4300], body[4096], content[64], hex[65];
    mkdir(dir, 0755);
    int used = snprintf(body, sizeof body, "input shape=1,3,2,2 mean=0,0,0 std=1,1,1\nlabel a\nlabel b\n");
    int length = snprintf(content, sizeof content, "AaBbCc ladder");
    if (ladder) {
        snprintf(path, sizeof path, "%s/ladder.bin", dir);
        write_text(path, content);
        rs_sha256_hex(content, (size_t)length, hex);
    }
    for (size_t i = 0; i < 3; i++) {
        char file[80], entry[16];
        snprintf(file, sizeof file, "%s", ladder ? "ladder" : LADDER[i].id);
        snprintf(entry, sizeof entry, ladder ? "e%zu" : "forward", i);
        if (!ladder) {
            length = snprintf(content, sizeof content, "%c%c model %s", 'A' + (int)i, 'a' + (int)i, LADDER[i].id);
            rs_sha256_hex(content, (size_t)length, hex);
            snprintf(path, sizeof path, "%s/%s.bin", dir, file);
            write_text(path, content);
        }
        used += snprintf(body + used, sizeof body - (size_t)used,
                         "artifact id=%s backend=scripted file=%s.bin bytes=%d sha256=%s memory=%llu program=%llu "
                         "accuracy=%.1f params=1 entry=%s in=float32:1:0 out=float32:1:0 layout=NCHW\n",
                         LADDER[i].id, file, length, hex,
                         (unsigned long long)((LADDER[i].memory_mib + (ladder == 4 ? 30 : 0)) * MIB),
                         (unsigned long long)(ladder == 4 ? 30 * MIB : 0), LADDER[i].accuracy, entry);
    }
    if (ladder == 2 || ladder == 3) {
        length = snprintf(content, sizeof content, "Oo model other");
        rs_sha256_hex(content, (size_t)length, hex);
        snprintf(path, sizeof path, "%s/other.bin", dir);
        write_text(path, content);
        used += snprintf(body + used, sizeof body - (size_t)used,
                         "artifact id=other backend=scripted file=other.bin bytes=%d sha256=%s memory=%llu "
                         "accuracy=%.1f params=1 entry=forward in=float32:1:0 out=float32:1:0 layout=NCHW\n",
                         length, hex, (unsigned long long)(30 * MIB), ladder == 3 ? 90.0 : 79.0);
    }
    char text[8192];
    rs_sha256_hex(body, strlen(body), hex);
    snprintf(path, sizeof path, "%s/bundle.index", dir);
    snprintf(text, sizeof text, "restnet-bundle-index 3\nidentity %s\n%s", hex, body);
    write_text(path, text);
}

static const char *current(rs_runner *runner) {
    const rs_artifact *a = rs_runner_current(runner);
    return a ? a->id : "(none)";
}

static rs_status run_once(rs_runner *runner, float logits[CLASSES], rs_error *err) {
    float input[12] = {0};
    return rs_runner_run(runner, input, 12, logits, CLASSES, err);
}

typedef struct {
    char dir[2048];
    char root[2100];
    script script;
    rs_backend backend;
    rs_bundle *bundle;
    rs_runner *runner;
} fixture;

static void setup_with(fixture *f, const char *name, int ladder, uint64_t available, uint64_t headroom,
                       int preload_neighbours) {
    memset(f, 0, sizeof *f);
    make_bundle(name, ladder, f->dir, sizeof f->dir);
    snprintf(f->root, sizeof f->root, "%s-root", f->dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/proc", f->root);
    mkdir(f->root, 0755);
    mkdir(path, 0755);
    snprintf(f->script.meminfo, sizeof f->script.meminfo, "%s/proc/meminfo", f->root);
    pthread_mutex_init(&f->script.lock, NULL);
    set_meminfo(&f->script, available);
    f->script.program_taken = ladder == 4 ? 30 * MIB : 0;
    f->backend = (rs_backend){"scripted", &f->script, open_program, load, run, unload, close_program, NULL};
    rs_error err = {RS_OK, ""};
    rs_policy policy = {"scripted", headroom, 0.1, NULL, preload_neighbours};
    if (rs_bundle_open(f->dir, &f->bundle, &err) != RS_OK ||
        rs_runner_open(f->bundle, &policy, &f->backend, f->root, &f->runner, &err) != RS_OK) {
        fprintf(stderr, "setup %s: %s\n", name, err.message);
        exit(2);
    }
}

static void setup(fixture *f, const char *name, int ladder, uint64_t available, uint64_t headroom) {
    setup_with(f, name, ladder, available, headroom, 0);
}

static void teardown(fixture *f) {
    rs_runner_close(f->runner);
    rs_bundle_close(f->bundle);
    pthread_mutex_destroy(&f->script.lock);
}

/* ---- tests ---- */

static void test_runs_the_verified_bytes_and_refuses_non_finite_input(void) {
    fixture f;
    setup(&f, "bytes", 0, 1000 * MIB, 0);
    float logits[CLASSES];
    rs_error err = {RS_OK, ""};
    CHECK(strcmp(current(f.runner), "large") == 0, "opened on %s", current(f.runner));
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'C' && logits[1] == 'c', "large's bytes ran");
    float input[12] = {0};
    input[5] = INFINITY;
    CHECK(rs_runner_run(f.runner, input, 12, logits, CLASSES, &err) == RS_ERR_ARGUMENT &&
              strstr(err.message, "input value 5 is not finite") != NULL, "%s", err.message);
    teardown(&f);
}

static void test_a_failed_switch_restores_the_variant_in_use(void) {
    fixture f;
    setup(&f, "restore", 0, 1000 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    float logits[CLASSES];
    CHECK(strcmp(current(f.runner), "large") == 0, "starts on large, not %s", current(f.runner));
    /* 5 MiB free beside `large`: `middle` fits only once `large` is released. Its load fails, and `large`
     * comes back from the verified bytes the runner kept: the same variant, its bytes, still running. */
    f.script.fail_loads = 1;
    int loads = f.script.loads, unloads = f.script.unloads;
    rs_status status = rs_runner_refresh_with(f.runner, 5 * MIB, &switched, &err);
    CHECK(status == RS_ERR_BACKEND && !switched && strcmp(current(f.runner), "large") == 0, "kept %s (%s: %s)",
          current(f.runner), rs_status_name(status), err.message);
    CHECK(f.script.fail_loads == 0 && f.script.unloads == unloads + 1 && f.script.loads == loads + 1,
          "released large, middle refused, large loaded again: %d unload(s), %d load(s)",
          f.script.unloads - unloads, f.script.loads - loads);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'C', "large runs again: %s", err.message);
    /* Under the same pressure the next refresh skips the refused `middle` and moves to `small`. */
    status = rs_runner_refresh_with(f.runner, 5 * MIB, &switched, &err);
    CHECK(status == RS_OK && switched && strcmp(current(f.runner), "small") == 0, "moved to %s: %s",
          current(f.runner), err.message);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'A', "small runs: %s", err.message);
    teardown(&f);
}

/* Refreshes `f`'s runner with `available` bytes given, or with `probed` memory set to them in the fixture. */
static rs_status refresh_at(fixture *f, int probed, uint64_t available, int *switched, rs_error *err) {
    if (!probed) {
        return rs_runner_refresh_with(f->runner, available, switched, err);
    }
    set_meminfo(&f->script, available);
    return rs_runner_refresh(f->runner, switched, err);
}

/* A switch failing for want of memory is no refusal, but with no more room it is not tried again (that released
 * and restored `large` on every refresh): the room when `middle` failed was 5 free + 40 of `large`; at 5 free
 * again the refresh moves to `small`, and at 35 free beside `small` (room 45 again; what `small`'s switch leaves
 * when probed) it stays there. The free figure alone rose from 5 to 35 and let `middle` be tried, releasing
 * `small`. At 40 free (room 50) `middle` is tried again and loads. Given figures or probed memory alike. */
static void test_a_switch_that_ran_out_of_memory_waits_for_more_room(void) {
    for (int probed = 0; probed < 2; probed++) {
        fixture f;
        setup(&f, probed ? "no-memory-probed" : "no-memory", 0, 1000 * MIB, 16 * MIB);
        rs_error err = {RS_OK, ""};
        int switched = 0;
        f.script.fail_loads = 1;
        f.script.failure = RS_ERR_NO_MEMORY;
        rs_status status = refresh_at(&f, probed, 5 * MIB, &switched, &err);
        CHECK(status == RS_ERR_NO_MEMORY && !switched && strcmp(current(f.runner), "large") == 0,
              "probed %d: kept %s (%s)", probed, current(f.runner), rs_status_name(status));
        status = refresh_at(&f, probed, 5 * MIB, &switched, &err);
        CHECK(status == RS_OK && switched && strcmp(current(f.runner), "small") == 0,
              "probed %d, 5 MiB: moved to %s: %s", probed, current(f.runner), err.message);
        int loads = f.script.loads;
        status = refresh_at(&f, probed, 35 * MIB, &switched, &err);
        CHECK(status == RS_OK && !switched && f.script.loads == loads && strcmp(current(f.runner), "small") == 0,
              "probed %d, 35 MiB beside small: on %s after %d load(s)", probed, current(f.runner),
              f.script.loads - loads);
        status = refresh_at(&f, probed, 40 * MIB, &switched, &err);
        CHECK(status == RS_OK && switched && strcmp(current(f.runner), "middle") == 0,
              "probed %d, 40 MiB: moved to %s: %s", probed, current(f.runner), err.message);
        teardown(&f);
    }
}

/* A probe failing inside a load (the meminfo file unreadable between opening `middle`'s program and loading it)
 * measures nothing, so the rung is charged the index's figures. Charged nothing, its 20 MiB went uncounted:
 * with 2 MiB free, `large` (40 + 16 of headroom) then looked as if it could not stay beside it, and the runner
 * moved to `middle`. Counted, `large` stays and `middle` is unloaded to leave the headroom. */
static void test_a_probe_failing_inside_a_load_charges_the_index_figures(void) {
    fixture f;
    setup(&f, "probe-fails", 0, 1000 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0, middle = 0;
    f.script.unreadable_after_open = 1;
    CHECK(rs_runner_preload(f.runner, "middle", &err) == RS_OK, "preload middle: %s", err.message);
    f.script.unreadable_after_open = 0;
    set_meminfo(&f.script, 2 * MIB);
    CHECK(rs_runner_refresh(f.runner, &switched, &err) == RS_OK && !switched &&
              strcmp(current(f.runner), "large") == 0,
          "2 MiB free beside middle: on %s (%s)", current(f.runner), err.message);
    CHECK(rs_runner_resident(f.runner, "middle", &middle, &err) == RS_OK && middle == 0 && f.script.unloads == 1,
          "middle resident %d after %d unload(s)", middle, f.script.unloads);
    teardown(&f);
}

/* `other` (its own file) runs; with 10 MiB free and 16 of headroom only `middle` fits (10 + 30 >= 20 + 16), and
 * the backend refuses the ladder file it shares with `small` and `large`. `other` comes back, and no rung of the
 * refused file is tried again: with only `small` fitting next (10 MiB free), nothing fits and the file is not
 * read, hashed or opened a second time. */
static void test_a_file_its_backend_refuses_is_not_opened_again_for_its_other_rungs(void) {
    fixture f;
    setup(&f, "refused-program", 3, 1000 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    CHECK(strcmp(current(f.runner), "other") == 0, "opened on %s", current(f.runner));
    f.script.fail_opens = 1;
    rs_status status = rs_runner_refresh_with(f.runner, 10 * MIB, &switched, &err);
    CHECK(status == RS_ERR_BACKEND && strstr(err.message, "ladder.bin: scripted open failure") != NULL &&
              strcmp(current(f.runner), "other") == 0 && f.script.refused_opens == 1,
          "kept %s after %d refused open(s) (%s: %s)", current(f.runner), f.script.refused_opens,
          rs_status_name(status), err.message);
    status = rs_runner_refresh_with(f.runner, 10 * MIB, &switched, &err);
    CHECK(status == RS_ERR_NOTHING_FITS && !switched && strcmp(current(f.runner), "other") == 0 &&
              f.script.refused_opens == 1 && f.script.opens == 2,
          "the refused file opened again: %d refused, %d opens, on %s (%s: %s)", f.script.refused_opens,
          f.script.opens, current(f.runner), rs_status_name(status), err.message);
    teardown(&f);
}

static void test_recovers_after_a_failed_switch_and_restore(void) {
    fixture f;
    setup(&f, "recover", 0, 1000 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    /* 5 MiB free with `large` (40 MiB) loaded, 16 MiB headroom: `middle` (20) fits only once `large` is
     * released; its load and the restore of `large` both fail. */
    f.script.fail_loads = 2;
    rs_status status = rs_runner_refresh_with(f.runner, 5 * MIB, &switched, &err);
    CHECK(status == RS_ERR_NO_MODEL && strstr(err.message, "restoring large failed too") != NULL, "%s (%s)",
          rs_status_name(status), err.message);
    CHECK(rs_runner_current(f.runner) == NULL, "no model, says %s", current(f.runner));
    float logits[CLASSES];
    CHECK(run_once(f.runner, logits, &err) == RS_ERR_NO_MODEL, "run without a model: %s", err.message);
    /* `middle`, which its backend refused, is not tried again: the next refresh loads `small`. */
    status = rs_runner_refresh_with(f.runner, 40 * MIB, &switched, &err);
    CHECK(status == RS_OK && switched && strcmp(current(f.runner), "small") == 0, "reloaded %s: %s",
          current(f.runner), err.message);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'A', "small runs");
    /* A failed load while both fit keeps the variant in use, and is not retried. */
    f.script.fail_loads = 1;
    status = rs_runner_refresh_with(f.runner, 900 * MIB, &switched, &err);
    CHECK(status == RS_ERR_BACKEND && !switched && strcmp(current(f.runner), "small") == 0, "kept %s (%s)",
          current(f.runner), err.message);
    status = rs_runner_refresh_with(f.runner, 900 * MIB, &switched, &err);
    CHECK(status == RS_OK && !switched, "large is not retried: %s", err.message);
    teardown(&f);
}

/* `large` really takes 46 MiB, not the 40 its index says. With 61 MiB free without a model and 16 MiB of
 * headroom, `middle` (20) moves up (61 >= 40 x 1.1 + 16), and `large` then leaves 15 MiB, judged as 15 + 40 <
 * 40 + 16: without measuring, the runner would switch on every refresh. */
static void test_does_not_flap_when_a_variant_is_larger_than_its_index_figure(void) {
    fixture f;
    setup(&f, "flap", 0, 1000 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0, switches = 0;
    CHECK(rs_runner_refresh_with(f.runner, 5 * MIB, &switched, &err) == RS_OK, "%s", err.message);
    CHECK(strcmp(current(f.runner), "middle") == 0, "start on middle, not %s", current(f.runner));
    set_meminfo(&f.script, 41 * MIB);
    snprintf(f.script.inflated, sizeof f.script.inflated, "large");
    for (int i = 0; i < 8; i++) {
        rs_status status = rs_runner_refresh(f.runner, &switched, &err);
        CHECK(status == RS_OK, "refresh %d: %s", i, err.message);
        switches += switched;
    }
    CHECK(switches <= 2 && strcmp(current(f.runner), "middle") == 0, "%d switches in 8 refreshes, now on %s",
          switches, current(f.runner));
    teardown(&f);
}

/* With 30 MiB of headroom, `large` (40) comes up beside `middle` (20) and stays resident; under sudden pressure
 * the runner goes back to `middle` without loading anything, then unloads `large` to restore the headroom. */
static void test_switches_to_a_resident_rung_without_loading(void) {
    fixture f;
    setup(&f, "resident", 0, 60 * MIB, 30 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    float logits[CLASSES];
    CHECK(strcmp(current(f.runner), "middle") == 0 && f.script.loads == 1, "opened on %s", current(f.runner));
    CHECK(rs_runner_refresh_with(f.runner, 1000 * MIB, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "large") == 0 && f.script.loads == 2 && f.script.unloads == 0,
          "large loaded beside middle: on %s, %d loads, %d unloads", current(f.runner), f.script.loads,
          f.script.unloads);
    /* 5 MiB free: large no longer fits even with middle's 20 given back (5 + 40 + 20 < 40 + 30). */
    CHECK(rs_runner_refresh_with(f.runner, 5 * MIB, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "middle") == 0 && f.script.loads == 2, "back on %s with %d loads",
          current(f.runner), f.script.loads);
    CHECK(f.script.unloads == 1 && f.script.closes == 1, "large unloaded for the headroom: %d unloads, %d closes",
          f.script.unloads, f.script.closes);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'B', "middle's bytes run: %s", err.message);
    teardown(&f);
    CHECK(f.script.opens == f.script.closes && f.script.loads == f.script.unloads,
          "close releases everything: %d/%d opens/closes, %d/%d loads/unloads", f.script.opens, f.script.closes,
          f.script.loads, f.script.unloads);
}

/* A ladder file is read and verified once: after that its copy on disk is spoiled, and every rung still loads
 * and runs from the open program, down under pressure, up again beside the other, and back without a load. */
static void test_a_ladder_file_is_read_once_and_its_rungs_switch_without_file_io(void) {
    fixture f;
    setup(&f, "ladder", 1, 1000 * MIB, 30 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    float logits[CLASSES];
    char path[2200];
    snprintf(path, sizeof path, "%s/ladder.bin", f.dir);
    write_text(path, "spoiled");
    CHECK(strcmp(current(f.runner), "large") == 0 && f.script.opens == 1, "opened on %s", current(f.runner));
    /* 10 MiB free, 30 MiB headroom: only middle fits once large is released; the program stays open for it. */
    CHECK(rs_runner_refresh_with(f.runner, 10 * MIB, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "middle") == 0 && f.script.opens == 1 && f.script.closes == 0,
          "middle from the open program: on %s, %d opens, %d closes", current(f.runner), f.script.opens,
          f.script.closes);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'B' && logits[1] == 'b', "middle's entry runs");
    CHECK(rs_runner_refresh_with(f.runner, 1000 * MIB, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "large") == 0 && f.script.loads == 3 && f.script.unloads == 1,
          "large beside middle: on %s, %d loads, %d unloads", current(f.runner), f.script.loads, f.script.unloads);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'C', "large's entry runs");
    /* Nothing free: large does not fit even with middle's 20 given back (0 + 40 + 20 < 40 + 30), middle does and
     * is resident: no load. */
    CHECK(rs_runner_refresh_with(f.runner, 0, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "middle") == 0 && f.script.loads == 3 && f.script.unloads == 2,
          "back on %s without a load: %d loads, %d unloads", current(f.runner), f.script.loads, f.script.unloads);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'B', "middle's entry runs again");
    /* Asked by name: preloading small loads it without running it; using it then loads nothing. */
    int loads = f.script.loads;
    CHECK(rs_runner_preload(f.runner, "small", &err) == RS_OK && strcmp(current(f.runner), "middle") == 0 &&
              f.script.loads == loads + 1, "preloaded small: on %s, %d loads", current(f.runner), f.script.loads);
    CHECK(rs_runner_use(f.runner, "small", &err) == RS_OK && strcmp(current(f.runner), "small") == 0 &&
              f.script.loads == loads + 1, "using small: on %s, %d loads", current(f.runner), f.script.loads);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'A', "small's entry runs");
    CHECK(rs_runner_use(f.runner, "tiny", &err) == RS_ERR_ARGUMENT && strstr(err.message, "no variant 'tiny'"),
          "an unknown id: %s", err.message);
    CHECK(f.script.opens == 1, "one open in all: %d", f.script.opens);
    CHECK(rs_bundle_validate(f.bundle, 1, &err) == RS_ERR_SIZE, "the file on disk does not verify: %s", err.message);
    teardown(&f);
    CHECK(f.script.closes == 1 && f.script.loads == f.script.unloads, "close releases everything: %d closes",
          f.script.closes);
}

/* A ladder program opened for `large` (charged its measured 40 MiB to the rung) now holds `middle` only, and
 * `other` runs from its own file. With nothing free, what resident rungs would give back is `other`'s need and
 * no more: `middle`, still loaded, takes over without a load, rather than `large`, which would not leave the
 * headroom. (Counting the program as still holding 40 MiB picked `large`.) */
static void test_resident_memory_is_not_overstated_after_a_programs_first_rung_leaves(void) {
    fixture f;
    setup(&f, "first-rung-leaves", 2, 1000 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    float logits[CLASSES];
    CHECK(strcmp(current(f.runner), "large") == 0, "opened on %s", current(f.runner));
    CHECK(rs_runner_refresh_with(f.runner, 5 * MIB, &switched, &err) == RS_OK && switched &&
              strcmp(current(f.runner), "middle") == 0, "down to %s: %s", current(f.runner), err.message);
    CHECK(rs_runner_use(f.runner, "other", &err) == RS_OK && strcmp(current(f.runner), "other") == 0, "%s",
          err.message);
    int loads = f.script.loads;
    CHECK(rs_runner_refresh_with(f.runner, 0, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "middle") == 0 && f.script.loads == loads, "on %s after %d load(s)",
          current(f.runner), f.script.loads - loads);
    CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'B', "middle's entry runs: %s", err.message);
    teardown(&f);
}

/* The ladder's program (30 MiB) is open for `middle` (30 + 20) with 60 MiB free beside it and 16 of headroom:
 * `large` (30 + 40) is chosen, and since it adds only its entry (40 + 16 <= 60), it loads beside `middle`,
 * which stays resident: going back to it loads nothing. (Judged by its whole need, 70 + 16 > 60, `middle` was
 * unloaded first.) */
static void test_a_rung_of_an_open_program_needs_only_its_entry_point(void) {
    fixture f;
    setup(&f, "program-memory", 4, 66 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    CHECK(strcmp(current(f.runner), "middle") == 0, "opened on %s", current(f.runner));
    set_meminfo(&f.script, 60 * MIB);
    CHECK(rs_runner_refresh(f.runner, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "large") == 0 && f.script.loads == 2 && f.script.unloads == 0 &&
              f.script.opens == 1, "on %s: %d loads, %d unloads, %d opens", current(f.runner), f.script.loads,
          f.script.unloads, f.script.opens);
    CHECK(rs_runner_use(f.runner, "middle", &err) == RS_OK && f.script.loads == 2, "middle was resident: %d loads",
          f.script.loads);
    teardown(&f);
    CHECK(f.script.closes == 1 && f.script.mem_available == (20 + 30 + 20 + 40) * MIB,
          "close gave back the program and both entries: %llu MiB free",
          (unsigned long long)(f.script.mem_available / MIB));
}

/* Figures given by the caller (refresh_with) measure nothing, so a rung loaded under them is charged what the
 * runner judged it to add, and unloading it gives that back: with large running beside middle and 5 MiB free,
 * unloading middle's 20 MiB leaves the headroom, so large stays. (Charging such rungs nothing dropped to middle.) */
static void test_a_rung_loaded_under_given_figures_gives_back_what_it_was_judged_to_take(void) {
    fixture f;
    setup(&f, "given-figures", 1, 1000 * MIB, 16 * MIB);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    CHECK(rs_runner_refresh_with(f.runner, 10 * MIB, &switched, &err) == RS_OK &&
              strcmp(current(f.runner), "middle") == 0, "down to %s: %s", current(f.runner), err.message);
    CHECK(rs_runner_refresh_with(f.runner, 1000 * MIB, &switched, &err) == RS_OK &&
              strcmp(current(f.runner), "large") == 0 && f.script.unloads == 1, "up to %s beside middle: %d unloads",
          current(f.runner), f.script.unloads);
    CHECK(rs_runner_refresh_with(f.runner, 5 * MIB, &switched, &err) == RS_OK && !switched &&
              strcmp(current(f.runner), "large") == 0 && f.script.unloads == 2,
          "5 MiB free: on %s (switched %d), %d unloads", current(f.runner), switched, f.script.unloads);
    teardown(&f);
}

/* With preload_neighbours, opening on `middle` (50 MiB free, 16 of headroom) also loads `small` (10 + 16 <= 30
 * left) but not `large` (40 + 16 > 20 left). When others take all but 10 MiB of what the runner does not hold
 * (so 0 free when `small` is resident), the step down to `small` loads nothing; without the policy it
 * releases `middle` and loads `small` then. */
static void test_neighbours_preloaded_make_a_step_down_load_nothing(void) {
    for (int preload = 0; preload < 2; preload++) {
        fixture f;
        setup_with(&f, preload ? "neighbours" : "no-neighbours", 1, 50 * MIB, 16 * MIB, preload);
        rs_error err = {RS_OK, ""};
        int switched = 0;
        CHECK(strcmp(current(f.runner), "middle") == 0 && f.script.loads == 1 + preload && f.script.opens == 1,
              "preload %d: opened on %s with %d loads", preload, current(f.runner), f.script.loads);
        int small = -1, large = -1;
        CHECK(rs_runner_resident(f.runner, "small", &small, &err) == RS_OK && small == preload &&
                  rs_runner_resident(f.runner, "large", &large, &err) == RS_OK && large == 0,
              "preload %d: small resident %d, large resident %d", preload, small, large);
        CHECK(rs_runner_resident(f.runner, "tiny", &small, &err) == RS_ERR_ARGUMENT && small == preload &&
                  strstr(err.message, "no variant 'tiny'") != NULL,
              "an unknown id: %s", err.message);
        set_meminfo(&f.script, (uint64_t)(10 - 10 * preload) * MIB);
        int loads = f.script.loads;
        CHECK(rs_runner_refresh(f.runner, &switched, &err) == RS_OK && switched, "%s", err.message);
        CHECK(strcmp(current(f.runner), "small") == 0 && f.script.loads == loads + 1 - preload,
              "preload %d: down to %s with %d load(s)", preload, current(f.runner), f.script.loads - loads);
        float logits[CLASSES];
        CHECK(run_once(f.runner, logits, &err) == RS_OK && logits[0] == 'A', "small's entry runs: %s", err.message);
        teardown(&f);
    }
}

/* A neighbour whose preload ran out of memory is not preloaded again until there is more room. On `middle` (ladder,
 * 16 MiB of headroom) with 20 MiB free beside it, `small` (10) is left out for the headroom; at 30 MiB its preload
 * is tried and fails (the room, 30 free + 20 held, is remembered); at 30 MiB again it is not tried, at 35 it is. */
static void test_a_neighbour_that_ran_out_of_memory_is_preloaded_again_only_with_more_room(void) {
    fixture f;
    setup_with(&f, "neighbour-no-memory", 1, 40 * MIB, 16 * MIB, 1);
    rs_error err = {RS_OK, ""};
    int switched = 0, small = -1;
    CHECK(strcmp(current(f.runner), "middle") == 0 && f.script.loads == 1, "opened on %s with %d loads",
          current(f.runner), f.script.loads);
    f.script.fail_loads = 2;
    f.script.failure = RS_ERR_NO_MEMORY;
    for (int attempt = 0; attempt < 2; attempt++) {
        set_meminfo(&f.script, 30 * MIB);
        CHECK(rs_runner_refresh(f.runner, &switched, &err) == RS_OK && !switched, "%s", err.message);
        CHECK(f.script.fail_loads == 1, "refresh %d at 30 MiB: %d preload(s) tried", attempt + 1,
              2 - f.script.fail_loads);
    }
    f.script.fail_loads = 0;
    set_meminfo(&f.script, 35 * MIB);
    CHECK(rs_runner_refresh(f.runner, &switched, &err) == RS_OK && !switched && f.script.loads == 2, "%s",
          err.message);
    CHECK(rs_runner_resident(f.runner, "small", &small, &err) == RS_OK && small == 1, "small resident %d", small);
    teardown(&f);
}

/* Under given figures, a switch that releases the running rung first leaves what the caller gave less what
 * the new rung takes and plus what the old one gave back; neighbours are preloaded against that. Opened on
 * `small` (30 MiB free, 16 of headroom), 52 MiB given: `large` (40) is chosen (52 + 10 >= 1.1 * 40 + 16) but does
 * not fit beside `small` (40 + 16 > 52), so `small` is released first; 52 + 10 - 40 = 22 MiB are then left, too
 * few for `middle` (20 + 16). (Counting the 52 as still free preloaded `middle` into memory that is not there.) */
static void test_a_release_then_load_under_given_figures_leaves_no_room_it_does_not_have(void) {
    fixture f;
    setup_with(&f, "release-then-preload", 1, 30 * MIB, 16 * MIB, 1);
    rs_error err = {RS_OK, ""};
    int switched = 0;
    CHECK(strcmp(current(f.runner), "small") == 0 && f.script.loads == 1, "opened on %s with %d loads",
          current(f.runner), f.script.loads);
    CHECK(rs_runner_refresh_with(f.runner, 52 * MIB, &switched, &err) == RS_OK && switched, "%s", err.message);
    CHECK(strcmp(current(f.runner), "large") == 0 && f.script.unloads == 1 && f.script.loads == 2,
          "up to %s after releasing small: %d loads, %d unloads (middle preloaded if 3 loads)", current(f.runner),
          f.script.loads, f.script.unloads);
    teardown(&f);
}

typedef struct {
    fixture *f;
    int iterations;
    int failures;
} worker;

static void *runs(void *arg) {
    worker *w = arg;
    float logits[CLASSES];
    for (int i = 0; i < w->iterations; i++) {
        rs_error err = {RS_OK, ""};
        rs_status status = run_once(w->f->runner, logits, &err);
        /* whichever variant runs, its logits are its own bytes: 'A'/'a', 'B'/'b' or 'C'/'c' */
        w->failures += status != RS_OK || logits[1] - logits[0] != 'a' - 'A';
    }
    return NULL;
}

static void *refreshes(void *arg) {
    worker *w = arg;
    static const uint64_t available[] = {15 * MIB, 1000 * MIB, 25 * MIB, 60 * MIB};
    for (int i = 0; i < w->iterations; i++) {
        rs_error err = {RS_OK, ""};
        w->failures += rs_runner_refresh_with(w->f->runner, available[i % 4], NULL, &err) != RS_OK;
        rs_bundle_validate(w->f->bundle, (size_t)i % 3, &err);
        w->failures += rs_runner_current(w->f->runner) == NULL;
    }
    return NULL;
}

static void count_release(void *context) { ++*(int *)context; }

static void test_closing_a_backend_releases_its_context_once_and_clears_it(void) {
    int released = 0;
    rs_backend backend = {"counted", &released, open_program, load, run, unload, close_program, count_release};
    rs_backend_close(&backend);
    CHECK(released == 1, "released %d times", released);
    CHECK(backend.context == NULL && backend.release == NULL && backend.name == NULL, "cleared");
    rs_backend_close(&backend);
    CHECK(released == 1, "a closed backend is left alone (released %d times)", released);
    rs_backend own = {"own", &released, open_program, load, run, unload, close_program, NULL};
    rs_backend_close(&own);
    CHECK(released == 1 && own.context == NULL, "without release, the context is its maker's and only cleared");
    rs_backend_close(NULL);
}

/* run from one thread while another refreshes and validates; the bundle is closed first, the runner keeps it. */
static void test_two_threads(int ladder) {
    fixture f;
    setup(&f, ladder ? "threads-ladder" : "threads", ladder, 1000 * MIB, 0);
    worker a = {&f, 2000, 0}, b = {&f, 500, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, runs, &a);
    pthread_create(&tb, NULL, refreshes, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.failures == 0 && b.failures == 0, "%d run and %d refresh failures", a.failures, b.failures);
    rs_bundle_close(f.bundle); /* the runner holds its own reference */
    f.bundle = NULL;
    float logits[CLASSES];
    rs_error err = {RS_OK, ""};
    CHECK(run_once(f.runner, logits, &err) == RS_OK, "after the bundle's close: %s", err.message);
    teardown(&f);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_runner WORKDIR\n");
        return 2;
    }
    workdir = argv[1];
    test_runs_the_verified_bytes_and_refuses_non_finite_input();
    test_a_failed_switch_restores_the_variant_in_use();
    test_a_switch_that_ran_out_of_memory_waits_for_more_room();
    test_a_probe_failing_inside_a_load_charges_the_index_figures();
    test_a_file_its_backend_refuses_is_not_opened_again_for_its_other_rungs();
    test_recovers_after_a_failed_switch_and_restore();
    test_does_not_flap_when_a_variant_is_larger_than_its_index_figure();
    test_switches_to_a_resident_rung_without_loading();
    test_a_ladder_file_is_read_once_and_its_rungs_switch_without_file_io();
    test_resident_memory_is_not_overstated_after_a_programs_first_rung_leaves();
    test_a_rung_of_an_open_program_needs_only_its_entry_point();
    test_neighbours_preloaded_make_a_step_down_load_nothing();
    test_a_neighbour_that_ran_out_of_memory_is_preloaded_again_only_with_more_room();
    test_a_rung_loaded_under_given_figures_gives_back_what_it_was_judged_to_take();
    test_a_release_then_load_under_given_figures_leaves_no_room_it_does_not_have();
    test_closing_a_backend_releases_its_context_once_and_clears_it();
    test_two_threads(0);
    test_two_threads(1);
    printf("%s (%d failures)\n", failures ? "FAILED" : "all runner contract tests passed", failures);
    return failures ? 1 : 0;
}
