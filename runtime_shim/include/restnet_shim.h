/*
 * restnet-shim: pick the bundle variant that fits the memory available now.
 *
 * The core reads `bundle.index`, the compact form of `manifest.json` that `restnetc build` writes beside
 * it, probes available memory (MemAvailable and every cgroup v1/v2 limit above the process), validates
 * variants (opened beneath the bundle directory, no symlinks, regular files only, size and sha256) and
 * selects the one that fits and comes first in the compiler's ship order. A runner hands its backend the very
 * bytes it hashed, never a path. It has no dependencies beyond libc, no global state, and every function
 * reports a status with a message instead of aborting.
 *
 * Threading: a bundle may be used from any number of threads at once (its validation state is locked). A
 * runner serialises its own calls (run, refresh, current), so two threads may share one; only
 * rs_runner_close must not overlap another call on the same runner, and nothing may follow it.
 */
#ifndef RESTNET_SHIM_H
#define RESTNET_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RS_API __attribute__((visibility("default")))
#else
#define RS_API
#endif

#define RS_INDEX_VERSION 4
#define RS_MAX_ARTIFACTS 256
#define RS_MAX_LABELS 1024
#define RS_MAX_THREADS 256 /* the most threads an index's `runtime` record may ask for */

/* Numeric values are part of the ABI (the Python and Java bindings mirror them): append, never renumber. */
typedef enum {
    RS_OK = 0,
    RS_ERR_ARGUMENT,     /* a caller passed something invalid */
    RS_ERR_IO,           /* a file could not be opened or read, or is not a regular file */
    RS_ERR_FORMAT,       /* the index (or a memory file) is not what the compiler (or kernel) writes */
    RS_ERR_UNSAFE_PATH,  /* an artifact path leaves the bundle directory or crosses a symlink */
    RS_ERR_SIZE,         /* an artifact's size differs from the index */
    RS_ERR_DIGEST,       /* an artifact's sha256 differs from the index */
    RS_ERR_NOTHING_FITS, /* no valid variant of the backend fits the memory available */
    RS_ERR_NO_MEMORY,    /* an allocation failed */
    RS_ERR_BACKEND,      /* a runtime backend failed or is unavailable */
    RS_ERR_STALE,        /* the bundle on disk is no longer the one opened (reopen it) */
    RS_ERR_NO_MODEL      /* the runner has no variant loaded (a switch and its restore failed): refresh */
} rs_status;

/* What went wrong, in words: filled by every function that can fail. */
typedef struct {
    rs_status code;
    char message[320];
} rs_error;

typedef struct {
    char dtype[8]; /* "float32", "int8" or "uint8" */
    double scale;
    int32_t zero_point;
} rs_quantization;

/* One artifact of the bundle, as the index describes it. */
typedef struct {
    char id[64];
    char backend[16];
    char file[256];       /* relative to the bundle directory */
    uint64_t bytes;
    char sha256[65];      /* lowercase hex */
    uint64_t memory_bytes; /* peak memory to load and run it (device figure when known, else host) */
    uint64_t program_memory_bytes; /* what its file holds open before any entry point loads, on the build host
                                      (also when memory_bytes is the device's), shared by every artifact of the
                                      file (0: not measured); memory - program estimates what one entry adds */
    double accuracy;      /* top-1 % of the artifact on the held-out images */
    uint64_t params;
    char entry_point[64];
    rs_quantization input_quantization;
    rs_quantization output_quantization;
    char input_layout[8]; /* "NCHW" or "NHWC": how the artifact's input tensor orders the image; rs_runner_run
                             always takes NCHW (rs_input_spec) and reorders it for an NHWC artifact */
    int shared_packing;   /* 1 (index `packing=shared`): the compiler checked that the file's entry points read
                             each weight under one quantization, so a backend may pack each weight once for all of
                             them; 0 (`own`, or no key): each entry point must pack its own. Same for every
                             artifact of a file */
    uint32_t rank;        /* place in the build's ship order for its backend (index `rank`): selection prefers a
                             higher rank, then higher accuracy, then less memory. Rank k + 1 is the next artifact
                             the compiler's ship rule moves to as memory grows (a costlier one more accurate on
                             validation with confidence); 0 for an artifact the rule never ships on memory alone,
                             and for every artifact of an index without the key (accuracy alone decides) */
} rs_artifact;

