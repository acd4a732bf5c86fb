/* The runner: keeps programs open and rungs loaded through a caller-supplied backend, converts tensors to
 * and from the artifact's types, and switches variant when the memory available changes.
 *
 * A program is one artifact file, opened from bytes read and verified once; every artifact naming the same
 * file and digest shares it (the ladder layout), so loading another of its rungs needs no file I/O. Rungs stay
 * resident after a switch while memory allows: switching to a resident rung loads nothing. Under pressure the
 * least recently used resident rungs other than the current one are unloaded first, and a program closes when
 * its last rung goes.
 *
 * Every public call but open and close holds the runner's lock, so run, refresh, use, preload, resident and
 * current may come from different threads, and nothing is unloaded while it runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NO_VARIANT SIZE_MAX

typedef struct {
    unsigned char *bytes; /* the verified file, kept while the program is open or held for a restore */
    size_t size;
    void *handle;    /* the backend's program, NULL when closed */
    unsigned models; /* its rungs loaded */
    uint64_t charge; /* memory closing it is counted to give back: measured across its opening, or indexed */
} program;

typedef struct {
    void *model;     /* NULL when the rung is not resident */
    uint64_t charge; /* memory unloading it is counted to give back beyond its program's: measured, or judged */
    uint64_t used;   /* when it was last made current, for least-recently-used eviction */
} rung;

struct rs_runner {
    rs_bundle *bundle;
    const rs_backend *backend;
    rs_policy policy;
    char override_id[64];
    char memory_root[2048];
    pthread_mutex_t lock;
    size_t current; /* NO_VARIANT when nothing runs */
    uint64_t clock;
    uint64_t needs[RS_MAX_ARTIFACTS]; /* the index's memory figure, raised to what a load was measured to take */
    uint64_t short_at[RS_MAX_ARTIFACTS]; /* the `reclaimable` room when a load of it last ran out of memory (0: not
                                            since it last loaded): a refresh does not try it until there is more */
    size_t owner[RS_MAX_ARTIFACTS];   /* the first artifact with the same file and digest: its program's slot */
    program programs[RS_MAX_ARTIFACTS];
    rung rungs[RS_MAX_ARTIFACTS];
};

static size_t dtype_size(const char *dtype) { return strcmp(dtype, "float32") == 0 ? 4 : 1; }

static size_t input_count(const rs_bundle *bundle) {
    const uint32_t *shape = rs_bundle_input(bundle)->shape;
    return (size_t)shape[0] * shape[1] * shape[2] * shape[3];
}

static uint64_t add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static int resident(const rs_runner *runner, size_t index) {
    return index != NO_VARIANT && runner->rungs[index].model != NULL;
}

/* Memory available now under the runner's root, or 0 if it cannot be probed (then nothing is measured). */
static uint64_t probe(const rs_runner *runner) {
    rs_memory memory;
    return rs_probe_memory(runner->memory_root, &memory, NULL) == RS_OK ? memory.available : 0;
}

/* What happens to a program when its last rung is unloaded. */
typedef enum { CLOSE, CLOSE_KEEP_BYTES, KEEP_OPEN } on_idle;

/* Applies `mode` to the program in `slot` if no rung of it is loaded. */
static void settle(rs_runner *runner, size_t slot, on_idle mode) {
    program *p = &runner->programs[slot];
    if (p->models > 0 || mode == KEEP_OPEN) {
        return;
    }
    if (p->handle != NULL) {
        runner->backend->close(p->handle);
        p->handle = NULL;
        p->charge = 0;
    }
    if (mode == CLOSE) {
        free(p->bytes);
        p->bytes = NULL;
    }
}

/* Judges every artifact sharing the program in `slot` as never fitting: its backend refused the file. */
static void refuse_program(rs_runner *runner, size_t slot) {
    for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
        runner->needs[i] = runner->owner[i] == slot ? UINT64_MAX : runner->needs[i];
    }
}

/* Opens the program of artifact `index` unless it is open, from the bytes kept for it or read and verified now;
 * the backend never sees a path. On failure the program is as it was; a file the backend refuses
 * (RS_ERR_BACKEND) is not opened again for any rung sharing it. */
