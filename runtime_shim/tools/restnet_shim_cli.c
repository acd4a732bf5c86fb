/* restnet-shim: the command-line face of the runtime shim, and the on-device debugging tool.
 *
 *   restnet-shim select BUNDLE [--backend B] [--available-mb N | --memory-root DIR] [--headroom-mb N]
 *                              [--hysteresis F] [--override ID] [--json]
 *   restnet-shim verify BUNDLE
 *   restnet-shim run BUNDLE --input FILE [--backend litert] [--litert-lib PATH] [--memory-root DIR]
 *                           [--headroom-mb N] [--override ID] [--threads N] [--repeat N] [--json]
 *       the runtime runs on the bundle's threads (its index's `runtime` record; without one, the runtime's
 *       default) or --threads N (0: the runtime's default), never more than the CPUs the process may use;
 *       with --repeat, runs the chosen rung N more times on the same input after the first (an untimed
 *       warm-up) and reports the median and fastest wall time of one run: latency as the application sees it
 *   restnet-shim input BUNDLE --input FILE --out FILE.f32
 *       writes the float32 NCHW tensor `run` would feed for FILE (resized and normalised); `run` reads it back
 *
 * Exit status: 0 on success, 1 when the bundle is bad or nothing fits, 2 on a usage error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_input.h"
#include "restnet_shim.h"
#ifdef RS_WITH_LITERT
#include "restnet_shim_litert.h"
#endif
#ifdef RS_WITH_EXECUTORCH
#include "restnet_shim_executorch.h"
#endif

#define MIB (1024.0 * 1024.0)

static int usage(const char *problem) {
    fprintf(stderr, "restnet-shim: %s\n", problem);
    fprintf(stderr, "usage: restnet-shim select BUNDLE [--backend litert|executorch] [--available-mb N | "
                    "--memory-root DIR]\n                           [--headroom-mb N] [--hysteresis F] "
                    "[--override ID] [--json]\n       restnet-shim verify BUNDLE\n       restnet-shim run BUNDLE --input "
                    "FILE.pgm|FILE.ppm|FILE.f32 [--backend litert] [--litert-lib PATH]\n"
                    "                        [--memory-root DIR] [--headroom-mb N] [--override ID] [--threads N] "
                    "[--repeat N] [--json]\n"
                    "       restnet-shim input BUNDLE --input FILE.pgm|FILE.ppm|FILE.f32 --out FILE.f32\n");
    return 2;
}

static int parse_number(const char *text, double *out) {
    char *end;
    *out = strtod(text, &end);
    return end != text && *end == '\0' && *out >= 0 && *out < 1e12 ? 0 : -1;
}

static void json_string(const char *text) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static void print_json(const rs_bundle *bundle, const rs_memory *memory, const char *backend,
                       const rs_selection *selection, rs_status status, const rs_error *err) {
    printf("{\"status\": ");
    json_string(rs_status_name(status));
    printf(", \"message\": ");
    json_string(status == RS_OK ? "" : err->message);
    printf(", \"backend\": ");
    json_string(backend);
    printf(", \"available_bytes\": %llu, \"memory_source\": ", (unsigned long long)selection->available);
    json_string(memory ? memory->source : "given");
    printf(", \"chosen\": ");
    if (selection->chosen == SIZE_MAX) {
        printf("null");
    } else {
        json_string(rs_bundle_artifact(bundle, selection->chosen)->id);
    }
    printf(", \"artifacts\": [");
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        printf("%s{\"id\": ", i ? ", " : "");
        json_string(a->id);
        printf(", \"backend\": ");
        json_string(a->backend);
        printf(", \"file\": ");
        json_string(a->file);
        printf(", \"bytes\": %llu, \"sha256\": ", (unsigned long long)a->bytes);
        json_string(a->sha256);
        printf(", \"memory_bytes\": %llu, \"accuracy\": %.3f, \"rank\": %u, \"params\": %llu, \"entry_point\": ",
               (unsigned long long)a->memory_bytes, a->accuracy, (unsigned)a->rank, (unsigned long long)a->params);
        json_string(a->entry_point);
        printf(", \"verdict\": ");
        json_string(rs_verdict_name(selection->verdicts[i].kind));
        printf(", \"reason\": ");
        json_string(selection->verdicts[i].reason);
        printf("}");
    }
    printf("]}\n");
}

static void print_text(const rs_bundle *bundle, const rs_memory *memory, const char *backend,
                       const rs_selection *selection) {
    printf("bundle: %s (%zu artifacts)\n", rs_bundle_dir(bundle), rs_bundle_artifact_count(bundle));
    if (memory == NULL) {
        printf("memory: %.1f MiB available (given)\n", (double)selection->available / MIB);
    } else {
        printf("memory: %.1f MiB available (from %s", (double)memory->available / MIB, memory->source);
        if (memory->cgroup_limit != UINT64_MAX) {
            printf(": limit %.1f MiB, usage %.1f MiB", (double)memory->cgroup_limit / MIB,
                   (double)memory->cgroup_usage / MIB);
        }
        if (memory->mem_available != UINT64_MAX) {
            printf("; MemAvailable %.1f MiB", (double)memory->mem_available / MIB);
        }
        printf(")\n");
    }
    if (selection->chosen != SIZE_MAX) {
        const rs_artifact *a = rs_bundle_artifact(bundle, selection->chosen);
        printf("chosen: %s (%s): %s\n", a->id, a->file, selection->verdicts[selection->chosen].reason);
    }
    printf("%s variants not chosen:\n", backend);
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_verdict *v = &selection->verdicts[i];
        if (v->kind != RS_VERDICT_CHOSEN && v->kind != RS_VERDICT_OTHER_BACKEND) {
            printf("  %s: %s: %s\n", rs_bundle_artifact(bundle, i)->id, rs_verdict_name(v->kind), v->reason);
        }
    }
}

/* Options shared by the commands; each command says which ones it accepts. */
typedef struct {
    const char *dir, *root, *override, *backend, *input, *litert_lib, *out;
    double available_mb, headroom_mb, hysteresis, repeat, threads; /* threads < 0: the bundle's */
    int json;
} options;

