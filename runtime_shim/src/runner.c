/* The runner: keeps the selected variant loaded through a caller-supplied backend, converts tensors to
 * and from the artifact's types, and switches variant when the memory available changes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct rs_runner {
    rs_bundle *bundle;
    const rs_backend *backend;
    rs_policy policy;
    char override_id[64];
    char memory_root[2048];
    size_t current;
    void *model;
};

static size_t dtype_size(const char *dtype) { return strcmp(dtype, "float32") == 0 ? 4 : 1; }

static size_t input_count(const rs_bundle *bundle) {
    const uint32_t *shape = rs_bundle_input(bundle)->shape;
    return (size_t)shape[0] * shape[1] * shape[2] * shape[3];
}

static rs_status load(rs_runner *runner, size_t index, void **model, rs_error *err) {
    char path[4096];
    rs_status status = rs_bundle_validate(runner->bundle, index, path, sizeof path, err);
    if (status != RS_OK) {
        return status;
    }
    return runner->backend->load(runner->backend->context, path, rs_bundle_artifact(runner->bundle, index), model,
                                 err);
}

static rs_status choose(rs_runner *runner, uint64_t available, size_t current, size_t *chosen, rs_error *err) {
    rs_selection *selection = malloc(sizeof *selection);
    if (selection == NULL) {
        return rs_fail(err, RS_ERR_NO_MEMORY, "cannot allocate a selection");
    }
    selection->chosen = SIZE_MAX;
    rs_status status = rs_select(runner->bundle, &runner->policy, available, current, selection, err);
    *chosen = selection->chosen;
    free(selection);
    return status;
}

rs_status rs_runner_open(rs_bundle *bundle, const rs_policy *policy, const rs_backend *backend,
                         const char *memory_root, rs_runner **out, rs_error *err) {
    if (bundle == NULL || policy == NULL || backend == NULL || backend->load == NULL || backend->run == NULL ||
        backend->unload == NULL || memory_root == NULL || out == NULL || strlen(memory_root) >= 2048) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_open: bundle, policy, a complete backend, memory root "
                                             "and out are required");
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
    rs_memory memory;
    rs_status status = rs_probe_memory(memory_root, &memory, err);
    if (status == RS_OK) {
        status = choose(runner, memory.available, SIZE_MAX, &runner->current, err);
    }
    if (status == RS_OK) {
        status = load(runner, runner->current, &runner->model, err);
    }
    if (status != RS_OK) {
        free(runner);
        return status;
    }
    *out = runner;
    return RS_OK;
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
    if (runner->model == NULL) {
        return rs_fail(err, RS_ERR_BACKEND, "no variant is loaded (a switch failed and the previous one could not "
                                            "be reloaded); call rs_runner_refresh");
    }
    const rs_artifact *a = rs_bundle_artifact(runner->bundle, runner->current);
    const rs_quantization *in = &a->input_quantization, *out = &a->output_quantization;
    size_t in_bytes = count * dtype_size(in->dtype), out_bytes = classes * dtype_size(out->dtype);
    unsigned char *raw_in = malloc(in_bytes), *raw_out = malloc(out_bytes);
    rs_status status = RS_ERR_NO_MEMORY;
    if (raw_in == NULL || raw_out == NULL) {
        rs_fail(err, status, "cannot allocate %zu + %zu bytes of tensors", in_bytes, out_bytes);
        goto done;
    }
    if (strcmp(in->dtype, "float32") == 0) {
        memcpy(raw_in, input, in_bytes);
    } else {
        int low = strcmp(in->dtype, "int8") == 0 ? -128 : 0, high = low + 255;
        for (size_t i = 0; i < count; i++) {
            double q = nearbyint(input[i] / in->scale + in->zero_point);
            int v = q < low ? low : q > high ? high : (int)q;
            if (low < 0) ((int8_t *)raw_in)[i] = (int8_t)v;
            else raw_in[i] = (uint8_t)v;
        }
    }
    status = runner->backend->run(runner->model, raw_in, in_bytes, raw_out, out_bytes, err);
    if (status != RS_OK) {
        goto done;
    }
    for (size_t i = 0; i < classes; i++) {
        if (strcmp(out->dtype, "float32") == 0) {
            memcpy(&logits[i], raw_out + 4 * i, 4);
        } else {
            int q = strcmp(out->dtype, "int8") == 0 ? ((int8_t *)raw_out)[i] : raw_out[i];
            logits[i] = (float)((q - out->zero_point) * out->scale);
        }
    }
done:
    free(raw_in);
    free(raw_out);
    return status;
}

rs_status rs_runner_refresh_with(rs_runner *runner, uint64_t available, int *switched, rs_error *err) {
    if (runner == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_refresh: runner is required");
    }
    if (switched != NULL) {
        *switched = 0;
    }
    const rs_artifact *old = rs_bundle_artifact(runner->bundle, runner->current);
    /* The variant in use already counts in `available`; releasing it would give its memory back. */
    uint64_t reclaimable = available + old->memory_bytes;
    size_t next = SIZE_MAX;
    rs_status status = choose(runner, reclaimable, runner->current, &next, err);
    if (status != RS_OK || next == runner->current) {
        return status;
    }
    const rs_artifact *fresh = rs_bundle_artifact(runner->bundle, next);
    void *model = NULL;
    if (fresh->memory_bytes + runner->policy.headroom_bytes <= available) { /* both fit: load, then release */
        status = load(runner, next, &model, err);
        if (status != RS_OK) {
            return status;
        }
        runner->backend->unload(runner->model);
    } else { /* release first; if the new one cannot load, bring the old one back */
        runner->backend->unload(runner->model);
        runner->model = NULL;
        status = load(runner, next, &model, err);
        if (status != RS_OK) {
            rs_error ignored;
            if (load(runner, runner->current, &runner->model, &ignored) != RS_OK) {
                runner->model = NULL;
            }
            return status;
        }
    }
    runner->model = model;
    runner->current = next;
    if (switched != NULL) {
        *switched = 1;
    }
    return RS_OK;
}

rs_status rs_runner_refresh(rs_runner *runner, int *switched, rs_error *err) {
    if (runner == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_refresh: runner is required");
    }
    rs_memory memory;
    rs_status status = rs_probe_memory(runner->memory_root, &memory, err);
    return status != RS_OK ? status : rs_runner_refresh_with(runner, memory.available, switched, err);
}

const rs_artifact *rs_runner_current(const rs_runner *runner) {
    return runner ? rs_bundle_artifact(runner->bundle, runner->current) : NULL;
}

void rs_runner_close(rs_runner *runner) {
    if (runner == NULL) {
        return;
    }
    if (runner->model != NULL) {
        runner->backend->unload(runner->model);
    }
    free(runner);
}
