/* The runner: keeps the selected variant loaded through a caller-supplied backend, converts tensors to
 * and from the artifact's types, and switches variant when the memory available changes.
 *
 * Every public call but close holds the runner's lock, so run, refresh and current may come from different
 * threads. A loaded model owns the verified bytes it was created from (`bytes`), freed after `unload`.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NO_VARIANT SIZE_MAX

typedef struct {
    void *model;
    unsigned char *bytes;
} loaded;

struct rs_runner {
    rs_bundle *bundle;
    const rs_backend *backend;
    rs_policy policy;
    char override_id[64];
    char memory_root[2048];
    pthread_mutex_t lock;
    size_t current; /* NO_VARIANT when nothing is loaded */
    loaded now;
    uint64_t needs[RS_MAX_ARTIFACTS]; /* the index's memory figure, raised to what a load was measured to take */
};

static size_t dtype_size(const char *dtype) { return strcmp(dtype, "float32") == 0 ? 4 : 1; }

static size_t input_count(const rs_bundle *bundle) {
    const uint32_t *shape = rs_bundle_input(bundle)->shape;
    return (size_t)shape[0] * shape[1] * shape[2] * shape[3];
}

/* Loads artifact `index` from bytes read and verified now; the backend never sees a path. */
static rs_status load(rs_runner *runner, size_t index, loaded *out, rs_error *err) {
    size_t size;
    rs_status status = rs_bundle_read_verified(runner->bundle, index, &out->bytes, &size, err);
    if (status != RS_OK) {
        return status;
    }
    const rs_backend *backend = runner->backend;
    status = backend->load(backend->context, out->bytes, size, rs_bundle_artifact(runner->bundle, index),
                           &out->model, err);
    if (status != RS_OK) {
        free(out->bytes);
        *out = (loaded){NULL, NULL};
    }
    return status;
}

static void unload(rs_runner *runner, loaded *model) {
    if (model->model != NULL) {
        runner->backend->unload(model->model);
    }
    free(model->bytes);
    *model = (loaded){NULL, NULL};
}

/* A verified variant its backend would not load is not tried again by this runner: judged as never fitting. */
static rs_status refused_by_backend(rs_runner *runner, size_t index, rs_status status) {
    if (status == RS_ERR_BACKEND) {
        runner->needs[index] = UINT64_MAX;
    }
    return status;
}

/* Memory available now under the runner's root, or 0 if it cannot be probed (then nothing is measured). */
static uint64_t probe(const rs_runner *runner) {
    rs_memory memory;
    return rs_probe_memory(runner->memory_root, &memory, NULL) == RS_OK ? memory.available : 0;
}

/* Loads `index`; when `before` (available just before, 0 = do not measure) is given, the drop in available
 * memory across the load raises the variant's need if it is larger than the index says, up to twice the
 * index figure plus the file (a drop beyond that is someone else's allocation). */
static rs_status load_measured(rs_runner *runner, size_t index, uint64_t before, loaded *out, rs_error *err) {
    rs_status status = refused_by_backend(runner, index, load(runner, index, out, err));
    if (status == RS_OK && before > 0) {
        const rs_artifact *a = rs_bundle_artifact(runner->bundle, index);
        uint64_t after = probe(runner), cap = 2 * a->memory_bytes + a->bytes;
        uint64_t drop = after > 0 && after < before ? before - after : 0;
        drop = drop < cap ? drop : cap;
        runner->needs[index] = drop > runner->needs[index] ? drop : runner->needs[index];
    }
    return status;
}

static rs_status choose(rs_runner *runner, uint64_t available, size_t current, size_t *chosen, rs_error *err) {
    rs_selection *selection = malloc(sizeof *selection);
    if (selection == NULL) {
        return rs_fail(err, RS_ERR_NO_MEMORY, "cannot allocate a selection");
    }
    selection->chosen = NO_VARIANT;
    rs_status status =
        rs_select_with_needs(runner->bundle, &runner->policy, available, current, runner->needs, selection, err);
    *chosen = selection->chosen;
    free(selection);
    return status;
}

/* With no variant loaded: choose for `available` and load. */
static rs_status load_fresh(rs_runner *runner, uint64_t available, int measure, int *switched, rs_error *err) {
    size_t next = NO_VARIANT;
    rs_status status = choose(runner, available, NO_VARIANT, &next, err);
    if (status == RS_OK) {
        status = load_measured(runner, next, measure ? available : 0, &runner->now, err);
    }
    if (status == RS_OK) {
        runner->current = next;
        *switched = 1;
    }
    return status;
}