/* How an image is resized to the input's H x W: antialiased (widened when shrinking), as PIL and torch's
 * interpolate(antialias=True, align_corners=False) do; bicubic with a = -0.5. */
typedef enum {
    RS_RESIZE_BILINEAR = 0, /* index `resize=bilinear`; also what an index before version 4 means */
    RS_RESIZE_BICUBIC = 1   /* index `resize=bicubic` */
} rs_resize;

typedef struct {
    uint32_t shape[4]; /* N, C, H, W; the element count fits a 32-bit size_t four times over */
    float mean[3];
    float std[3];      /* each > 0 */
    rs_resize resize;
} rs_input_spec;

/* An opened bundle: opaque, created by rs_bundle_open, released by rs_bundle_close. */
typedef struct rs_bundle rs_bundle;

/* Opens the bundle directory `dir` (kept open: later reads are relative to it, whatever happens to the path)
 * and parses its `bundle.index`, which must be a regular file and pass its own identity check. Files are
 * validated on demand. The caller owns `*out` and releases it with rs_bundle_close. */
RS_API rs_status rs_bundle_open(const char *dir, rs_bundle **out, rs_error *err);

/* Releases the caller's reference. Runners opened on the bundle keep it alive until they are closed, so
 * closing a bundle under a live runner is safe; the caller must not use `bundle` afterwards. NULL is ignored. */
RS_API void rs_bundle_close(rs_bundle *bundle);

/* Read-only views, valid until the bundle is released; safe from any thread. */
RS_API size_t rs_bundle_artifact_count(const rs_bundle *bundle);
RS_API const rs_artifact *rs_bundle_artifact(const rs_bundle *bundle, size_t index);
RS_API const rs_input_spec *rs_bundle_input(const rs_bundle *bundle);
RS_API size_t rs_bundle_label_count(const rs_bundle *bundle);
RS_API const char *rs_bundle_label(const rs_bundle *bundle, size_t index);
RS_API const char *rs_bundle_dir(const rs_bundle *bundle);
/* The index's identity: sha256 (hex) of everything after its identity line. */
RS_API const char *rs_bundle_identity(const rs_bundle *bundle);
/* The threads the compiler's target gives each runtime on the device (the index's `runtime threads=N`, 1 to
 * RS_MAX_THREADS), or 0 when the index does not say: what to pass as a backend's `threads` option. */
RS_API int rs_bundle_threads(const rs_bundle *bundle);

/* The CPUs this process may run on now (its affinity mask; the online count where that is unknown), 1 to
 * RS_MAX_THREADS. A backend given a thread count never runs more threads than this. Safe from any thread. */
RS_API int rs_usable_cpus(void);

/* Checks that the directory path given to rs_bundle_open still holds this bundle (same identity). Returns
 * RS_ERR_STALE when it was replaced (e.g. by an update): the opened bundle keeps serving the files it was
 * opened with, if they are still there, and never files of the new one; reopen to use the new one. */
RS_API rs_status rs_bundle_check_current(const rs_bundle *bundle, rs_error *err);

/* Validates artifact `index` now: its path is relative with no `.`/`..` component, every component is opened
 * beneath the bundle directory without following symlinks, the file is regular, and its size and sha256 match
 * the index. A verdict about the file is remembered for rs_select, for every artifact sharing the file (a
 * passing failure such as out of memory is not, and a refusal is never overturned: reopen the bundle for that);
 * a runner opening a program always re-checks the bytes it opens, and then loads its rungs from those bytes. */
RS_API rs_status rs_bundle_validate(rs_bundle *bundle, size_t index, rs_error *err);