static rs_status open_program(rs_runner *runner, size_t index, rs_error *err) {
    size_t slot = runner->owner[index];
    program *p = &runner->programs[slot];
    if (p->handle != NULL) {
        return RS_OK;
    }
    int read = p->bytes == NULL;
    rs_status status = read ? rs_bundle_read_verified(runner->bundle, index, &p->bytes, &p->size, err) : RS_OK;
    if (status == RS_OK) {
        const rs_backend *backend = runner->backend;
        status = backend->open(backend->context, p->bytes, p->size, rs_bundle_artifact(runner->bundle, index),
                               &p->handle, err);
        p->handle = status == RS_OK ? p->handle : NULL;
        if (status == RS_ERR_BACKEND) {
            refuse_program(runner, slot);
        }
    }
    if (status != RS_OK && read) {
        free(p->bytes);
        p->bytes = NULL;
    }
    return status;
}

/* Remembers why a load of rung `index`, tried when `room` was reclaimable, failed: a verified variant its
 * backend refused to open or load (RS_ERR_BACKEND) is not tried again by this runner, judged as never fitting;
 * one that ran out of memory (RS_ERR_NO_MEMORY) is no refusal, but is not `worth_trying` until there is more
 * room. Returns `status`. */
static rs_status judge_failure(rs_runner *runner, size_t index, uint64_t room, rs_status status) {
    if (status == RS_ERR_BACKEND) {
        runner->needs[index] = UINT64_MAX;
    } else if (status == RS_ERR_NO_MEMORY) {
        runner->short_at[index] = room > 0 ? room : 1;
    }
    return status;
}

/* The drop in available memory from `before` to `after` (0 when either is unknown), at most `cap`: a larger
 * drop is someone else's allocation. */
static uint64_t drop(uint64_t before, uint64_t after, uint64_t cap) {
    uint64_t fall = before > 0 && after > 0 && after < before ? before - after : 0;
    return fall < cap ? fall : cap;
}

/* What loading rung `index` takes beyond what is resident: its need, or while its program is open only its
 * entry point: the need less the program's charge, and never less than the index's figure for the entry (its
 * memory less its program's) when the index measured the program. */
static uint64_t added_need(const rs_runner *runner, size_t index) {
    const program *p = &runner->programs[runner->owner[index]];
    uint64_t need = runner->needs[index];
    if (p->handle == NULL || need == UINT64_MAX) {
        return need;
    }
    const rs_artifact *a = rs_bundle_artifact(runner->bundle, index);
    uint64_t beyond = need > p->charge ? need - p->charge : 0;
    uint64_t entry = a->program_memory_bytes > 0 && a->memory_bytes > a->program_memory_bytes
                         ? a->memory_bytes - a->program_memory_bytes
                         : 0;
    return beyond > entry ? beyond : entry;
}

/* Makes rung `index` resident, opening its program if needed. When `before` (available just before, 0 = do
 * not measure) is given and both probes inside succeed, the drop in available memory across opening the program
 * is charged to the program, and the drop across loading the entry to the rung; together they raise the
 * variant's need if larger than the index says, up to twice the index figure plus the file each. Unmeasured (or
 * a probe failed), a program is charged the index's figure for it or the bytes it holds, whichever is larger,
 * and a rung the rest of what the caller counted for it (its need when the load opened the program, else
 * `added_need`): unloading gives back what loading took. */