enum {
    OPT_AVAILABLE = 1,
    OPT_HYSTERESIS = 2,
    OPT_INPUT = 4,
    OPT_LITERT_LIB = 8,
    OPT_OUT = 16,
    OPT_REPEAT = 32,
    OPT_THREADS = 64
};

/* The most timed runs `run --repeat` takes. */
#define MAX_REPEAT 100000
#define STRINGIFIED(x) #x
#define TEXT_OF(x) STRINGIFIED(x)

/* Parses argv into `o`; returns NULL or the usage problem. */
static const char *parse_options(int argc, char **argv, int accepted, options *o) {
    const char *litert_lib = getenv("RESTNET_SHIM_LITERT");
    *o = (options){NULL, "/", NULL, "litert", NULL, litert_lib ? litert_lib : "libLiteRt.so", NULL, -1,
                  RS_DEFAULT_HEADROOM_BYTES / MIB, RS_DEFAULT_HYSTERESIS, 0, -1, 0};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (arg[0] != '-') {
            if (o->dir != NULL) return "more than one bundle given";
            o->dir = arg;
            continue;
        }
        if (value == NULL) return "an option is missing its value";
        i++;
        if (strcmp(arg, "--backend") == 0) o->backend = value;
        else if (strcmp(arg, "--memory-root") == 0) o->root = value;
        else if (strcmp(arg, "--override") == 0) o->override = value;
        else if (strcmp(arg, "--input") == 0 && (accepted & OPT_INPUT)) o->input = value;
        else if (strcmp(arg, "--out") == 0 && (accepted & OPT_OUT)) o->out = value;
        else if (strcmp(arg, "--litert-lib") == 0 && (accepted & OPT_LITERT_LIB)) o->litert_lib = value;
        else if (strcmp(arg, "--available-mb") == 0 && (accepted & OPT_AVAILABLE)) {
            if (parse_number(value, &o->available_mb) != 0) return "--available-mb expects a number >= 0";
        } else if (strcmp(arg, "--headroom-mb") == 0) {
            if (parse_number(value, &o->headroom_mb) != 0) return "--headroom-mb expects a number >= 0";
        } else if (strcmp(arg, "--repeat") == 0 && (accepted & OPT_REPEAT)) {
            if (parse_number(value, &o->repeat) != 0 || o->repeat < 1 || o->repeat > MAX_REPEAT ||
                o->repeat != (double)(unsigned)o->repeat) {
                return "--repeat expects a whole number of runs from 1 to " TEXT_OF(MAX_REPEAT);
            }
        } else if (strcmp(arg, "--threads") == 0 && (accepted & OPT_THREADS)) {
            if (parse_number(value, &o->threads) != 0 || o->threads > RS_MAX_THREADS ||
                o->threads != (double)(unsigned)o->threads) {
                return "--threads expects a whole number from 0 (the runtime's default) to " TEXT_OF(RS_MAX_THREADS);
            }
        } else if (strcmp(arg, "--hysteresis") == 0 && (accepted & OPT_HYSTERESIS)) {
            if (parse_number(value, &o->hysteresis) != 0) return "--hysteresis expects a fraction >= 0";
        } else {
            return "unknown option";
        }
    }
    if (o->dir == NULL) return "a BUNDLE directory is required";
    if (strcmp(o->backend, "litert") != 0 && strcmp(o->backend, "executorch") != 0) {
        return "--backend must be litert or executorch";
    }
    return NULL;
}