/* The switch of refresh: `available` was probed (`measure`) or given. Holds the lock. */
static rs_status refresh_locked(rs_runner *runner, uint64_t available, int measure, int *switched, rs_error *err) {
    if (runner->current == NO_VARIANT) {
        return load_fresh(runner, available, measure, switched, err);
    }
    /* The variant in use already counts in `available`; releasing it would give its memory back. */
    uint64_t in_use = runner->needs[runner->current];
    uint64_t reclaimable = available > UINT64_MAX - in_use ? UINT64_MAX : available + in_use;
    size_t next = NO_VARIANT;
    rs_status status = choose(runner, reclaimable, runner->current, &next, err);
    if (status != RS_OK || next == runner->current) {
        return status;
    }
    loaded fresh = {NULL, NULL};
    if (runner->needs[next] + runner->policy.headroom_bytes <= available) { /* both fit: load, then release */
        status = load_measured(runner, next, measure ? available : 0, &fresh, err);
        if (status != RS_OK) {
            return status; /* the variant in use stays */
        }
        unload(runner, &runner->now);
    } else { /* release first; if the new one cannot load, bring the old one back from its verified bytes */
        loaded old = runner->now;
        runner->backend->unload(old.model);
        runner->now = (loaded){NULL, NULL};
        status = load_measured(runner, next, measure ? probe(runner) : 0, &fresh, err);
        if (status != RS_OK) {
            const rs_artifact *a = rs_bundle_artifact(runner->bundle, runner->current);
            rs_error restore = {RS_OK, ""};
            if (runner->backend->load(runner->backend->context, old.bytes, (size_t)a->bytes, a, &old.model,
                                      &restore) == RS_OK) {
                runner->now = old;
                return status;
            }
            free(old.bytes);
            runner->current = NO_VARIANT;
            char first[sizeof err->message];
            snprintf(first, sizeof first, "%s", err != NULL ? err->message : "");
            return rs_fail(err, RS_ERR_NO_MODEL, "%.120s; restoring %s failed too (%.100s): no variant is "
                                                 "loaded until a later refresh", first, a->id, restore.message);
        }
        free(old.bytes);
    }
    runner->now = fresh;
    runner->current = next;
    *switched = 1;
    return RS_OK;
}

/* refresh_locked under the lock, with `available` probed there when `measure` is set (else as given). */
static rs_status refresh(rs_runner *runner, uint64_t available, int measure, int *switched, rs_error *err) {
    int ignored = 0;
    switched = switched != NULL ? switched : &ignored;
    *switched = 0;
    pthread_mutex_lock(&runner->lock);
    rs_memory memory;
    rs_status status = measure ? rs_probe_memory(runner->memory_root, &memory, err) : RS_OK;
    if (status == RS_OK) {
        status = refresh_locked(runner, measure ? memory.available : available, measure, switched, err);
    }
    pthread_mutex_unlock(&runner->lock);
    return status;
}

rs_status rs_runner_open(rs_bundle *bundle, const rs_policy *policy, const rs_backend *backend,
                         const char *memory_root, rs_runner **out, rs_error *err) {
    if (bundle == NULL || policy == NULL || backend == NULL || backend->load == NULL || backend->run == NULL ||
        backend->unload == NULL || memory_root == NULL || out == NULL || strlen(memory_root) >= 2048 ||
        (policy->override_id != NULL && strlen(policy->override_id) >= sizeof ((rs_runner *)0)->override_id)) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_open: bundle, policy (an override id under 64 bytes), a "
                                             "complete backend, memory root and out are required");
    }
    if (rs_bundle_label_count(bundle) == 0) {
        return rs_fail(err, RS_ERR_FORMAT, "%s: the index lists no labels", rs_bundle_dir(bundle));
    }
    *out = NULL;
    rs_runner *runner = calloc(1, sizeof *runner);
    if (runner == NULL) {
        return rs_fail(err, RS_ERR_NO_MEMORY, "cannot allocate a runner");
    }
    runner->bundle = bundle;
    runner->backend = backend;
    runner->policy = *policy;
    runner->policy.backend = backend->name;
    if (policy->override_id != NULL) {
        snprintf(runner->override_id, sizeof runner->override_id, "%s", policy->override_id);
        runner->policy.override_id = runner->override_id;
    }
    strcpy(runner->memory_root, memory_root);
    runner->current = NO_VARIANT;
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        runner->needs[i] = rs_bundle_artifact(bundle, i)->memory_bytes;
    }
    pthread_mutex_init(&runner->lock, NULL);
    rs_memory memory;
    int switched = 0;
    rs_status status = rs_probe_memory(memory_root, &memory, err);
    if (status == RS_OK) {
        status = load_fresh(runner, memory.available, 1, &switched, err);
    }
    if (status != RS_OK) {
        pthread_mutex_destroy(&runner->lock);
        free(runner);
        return status;
    }
    rs_bundle_retain(bundle);
    *out = runner;
    return RS_OK;
}