/* Memory available to this process, in bytes, and where the figure came from. */
typedef struct {
    uint64_t available;     /* the tightest of the figures below */
    uint64_t mem_available; /* MemAvailable from /proc/meminfo (UINT64_MAX if absent) */
    uint64_t cgroup_limit;  /* the tightest cgroup's limit (UINT64_MAX if none) */
    uint64_t cgroup_usage;  /* that cgroup's usage (0 if no limit) */
    const char *source;     /* "meminfo", "cgroup v1" or "cgroup v2" (static storage) */
} rs_memory;

/* Probes memory under `root` ("/" normally; tests pass a directory of fixture files). cgroup v2: the tightest
 * of `memory.max` and `memory.high` minus `memory.current` over the process's cgroup and every ancestor; v1:
 * the same with `memory.limit_in_bytes`/`memory.usage_in_bytes`, and `hierarchical_memory_limit` from
 * `memory.stat`. A memory file that exists but is not a regular file or cannot be parsed is an error naming
 * it (never "no limit"). Safe from any thread. */
RS_API rs_status rs_probe_memory(const char *root, rs_memory *out, rs_error *err);

typedef struct {
    const char *backend;     /* "litert" or "executorch" (required) */
    uint64_t headroom_bytes; /* kept free beyond each variant's own need */
    double hysteresis;       /* fraction: moving up to a larger variant needs this much extra room */
    const char *override_id; /* if set, this variant is used when it is valid, whatever the memory */
    int preload_neighbours;  /* runner: after each refresh, load the rungs just before and after the current one
                                in selection order (rank, then accuracy) that share its open program, while the
                                headroom stays free */
} rs_policy;

/* Defaults every binding uses unless told otherwise. */
#define RS_DEFAULT_HEADROOM_BYTES (16u * 1024u * 1024u)
#define RS_DEFAULT_HYSTERESIS 0.1

typedef enum {
    RS_VERDICT_CHOSEN = 0,
    RS_VERDICT_OTHER_BACKEND,
    RS_VERDICT_TOO_LARGE,
    RS_VERDICT_INVALID,
    RS_VERDICT_LESS_ACCURATE, /* another fitting variant comes first: higher ship rank, or equal rank and more
                                 accurate (the reason says which) */
    RS_VERDICT_NOT_OVERRIDE
} rs_verdict_kind;

typedef struct {
    rs_verdict_kind kind;
    char reason[320];
} rs_verdict;

typedef struct {
    size_t chosen; /* index of the chosen artifact, or SIZE_MAX */
    uint64_t available;
    rs_verdict verdicts[RS_MAX_ARTIFACTS];
} rs_selection;

/* Chooses the valid variant of the policy's backend whose memory need plus headroom fits in `available` and
 * that comes first in selection order: highest rank (rs_artifact.rank), then most accurate, then least memory.
 * `current` is the variant in use (SIZE_MAX if none): a larger one replaces it only with `hysteresis` extra
 * room, so the choice does not flap near a boundary. Returns RS_ERR_NOTHING_FITS (with every verdict filled)
 * when nothing qualifies. Safe from any thread. */
RS_API rs_status rs_select(rs_bundle *bundle, const rs_policy *policy, uint64_t available, size_t current,
                    rs_selection *out, rs_error *err);

/* ---- Running variants ---- */

/* Whether a backend packs the weights of a file's entry points once for all of them (XNNPACK's weight cache),
 * which keeps the blocks a ladder's rungs share once in memory. The cache finds a packing by the weight itself
 * (LiteRT: its buffer in the file; ExecuTorch: its named-data key, a digest of its bytes), but int8 packing
 * folds in the quantization of the operator's input and output: entry points that read one
 * weight under different quantizations must pack their own, or one runs with another's packing and computes
 * wrong results. ExecuTorch keeps one weight cache per process: there, one open program at a time shares (the
 * first to open), and any other opened meanwhile packs its own. */
typedef enum {
    RS_PACKING_AS_INDEXED = 0, /* shared where the index says the compiler checked it (`shared_packing`) */
    RS_PACKING_OWN = 1,        /* never shared (also what a runtime without a weight cache supports) */
    RS_PACKING_SHARED = 2      /* always shared: only for files the caller knows to be safe */
} rs_packing;