static rs_status load(rs_runner *runner, size_t index, uint64_t before, rs_error *err) {
    size_t slot = runner->owner[index];
    program *p = &runner->programs[slot];
    int opened = p->handle == NULL, read = p->bytes == NULL;
    rs_status status = open_program(runner, index, err);
    const rs_artifact *a = rs_bundle_artifact(runner->bundle, index);
    uint64_t cap = add(2 * a->memory_bytes, a->bytes);
    uint64_t opened_at = before > 0 && opened ? probe(runner) : before; /* one probe between open and load */
    rung *r = &runner->rungs[index];
    if (status == RS_OK) {
        status = runner->backend->load(p->handle, a, &r->model, err);
        if (status != RS_OK) {
            r->model = NULL;
            settle(runner, slot, !opened ? KEEP_OPEN : read ? CLOSE : CLOSE_KEEP_BYTES);
        }
    }
    if (status != RS_OK) {
        return status;
    }
    uint64_t loaded_at = opened_at > 0 ? probe(runner) : 0;
    int measured = loaded_at > 0; /* else a probe failed: the index's figures, never a charge of nothing */
    uint64_t opening = measured ? drop(before, opened_at, cap) : 0;
    p->models++;
    runner->short_at[index] = 0;
    if (opened) {
        p->charge = measured ? opening : p->size > a->program_memory_bytes ? p->size : a->program_memory_bytes;
    }
    if (measured) {
        r->charge = drop(opened_at, loaded_at, cap);
    } else if (opened) { /* the caller counted the whole need: the program's charge holds part of it */
        r->charge = runner->needs[index] > p->charge ? runner->needs[index] - p->charge : 0;
    } else {
        r->charge = added_need(runner, index);
    }
    uint64_t total = add(opening, r->charge);
    if (opened && measured && total > runner->needs[index]) {
        runner->needs[index] = total;
    }
    return RS_OK;
}

/* What the runner counts as holding: every loaded rung's charge and every open program's. */
static uint64_t held(const rs_runner *runner) {
    uint64_t total = 0;
    for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
        total = add(total, resident(runner, i) ? runner->rungs[i].charge : 0);
        total = add(total, runner->programs[i].handle != NULL ? runner->programs[i].charge : 0);
    }
    return total;
}

/* What is available after a change of what the runner holds, from `was` to `now`: probed when `measure`, else
 * `available` moved by the difference (unmeasured, loading takes and unloading gives back exactly the charges). */
static uint64_t after_change(const rs_runner *runner, uint64_t available, uint64_t was, uint64_t now, int measure) {
    if (measure) {
        return probe(runner);
    }
    uint64_t raised = add(available, was);
    return raised > now ? raised - now : 0;
}

/* Unloads rung `index`; when it was its program's last, `mode` says what becomes of the program. */
static void unload(rs_runner *runner, size_t index, on_idle mode) {
    rung *r = &runner->rungs[index];
    size_t slot = runner->owner[index];
    runner->backend->unload(r->model);
    *r = (rung){NULL, 0, 0};
    runner->programs[slot].models--;
    settle(runner, slot, mode);
}

/* Unloads resident rungs other than the current one, least recently used first, until the headroom and what
 * rung `next` adds (none when NO_VARIANT) are available or none is left. What `next` adds is judged again after
 * each unload, since closing its program raises it; what is available follows `after_change`. Returns what is
 * available then. */
static uint64_t evict(rs_runner *runner, size_t next, uint64_t available, int measure) {
    while (available < add(next == NO_VARIANT ? 0 : added_need(runner, next), runner->policy.headroom_bytes)) {
        size_t oldest = NO_VARIANT;
        for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
            if (i != runner->current && resident(runner, i) &&
                (oldest == NO_VARIANT || runner->rungs[i].used < runner->rungs[oldest].used)) {
                oldest = i;
            }
        }
        if (oldest == NO_VARIANT) {
            break;
        }
        uint64_t was = held(runner);
        unload(runner, oldest, CLOSE);
        available = after_change(runner, available, was, held(runner), measure);
    }
    return available;
}

/* What would be available with everything resident given back: the current rung's need (its program
 * included), and the charges of the other resident rungs and of the programs they alone hold open. */
static uint64_t reclaimable(const rs_runner *runner, uint64_t available) {
    uint64_t total = available;
    size_t current_slot = runner->current == NO_VARIANT ? NO_VARIANT : runner->owner[runner->current];
    for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
        if (resident(runner, i)) {
            total = add(total, i == runner->current ? runner->needs[i] : runner->rungs[i].charge);
        }
        if (runner->owner[i] == i && i != current_slot && runner->programs[i].handle != NULL) {
            total = add(total, runner->programs[i].charge);
        }
    }
    return total;
}

/* Whether a refresh may try to load rung `index` with `room` reclaimable: not while there is no more than
 * when its last load ran out of memory (a retry would fail the same way, after releasing what runs). The room,
 * unlike what is available, does not change with what the runner itself holds. */
static int worth_trying(const rs_runner *runner, size_t index, uint64_t room) {
    return runner->short_at[index] == 0 || room > runner->short_at[index];
}