/* Converts `input` to the artifact's input type; every value must be finite. */
static rs_status quantize(const float *input, size_t count, const rs_quantization *in, unsigned char *raw,
                          rs_error *err) {
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(input[i])) {
            return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_run: input value %zu is not finite", i);
        }
    }
    if (strcmp(in->dtype, "float32") == 0) {
        memcpy(raw, input, count * sizeof *input);
        return RS_OK;
    }
    int low = strcmp(in->dtype, "int8") == 0 ? -128 : 0, high = low + 255;
    for (size_t i = 0; i < count; i++) {
        double q = nearbyint((double)input[i] / in->scale + in->zero_point);
        int v = q < low ? low : q > high ? high : (int)q;
        if (low < 0) ((int8_t *)raw)[i] = (int8_t)v;
        else raw[i] = (uint8_t)v;
    }
    return RS_OK;
}

static void dequantize(const unsigned char *raw, size_t classes, const rs_quantization *out, float *logits) {
    for (size_t i = 0; i < classes; i++) {
        if (strcmp(out->dtype, "float32") == 0) {
            memcpy(&logits[i], raw + 4 * i, 4);
        } else {
            int q = strcmp(out->dtype, "int8") == 0 ? ((const int8_t *)raw)[i] : raw[i];
            logits[i] = (float)((q - out->zero_point) * out->scale);
        }
    }
}

static rs_status run_locked(rs_runner *runner, const float *input, size_t count, float *logits, rs_error *err) {
    if (runner->current == NO_VARIANT) {
        return rs_fail(err, RS_ERR_NO_MODEL, "no variant is loaded (a switch and its restore failed); call "
                                             "rs_runner_refresh");
    }
    const rs_artifact *a = rs_bundle_artifact(runner->bundle, runner->current);
    size_t classes = rs_bundle_label_count(runner->bundle);
    size_t in_bytes = count * dtype_size(a->input_quantization.dtype);
    size_t out_bytes = classes * dtype_size(a->output_quantization.dtype);
    unsigned char *raw_in = malloc(in_bytes), *raw_out = malloc(out_bytes);
    rs_status status = raw_in == NULL || raw_out == NULL
                           ? rs_fail(err, RS_ERR_NO_MEMORY, "cannot allocate %zu + %zu bytes of tensors", in_bytes,
                                     out_bytes)
                           : quantize(input, count, &a->input_quantization, raw_in, err);
    if (status == RS_OK) {
        status = runner->backend->run(runner->now.model, raw_in, in_bytes, raw_out, out_bytes, err);
    }
    if (status == RS_OK) {
        dequantize(raw_out, classes, &a->output_quantization, logits);
    }
    free(raw_in);
    free(raw_out);
    return status;
}

rs_status rs_runner_run(rs_runner *runner, const float *input, size_t count, float *logits, size_t logits_count,
                        rs_error *err) {
    if (runner == NULL || input == NULL || logits == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_run: runner, input and logits are required");
    }
    size_t expected = input_count(runner->bundle), classes = rs_bundle_label_count(runner->bundle);
    if (count != expected || logits_count != classes) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_run: expected %zu input values and %zu logits, got %zu and %zu",
                       expected, classes, count, logits_count);
    }
    pthread_mutex_lock(&runner->lock);
    rs_status status = run_locked(runner, input, count, logits, err);
    pthread_mutex_unlock(&runner->lock);
    return status;
}

rs_status rs_runner_refresh_with(rs_runner *runner, uint64_t available, int *switched, rs_error *err) {
    if (runner == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_refresh: runner is required");
    }
    return refresh(runner, available, 0, switched, err);
}

rs_status rs_runner_refresh(rs_runner *runner, int *switched, rs_error *err) {
    if (runner == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_refresh: runner is required");
    }
    return refresh(runner, 0, 1, switched, err);
}

const rs_artifact *rs_runner_current(rs_runner *runner) {
    if (runner == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&runner->lock);
    const rs_artifact *a = rs_bundle_artifact(runner->bundle, runner->current);
    pthread_mutex_unlock(&runner->lock);
    return a;
}

void rs_runner_close(rs_runner *runner) {
    if (runner == NULL) {
        return;
    }
    unload(runner, &runner->now);
    pthread_mutex_destroy(&runner->lock);
    rs_bundle_release(runner->bundle);
    free(runner);
}