static int command_select(int argc, char **argv) {
    options o;
    const char *problem = parse_options(argc, argv, OPT_AVAILABLE | OPT_HYSTERESIS, &o);
    if (problem != NULL) return usage(problem);
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle;
    if (rs_bundle_open(o.dir, &bundle, &err) != RS_OK) {
        fprintf(stderr, "restnet-shim: %s\n", err.message);
        return 1;
    }
    rs_memory memory;
    const rs_memory *probed = NULL;
    uint64_t available;
    if (o.available_mb >= 0) {
        available = (uint64_t)(o.available_mb * MIB);
    } else {
        if (rs_probe_memory(o.root, &memory, &err) != RS_OK) {
            fprintf(stderr, "restnet-shim: %s\n", err.message);
            rs_bundle_close(bundle);
            return 1;
        }
        probed = &memory;
        available = memory.available;
    }
    rs_policy policy = {o.backend, (uint64_t)(o.headroom_mb * MIB), o.hysteresis, o.override, 0};
    static rs_selection selection;
    rs_status status = rs_select(bundle, &policy, available, SIZE_MAX, &selection, &err);
    if (o.json) {
        print_json(bundle, probed, o.backend, &selection, status, &err);
    } else {
        print_text(bundle, probed, o.backend, &selection);
    }
    if (status != RS_OK) {
        fprintf(stderr, "restnet-shim: %s\n", err.message);
    }
    rs_bundle_close(bundle);
    return status == RS_OK ? 0 : 1;
}

static int command_verify(int argc, char **argv) {
    if (argc != 1) return usage("verify needs exactly one BUNDLE directory");
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle;
    if (rs_bundle_open(argv[0], &bundle, &err) != RS_OK) {
        fprintf(stderr, "restnet-shim: %s\n", err.message);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        rs_status status = rs_bundle_validate(bundle, i, &err);
        printf("%-4s %s/%s%s%s\n", status == RS_OK ? "ok" : "BAD", a->backend, a->id, status == RS_OK ? "" : ": ",
               status == RS_OK ? "" : err.message);
        bad |= status != RS_OK;
    }
    rs_bundle_close(bundle);
    return bad;
}

static int fail_with(const char *message) {
    fprintf(stderr, "restnet-shim: %s\n", message);
    return 1;
}