/* Whether `packing` is one of the values above (a backend refuses any other when it is opened). */
static inline int rs_packing_valid(rs_packing packing) {
    return packing == RS_PACKING_AS_INDEXED || packing == RS_PACKING_OWN || packing == RS_PACKING_SHARED;
}

/* Whether a program opened for `artifact` (any artifact of its file) shares packed weights under `packing`. */
static inline int rs_packing_shared(rs_packing packing, const rs_artifact *artifact) {
    return packing == RS_PACKING_SHARED || (packing == RS_PACKING_AS_INDEXED && artifact->shared_packing);
}

/* A runtime backend, plugged in by the caller so the core never depends on one. Tensors are raw, in the
 * artifact's own input/output types (the runner quantizes and dequantizes with the index's parameters).
 *
 * A program is one artifact file; a model is one entry point of an open program (a rung). Several artifacts may
 * share a file (the ladder layout), so a program may hold several loaded models at once.
 *
 * `open` gets a file's bytes exactly as the core read and verified them (never a path): `data` stays valid and
 * unchanged until `close` of that program returns, and is owned by the core; `artifact` is one of the file's
 * artifacts (its `file` names it in messages, its `shared_packing` says whether the entry points may share
 * packed weights), valid during the call only. `load` prepares the artifact's
 * entry point of an open program without file I/O; `unload` releases one model. The core unloads every model
 * of a program before closing it, never unloads a model while it runs, and serialises every call on one
 * program and its models; calls for different programs may come from different threads.
 *
 * `open` and `load` return RS_ERR_NO_MEMORY when an allocation or another resource ran out (the runner may try
 * again later: ExecuTorch's MemoryAllocationFailed, DelegateMemoryAllocationFailed and OutOfResources, LiteRT's
 * status 2; any other LiteRT status, from its compilation too, counts as a refusal) and
 * RS_ERR_BACKEND when the runtime refuses the program or the entry point (the runner does not try it again;
 * when `open` refused a file, none of the rungs sharing it).
 *
 * `release` frees `context` and whatever else the backend holds (a loaded runtime library, options); it is called
 * once, by rs_backend_close. A backend whose context its maker frees itself (a caller's own backend) leaves it
 * NULL. */
typedef struct rs_backend {
    const char *name; /* must equal the artifacts' `backend` ("litert", "executorch") */
    void *context;    /* backend-wide state, owned by the backend (see `release`) */
    rs_status (*open)(void *context, const void *data, size_t size, const rs_artifact *artifact, void **program,
                      rs_error *err);
    rs_status (*load)(void *program, const rs_artifact *artifact, void **model, rs_error *err);
    rs_status (*run)(void *model, const void *input, size_t input_bytes, void *output, size_t output_bytes,
                     rs_error *err);
    void (*unload)(void *model);
    void (*close)(void *program);
    void (*release)(void *context);
} rs_backend;

/* Releases a backend an opener filled (rs_litert_backend_open_with, rs_executorch_backend_open_with, ...): calls
 * its `release` with its context, once, and clears `*backend`. Call it after every runner using the backend is
 * closed; a NULL backend, or one closed already or never opened (all zero), is left alone. Symmetric with the
 * opener whatever the backend, so callers never switch on its name. */
RS_API void rs_backend_close(rs_backend *backend);

/* The running variant, the rungs and programs kept resident, and the policy that keeps them fitting: opaque,
 * rs_runner_open .. rs_runner_close. */
typedef struct rs_runner rs_runner;

/* Selects a variant for the memory probed under `memory_root` and loads it with `backend`. The runner holds a
 * reference to the bundle (see rs_bundle_close); the backend must outlive the runner. */
RS_API rs_status rs_runner_open(rs_bundle *bundle, const rs_policy *policy, const rs_backend *backend,
                                const char *memory_root, rs_runner **out, rs_error *err);