/* Chooses for what `reclaimable` gives. A resident rung outside the current one's program is judged by what it
 * holds (its charge and its program's), which the reclaimable figure counts: staying with it costs nothing more.
 * A rung not `worth_trying` is judged to need more than that figure. */
static rs_status choose(rs_runner *runner, uint64_t available, size_t *chosen, rs_error *err) {
    rs_selection *selection = malloc(sizeof *selection);
    uint64_t *needs = malloc(sizeof runner->needs);
    if (selection == NULL || needs == NULL) {
        free(selection);
        free(needs);
        return rs_fail(err, RS_ERR_NO_MEMORY, "cannot allocate a selection");
    }
    memcpy(needs, runner->needs, sizeof runner->needs);
    size_t current_slot = runner->current == NO_VARIANT ? NO_VARIANT : runner->owner[runner->current];
    uint64_t room = reclaimable(runner, available);
    for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
        if (resident(runner, i) && i != runner->current && runner->owner[i] != current_slot) {
            uint64_t held = add(runner->rungs[i].charge, runner->programs[runner->owner[i]].charge);
            needs[i] = held < needs[i] ? held : needs[i];
        }
        if (!worth_trying(runner, i, room) && needs[i] <= room) {
            needs[i] = add(room, 1);
        }
    }
    selection->chosen = NO_VARIANT;
    rs_status status =
        rs_select_with_needs(runner->bundle, &runner->policy, room, runner->current, needs, selection, err);
    *chosen = selection->chosen;
    free(needs);
    free(selection);
    return status;
}

/* Releases the current rung first (its program kept open if `next` shares it, else closed with its bytes
 * kept), then loads `next`, a failure judged as tried with `room`; if it fails, the old rung comes back from
 * the kept program or bytes. */
static rs_status release_then_load(rs_runner *runner, size_t next, uint64_t room, int measure, rs_error *err) {
    size_t old = runner->current, old_slot = runner->owner[old];
    runner->current = NO_VARIANT;
    unload(runner, old, old_slot == runner->owner[next] ? KEEP_OPEN : CLOSE_KEEP_BYTES);
    rs_status status = judge_failure(runner, next, room, load(runner, next, measure ? probe(runner) : 0, err));
    if (status == RS_OK) {
        settle(runner, old_slot, CLOSE);
        return RS_OK;
    }
    rs_error restore = {RS_OK, ""};
    if (load(runner, old, 0, &restore) == RS_OK) { /* it loaded before from these bytes: a failure is no refusal */
        runner->current = old;
        return status;
    }
    settle(runner, old_slot, CLOSE);
    char first[sizeof err->message];
    snprintf(first, sizeof first, "%s", err != NULL ? err->message : "");
    return rs_fail(err, RS_ERR_NO_MODEL, "%.120s; restoring %s failed too (%.100s): no variant is loaded until a "
                                         "later refresh", first, rs_bundle_artifact(runner->bundle, old)->id,
                   restore.message);
}

/* The rung of the current one's open program next to it in selection order (rs_artifact_order), before it
 * (`up`) or after, that this runner may still choose; NO_VARIANT if there is none. */
static size_t neighbour(const rs_runner *runner, int up) {
    size_t current = runner->current, best = NO_VARIANT;
    const rs_artifact *here = rs_bundle_artifact(runner->bundle, current);
    int side = up ? 1 : -1;
    for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(runner->bundle, i);
        if (i == current || runner->owner[i] != runner->owner[current] || runner->needs[i] == UINT64_MAX ||
            rs_artifact_order(a, here) != side) {
            continue;
        }
        best = best == NO_VARIANT || rs_artifact_order(a, rs_bundle_artifact(runner->bundle, best)) == -side ? i : best;
    }
    return best;
}

/* With `preload_neighbours`, loads the current rung's neighbours below and then above (from its open program,
 * no file I/O) while each leaves the headroom free and is `worth_trying`; they count as least recently used, the
 * first evicted. A failed preload is not an error of the refresh (a refusal still bans the rung, and running out
 * of memory is remembered as a refresh's load would be). */