/* Opens the backend named `name` on `threads` threads; the CLI knows the backends it was built with. */
static rs_status open_backend(const char *name, const char *litert_lib, int threads, rs_backend *backend,
                              rs_error *err) {
#ifdef RS_WITH_LITERT
    if (strcmp(name, "litert") == 0) {
        rs_litert_options options = {RS_PACKING_AS_INDEXED, threads};
        return rs_litert_backend_open_with(litert_lib, &options, backend, err);
    }
#else
    (void)litert_lib;
#endif
#ifdef RS_WITH_EXECUTORCH
    if (strcmp(name, "executorch") == 0) {
        rs_executorch_options options = {RS_PACKING_AS_INDEXED, threads};
        return rs_executorch_backend_open_with(&options, backend, err);
    }
#endif
    (void)backend;
    (void)threads;
    snprintf(err->message, sizeof err->message, "this restnet-shim was built without the %s backend", name);
    err->code = RS_ERR_BACKEND;
    return RS_ERR_BACKEND;
}

static double now_ms(void) {
    struct timespec t = {0, 0};
    (void)clock_gettime(CLOCK_MONOTONIC, &t); /* cannot fail: CLOCK_MONOTONIC is always supported on Linux */
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs the runner's rung `count` more times on `tensor`, each timed; sorts the times (ms) into `times`. */
static rs_status time_runs(rs_runner *runner, const float *tensor, size_t values, float *logits, size_t classes,
                           double *times, size_t count, rs_error *err) {
    for (size_t i = 0; i < count; i++) {
        double start = now_ms();
        rs_status status = rs_runner_run(runner, tensor, values, logits, classes, err);
        if (status != RS_OK) return status;
        times[i] = now_ms() - start;
    }
    qsort(times, count, sizeof *times, by_value);
    return RS_OK;
}

static int command_run(int argc, char **argv) {
    options o;
    const char *problem = parse_options(argc, argv, OPT_INPUT | OPT_LITERT_LIB | OPT_REPEAT | OPT_THREADS, &o);
    if (problem != NULL) return usage(problem);
    if (o.input == NULL) return usage("run needs --input FILE");
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle = NULL;
    rs_backend backend = {0};
    rs_runner *runner = NULL;
    float *tensor = NULL, *logits = NULL;
    size_t repeat = (size_t)o.repeat;
    double *times = repeat ? malloc(repeat * sizeof *times) : NULL;
    int code = 1;
    if (repeat && times == NULL) {
        snprintf(err.message, sizeof err.message, "cannot allocate %zu timings", repeat);
        goto done;
    }
    if (rs_bundle_open(o.dir, &bundle, &err) != RS_OK ||
        open_backend(o.backend, o.litert_lib, o.threads < 0 ? rs_bundle_threads(bundle) : (int)o.threads, &backend,
                     &err) != RS_OK) {
        goto done;
    }
    const rs_input_spec *spec = rs_bundle_input(bundle);
    size_t count = (size_t)spec->shape[0] * spec->shape[1] * spec->shape[2] * spec->shape[3];
    size_t classes = rs_bundle_label_count(bundle);
    tensor = malloc(count * sizeof *tensor);
    logits = malloc((classes ? classes : 1) * sizeof *logits);
    if (tensor == NULL || logits == NULL) {
        snprintf(err.message, sizeof err.message, "cannot allocate the input");
        goto done;
    }
    rs_policy policy = {o.backend, (uint64_t)(o.headroom_mb * MIB), RS_DEFAULT_HYSTERESIS, o.override, 0};
    if (rs_read_input(o.input, spec, tensor, count, &err) != RS_OK ||
        rs_runner_open(bundle, &policy, &backend, o.root, &runner, &err) != RS_OK ||
        rs_runner_run(runner, tensor, count, logits, classes, &err) != RS_OK ||
        (repeat && time_runs(runner, tensor, count, logits, classes, times, repeat, &err) != RS_OK)) {
        goto done;
    }
    double median = repeat ? (times[(repeat - 1) / 2] + times[repeat / 2]) / 2 : 0;
    size_t order[5];
    size_t top = classes < 5 ? classes : 5;
    for (size_t k = 0; k < top; k++) {
        size_t best = SIZE_MAX;
        for (size_t c = 0; c < classes; c++) {
            int taken = 0;
            for (size_t j = 0; j < k; j++) taken |= order[j] == c;
            if (!taken && (best == SIZE_MAX || logits[c] > logits[best])) best = c;
        }
        order[k] = best;
    }
    const rs_artifact *ran = rs_runner_current(runner);
    if (o.json) {
        printf("{\"variant\": ");
        json_string(ran->id);
        printf(", \"backend\": ");
        json_string(ran->backend);
        printf(", \"logits\": [");
        for (size_t c = 0; c < classes; c++) printf("%s%.6g", c ? ", " : "", logits[c]);
        printf("], \"top5\": [");
        for (size_t k = 0; k < top; k++) {
            printf("%s{\"class\": %zu, \"label\": ", k ? ", " : "", order[k]);
            json_string(rs_bundle_label(bundle, order[k]));
            printf(", \"logit\": %.6g}", logits[order[k]]);
        }
        printf("]");
        if (repeat) {
            printf(", \"timing\": {\"runs\": %zu, \"median_ms\": %.4f, \"min_ms\": %.4f}", repeat, median,
                   times[0]);
        }
        printf("}\n");
    } else {
        printf("variant: %s (%s)\n", ran->id, ran->file);
        for (size_t k = 0; k < top; k++) {
            printf("%zu. %-20s %8.3f\n", k + 1, rs_bundle_label(bundle, order[k]), logits[order[k]]);
        }
        if (repeat) printf("timing: %zu runs, median %.3f ms, fastest %.3f ms\n", repeat, median, times[0]);
    }
    code = 0;
done:
    if (code != 0) fail_with(err.message);
    rs_runner_close(runner);
    rs_backend_close(&backend);
    rs_bundle_close(bundle);
    free(tensor);
    free(logits);
    free(times);
    return code;
}

static int command_input(int argc, char **argv) {
    options o;
    const char *problem = parse_options(argc, argv, OPT_INPUT | OPT_OUT, &o);
    if (problem != NULL) return usage(problem);
    if (o.input == NULL || o.out == NULL) return usage("input needs --input FILE and --out FILE");
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle = NULL;
    float *tensor = NULL;
    int code = 1;
    if (rs_bundle_open(o.dir, &bundle, &err) == RS_OK) {
        const rs_input_spec *spec = rs_bundle_input(bundle);
        size_t count = (size_t)spec->shape[0] * spec->shape[1] * spec->shape[2] * spec->shape[3];
        tensor = malloc(count * sizeof *tensor);
        if (tensor == NULL) {
            snprintf(err.message, sizeof err.message, "cannot allocate the input");
        } else if (rs_read_input(o.input, spec, tensor, count, &err) == RS_OK) {
            /* Written beside the target and renamed over it: never a half-written tensor under that name. */
            char partial[4096];
            int fits = snprintf(partial, sizeof partial, "%s.partial", o.out) < (int)sizeof partial;
            FILE *out = fits ? fopen(partial, "wb") : NULL;
            int written = out != NULL && fwrite(tensor, sizeof *tensor, count, out) == count;
            if (out != NULL && fclose(out) != 0) written = 0;
            if (written && rename(partial, o.out) == 0) {
                code = 0;
            } else {
                if (out != NULL) remove(partial);
                snprintf(err.message, sizeof err.message, "%s: cannot write", o.out);
            }
        }
    }
    if (code != 0) fail_with(err.message);
    rs_bundle_close(bundle);
    free(tensor);
    return code;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage("missing command");
    if (strcmp(argv[1], "select") == 0) return command_select(argc - 2, argv + 2);
    if (strcmp(argv[1], "verify") == 0) return command_verify(argc - 2, argv + 2);
    if (strcmp(argv[1], "run") == 0) return command_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "input") == 0) return command_input(argc - 2, argv + 2);
    return usage("unknown command (select, verify, run, input)");
}