/* Runs one image: `input` is float32 NCHW, already normalised as the index's input line says, with exactly
 * the input shape's element count, every value finite; `logits` receives one float per label. Returns
 * RS_ERR_NO_MODEL when no variant is loaded. */
RS_API rs_status rs_runner_run(rs_runner *runner, const float *input, size_t input_count, float *logits,
                               size_t logits_count, rs_error *err);

/* Probes memory again and switches variant if another one should run now. The runner keeps each program (an
 * artifact file, read and verified once) open while any of its rungs is loaded, and keeps rungs loaded after a
 * switch while memory allows: switching to a loaded rung loads nothing, and loading another rung of an open
 * program (a ladder file) reads no file. Selection counts what resident rungs would give back. A rung not
 * loaded is loaded before the current one is released only if both fit, after unloading other resident rungs,
 * least recently used first; otherwise the current one is released first and, if the new one fails, restored
 * from its program or the verified bytes kept in memory. When the restore fails too, the error says so and the
 * runner has no model until a later refresh loads one. After each refresh, rungs other than the current one are
 * unloaded, least recently used first, while less than the headroom is available; the current rung is never
 * unloaded while it runs. A variant whose file no longer verifies is refused with the reason and remembered as
 * invalid by the bundle; one its backend refuses (RS_ERR_BACKEND) is not tried again by this runner, nor is any
 * rung of a file whose program the backend refused to open; one that failed for want of memory
 * (RS_ERR_NO_MEMORY) is tried again by a later refresh (choice or preload) only once more memory is
 * available than when it failed, so the same pressure does not release and restore the running rung on every
 * refresh. After each load the drop in available memory is measured (where a probe inside the load fails, the
 * index's figures are counted instead), and a variant that proves larger than the index says is judged by its
 * measured figure from then on (at most twice the index figure plus its file), so switching does not flap.
 * `switched` (may be NULL) is set to 1 when the variant changed. */
RS_API rs_status rs_runner_refresh(rs_runner *runner, int *switched, rs_error *err);

/* Same as rs_runner_refresh with `available` bytes given instead of probed (nothing is measured). */
RS_API rs_status rs_runner_refresh_with(rs_runner *runner, uint64_t available, int *switched, rs_error *err);

/* Loads variant `id` of the runner's backend unless it is resident (from its open program when there is one,
 * else from its file, read and verified now), whatever the memory, and makes it the one that runs until the
 * next refresh, which judges by memory again. The variant it replaces stays resident. A variant refresh no
 * longer tries because its backend refused it is tried again; if it fails again, refresh keeps not trying it. */
RS_API rs_status rs_runner_use(rs_runner *runner, const char *id, rs_error *err);

/* Loads variant `id` as rs_runner_use does without running it: a later switch to it loads nothing. Resident
 * rungs other than the current one are unloaded by a refresh that finds less than the headroom free. */
RS_API rs_status rs_runner_preload(rs_runner *runner, const char *id, rs_error *err);

/* The variant that runs now, or NULL when none runs (after a failed switch and restore; other rungs may still be
 * loaded). The pointer stays valid while the runner lives. */
RS_API const rs_artifact *rs_runner_current(rs_runner *runner);

/* Sets `*loaded` to 1 when variant `id` of the runner's backend is resident (the one that runs, or one kept
 * beside it: after a switch, a preload or preload_neighbours), else 0. Returns RS_ERR_ARGUMENT, `*loaded`
 * untouched, when the backend has no variant `id`. */
RS_API rs_status rs_runner_resident(rs_runner *runner, const char *id, int *loaded, rs_error *err);

/* Unloads every rung, closes every program, releases the runner's bundle reference and frees the runner.
 * NULL is ignored. */
RS_API void rs_runner_close(rs_runner *runner);

/* Fills `err` (if not NULL) with `code` and a printf-style message, and returns `code`: for backends. */
RS_API rs_status rs_error_set(rs_error *err, rs_status code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

RS_API const char *rs_status_name(rs_status status);
RS_API const char *rs_verdict_name(rs_verdict_kind kind);

#ifdef __cplusplus
}
#endif

#endif