static void preload_neighbours(rs_runner *runner, uint64_t available, int measure) {
    for (int up = 0; up < 2 && runner->policy.preload_neighbours && runner->current != NO_VARIANT; up++) {
        size_t next = neighbour(runner, up);
        uint64_t room = reclaimable(runner, available);
        if (next == NO_VARIANT || resident(runner, next) || !worth_trying(runner, next, room)) {
            continue;
        }
        uint64_t added = added_need(runner, next);
        if (add(added, runner->policy.headroom_bytes) > available) {
            continue;
        }
        rs_error ignored = {RS_OK, ""};
        uint64_t was = held(runner);
        rs_status status = load(runner, next, measure ? available : 0, &ignored);
        if (judge_failure(runner, next, room, status) == RS_OK) {
            runner->rungs[next].used = 0;
            available = after_change(runner, available, was, held(runner), measure);
        }
    }
}

/* The switch of refresh: `available` was probed (`measure`) or given. Holds the lock. */
static rs_status refresh_locked(rs_runner *runner, uint64_t available, int measure, int *switched, rs_error *err) {
    size_t old = runner->current, next = NO_VARIANT;
    uint64_t room = reclaimable(runner, available); /* what a failed load is judged as tried with */
    rs_status status = choose(runner, available, &next, err);
    if (status == RS_OK && next != old && !resident(runner, next)) {
        available = evict(runner, next, available, measure);
        uint64_t added = added_need(runner, next); /* again: eviction may have closed its program */
        uint64_t was = held(runner);
        if (old == NO_VARIANT || add(added, runner->policy.headroom_bytes) <= available) {
            /* both fit: load, keep the old one resident */
            status = judge_failure(runner, next, room, load(runner, next, measure ? available : 0, err));
        } else {
            status = release_then_load(runner, next, room, measure, err);
        }
        available = after_change(runner, available, was, held(runner), measure);
    }
    if (status != RS_OK) {
        return status;
    }
    if (next != old) {
        runner->current = next;
        *switched = 1;
    }
    runner->rungs[next].used = ++runner->clock;
    available = evict(runner, NO_VARIANT, available, measure); /* resident stay while it allows */
    preload_neighbours(runner, available, measure);
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
    if (bundle == NULL || policy == NULL || backend == NULL || backend->open == NULL || backend->load == NULL ||
        backend->run == NULL || backend->unload == NULL || backend->close == NULL || memory_root == NULL ||
        out == NULL || strlen(memory_root) >= sizeof ((rs_runner *)0)->memory_root ||
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
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        runner->needs[i] = a->memory_bytes;
        runner->owner[i] = i;
        for (size_t j = 0; j < i && runner->owner[i] == i; j++) {
            const rs_artifact *b = rs_bundle_artifact(bundle, j);
            runner->owner[i] = strcmp(a->file, b->file) == 0 ? j : i; /* the index checked they agree */
        }
    }
    pthread_mutex_init(&runner->lock, NULL);
    rs_memory memory;
    int switched = 0;
    rs_status status = rs_probe_memory(memory_root, &memory, err);
    if (status == RS_OK) {
        status = refresh_locked(runner, memory.available, 1, &switched, err);
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

/* Where NCHW element `i` of an image of `spec`'s shape goes in an NHWC tensor. */
static size_t channels_last(size_t i, const rs_input_spec *spec) {
    size_t channels = spec->shape[1], plane = (size_t)spec->shape[2] * spec->shape[3];
    size_t image = channels * plane, within = i % image;
    return i - within + (within % plane) * channels + within / plane;
}

/* Converts `input` (NCHW, `spec`'s shape) to the artifact's input type as `TensorQuantization.quantize` does, in
 * the artifact's layout; every value must be finite. */
static rs_status quantize(const float *input, size_t count, const rs_artifact *a, const rs_input_spec *spec,
                          unsigned char *raw, rs_error *err) {
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(input[i])) {
            return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_run: input value %zu is not finite", i);
        }
    }
    const rs_quantization *in = &a->input_quantization;
    int nhwc = strcmp(a->input_layout, "NHWC") == 0;
    int is_float = strcmp(in->dtype, "float32") == 0, low = strcmp(in->dtype, "int8") == 0 ? -128 : 0;
    for (size_t i = 0; i < count; i++) {
        size_t at = nhwc ? channels_last(i, spec) : i;
        if (is_float) {
            memcpy(raw + at * sizeof *input, &input[i], sizeof *input);
            continue;
        }
        /* TFLite's QUANTIZE: float division, halves away from zero (roundf), then the zero point. */
        double q = (double)roundf(input[i] / (float)in->scale) + in->zero_point;
        int v = q < low ? low : q > low + 255 ? low + 255 : (int)q;
        if (low < 0) ((int8_t *)raw)[at] = (int8_t)v;
        else raw[at] = (uint8_t)v;
    }
    return RS_OK;
}

