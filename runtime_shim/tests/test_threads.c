/* The backends' `threads` option with the real runtimes on a bundle built by restnetc: a running rung's runtime
 * has as many threads as asked (counted in /proc/self/task, where a pool of N threads adds N - 1 workers), never
 * more than the CPUs the process may use, and ExecuTorch's process-wide pool is resized only while no method of
 * the shim is loaded.
 *
 * usage: test_threads BUNDLE LIBLITERT
 * Needs two usable CPUs (else it says so and passes: nothing to tell apart). ExecuTorch is tested when this
 * program is built with it (RS_WITH_EXECUTORCH). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "restnet_shim.h"
#include "restnet_shim_litert.h"
#ifdef RS_WITH_EXECUTORCH
#include "restnet_shim_executorch.h"
#endif

static rs_bundle *bundle;
static const char *litert_library;
static float input[1 << 16];
static float logits[1024];

/* Threads of this process now. */
static int process_threads(void) {
    DIR *tasks = opendir("/proc/self/task");
    int count = 0;
    for (struct dirent *e = tasks ? readdir(tasks) : NULL; e != NULL; e = readdir(tasks)) {
        count += e->d_name[0] != '.';
    }
    if (tasks != NULL) closedir(tasks);
    return count;
}

/* Opens `backend`'s backend on `threads` threads (fills `out`); 0 on success. */
static int open_backend(const char *backend, int threads, rs_backend *out) {
    rs_error err = {RS_OK, ""};
    rs_status status = RS_ERR_BACKEND;
    if (strcmp(backend, "litert") == 0) {
        rs_litert_options options = {RS_PACKING_AS_INDEXED, threads};
        status = rs_litert_backend_open_with(litert_library, &options, out, &err);
    }
#ifdef RS_WITH_EXECUTORCH
    if (strcmp(backend, "executorch") == 0) {
        rs_executorch_options options = {RS_PACKING_AS_INDEXED, threads};
        status = rs_executorch_backend_open_with(&options, out, &err);
    }
#endif
    CHECK(status == RS_OK, "%s backend on %d threads: %s", backend, threads, err.message);
    return status != RS_OK;
}

/* A runner on the backend's first rung in the index, after one run (pools start on first use); NULL on failure. */
static rs_runner *running(const rs_backend *backend) {
    const rs_artifact *rung = NULL;
    for (size_t i = 0; rung == NULL && i < rs_bundle_artifact_count(bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        rung = strcmp(a->backend, backend->name) == 0 ? a : NULL;
    }
    rs_error err = {RS_OK, ""};
    rs_runner *runner = NULL;
    rs_policy policy = {backend->name, 0, 0.0, rung ? rung->id : "", 0};
    const rs_input_spec *spec = rs_bundle_input(bundle);
    size_t count = (size_t)spec->shape[0] * spec->shape[1] * spec->shape[2] * spec->shape[3];
    int ok = rung != NULL && rs_runner_open(bundle, &policy, backend, "/", &runner, &err) == RS_OK &&
             rs_runner_run(runner, input, count, logits, rs_bundle_label_count(bundle), &err) == RS_OK;
    CHECK(ok, "%s: running %s: %s", backend->name, rung ? rung->id : "(no rung)", err.message);
    if (!ok) {
        rs_runner_close(runner);
        return NULL;
    }
    return runner;
}

/* Threads of the process while a rung of `backend` runs on a backend opened on `threads` threads; -1 on failure. */
static int threads_running(const char *backend, int threads) {
    rs_backend opened;
    if (open_backend(backend, threads, &opened) != 0) return -1;
    rs_runner *runner = running(&opened);
    int count = runner != NULL ? process_threads() : -1;
    rs_runner_close(runner);
    rs_backend_close(&opened);
    return count;
}

/* One thread more adds one worker; asking for more threads than the process may use runs as many as it may. */
static void check_counts(const char *backend) {
    int usable = rs_usable_cpus();
    int one = threads_running(backend, 1), two = threads_running(backend, 2);
    int all = threads_running(backend, usable), too_many = threads_running(backend, RS_MAX_THREADS);
    CHECK(one > 0 && two == one + 1, "%s: %d threads on 1, %d on 2 (one more expected)", backend, one, two);
    CHECK(all > 0 && too_many == all, "%s: %d threads on %d (the usable CPUs), %d on %d", backend, all, usable,
          too_many, RS_MAX_THREADS);
}

#ifdef RS_WITH_EXECUTORCH
/* A method loaded on one thread keeps the pool: a second backend asking for two while it is loaded runs on one. */
static void check_pool_kept_while_loaded(void) {
    rs_backend one, two;
    if (open_backend("executorch", 1, &one) != 0) return;
    if (open_backend("executorch", 2, &two) != 0) {
        rs_backend_close(&one);
        return;
    }
    rs_runner *first = running(&one);
    int alone = process_threads();
    rs_runner *second = first != NULL ? running(&two) : NULL;
    CHECK(second != NULL && process_threads() == alone, "executorch: %d threads with one method, %d with two",
          alone, process_threads());
    rs_runner_close(second);
    rs_runner_close(first);
    rs_backend_close(&two);
    rs_backend_close(&one);
}
#endif

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_threads BUNDLE LIBLITERT\n");
        return 2;
    }
    if (rs_usable_cpus() < 2) {
        printf("skipped: one usable CPU, so thread counts cannot differ\n");
        return 0;
    }
    litert_library = argv[2];
    rs_error err = {RS_OK, ""};
    if (rs_bundle_open(argv[1], &bundle, &err) != RS_OK) {
        fprintf(stderr, "setup: %s\n", err.message);
        return 2;
    }
    check_counts("litert");
    rs_backend refused;
    rs_litert_options negative = {RS_PACKING_AS_INDEXED, -1};
    CHECK(rs_litert_backend_open_with(litert_library, &negative, &refused, &err) == RS_ERR_ARGUMENT,
          "litert: -1 threads accepted");
#ifdef RS_WITH_EXECUTORCH
    check_counts("executorch");
    check_pool_kept_while_loaded();
    rs_executorch_options none = {RS_PACKING_AS_INDEXED, -1};
    CHECK(rs_executorch_backend_open_with(&none, &refused, &err) == RS_ERR_ARGUMENT, "executorch: -1 threads accepted");
#endif
    rs_bundle_close(bundle);
    printf("%s (%d failures)\n", failures ? "FAILED" : "all thread tests passed", failures);
    return failures ? 1 : 0;
}