/* The output as float32 reals, as `TensorQuantization.dequantize` computes them. */
static void dequantize(const unsigned char *raw, size_t classes, const rs_quantization *out, float *logits) {
    for (size_t i = 0; i < classes; i++) {
        if (strcmp(out->dtype, "float32") == 0) {
            memcpy(&logits[i], raw + 4 * i, 4);
        } else {
            int q = strcmp(out->dtype, "int8") == 0 ? ((const int8_t *)raw)[i] : raw[i];
            logits[i] = (float)((q - out->zero_point) * (double)(float)out->scale); /* the file's float32 scale */
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
                           : quantize(input, count, a, rs_bundle_input(runner->bundle), raw_in, err);
    if (status == RS_OK) {
        status = runner->backend->run(runner->rungs[runner->current].model, raw_in, in_bytes, raw_out, out_bytes, err);
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

/* Sets `*index` to that of variant `id` of the runner's backend; RS_ERR_ARGUMENT, naming it, if there is none. */
static rs_status find(const rs_runner *runner, const char *id, size_t *index, rs_error *err) {
    for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(runner->bundle, i);
        if (strcmp(a->id, id) == 0 && strcmp(a->backend, runner->backend->name) == 0) {
            *index = i;
            return RS_OK;
        }
    }
    return rs_fail(err, RS_ERR_ARGUMENT, "%s: no variant '%.64s' of %s", rs_bundle_dir(runner->bundle), id,
                   runner->backend->name);
}

/* Loads variant `id` unless it is resident (measured), and with `use` makes it the current one. */
static rs_status take(rs_runner *runner, const char *id, int use, rs_error *err) {
    if (runner == NULL || id == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_%s: runner and id are required", use ? "use" : "preload");
    }
    pthread_mutex_lock(&runner->lock);
    size_t index = NO_VARIANT;
    rs_status status = find(runner, id, &index, err);
    if (status == RS_OK && !resident(runner, index)) {
        uint64_t before = probe(runner), room = reclaimable(runner, before);
        status = judge_failure(runner, index, room, load(runner, index, before, err));
    }
    if (status == RS_OK) {
        runner->rungs[index].used = ++runner->clock;
        runner->current = use ? index : runner->current;
    }
    pthread_mutex_unlock(&runner->lock);
    return status;
}

rs_status rs_runner_use(rs_runner *runner, const char *id, rs_error *err) { return take(runner, id, 1, err); }

rs_status rs_runner_preload(rs_runner *runner, const char *id, rs_error *err) { return take(runner, id, 0, err); }

rs_status rs_runner_resident(rs_runner *runner, const char *id, int *loaded, rs_error *err) {
    if (runner == NULL || id == NULL || loaded == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_runner_resident: runner, id and loaded are required");
    }
    pthread_mutex_lock(&runner->lock);
    size_t index = NO_VARIANT;
    rs_status status = find(runner, id, &index, err);
    if (status == RS_OK) {
        *loaded = resident(runner, index);
    }
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

void rs_backend_close(rs_backend *backend) {
    if (backend == NULL) {
        return;
    }
    if (backend->release != NULL && backend->context != NULL) {
        backend->release(backend->context);
    }
    *backend = (rs_backend){0};
}

void rs_runner_close(rs_runner *runner) {
    if (runner == NULL) {
        return;
    }
    for (size_t i = 0; i < rs_bundle_artifact_count(runner->bundle); i++) {
        if (resident(runner, i)) {
            unload(runner, i, CLOSE);
        }
    }
    pthread_mutex_destroy(&runner->lock);
    rs_bundle_release(runner->bundle);
    free(runner);
}
