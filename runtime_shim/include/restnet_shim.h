/*
 * restnet-shim: pick the bundle variant that fits the memory available now.
 *
 * The core reads `bundle.index`, the compact form of `manifest.json` that `restnetc build` writes beside
 * it, probes available memory (MemAvailable and cgroup v1/v2 limits), validates variants (path inside the
 * bundle, size, sha256) and selects the most accurate one that fits. It has no dependencies beyond libc,
 * no global state, and every function reports a status with a message instead of aborting.
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

#define RS_INDEX_VERSION 1
#define RS_MAX_ARTIFACTS 256
#define RS_MAX_LABELS 1024

typedef enum {
    RS_OK = 0,
    RS_ERR_ARGUMENT,     /* a caller passed something invalid */
    RS_ERR_IO,           /* a file could not be opened or read */
    RS_ERR_FORMAT,       /* the index (or a memory file) is not what the compiler writes */
    RS_ERR_UNSAFE_PATH,  /* an artifact path leaves the bundle directory */
    RS_ERR_SIZE,         /* an artifact's size differs from the index */
    RS_ERR_DIGEST,       /* an artifact's sha256 differs from the index */
    RS_ERR_NOTHING_FITS, /* no valid variant of the backend fits the memory available */
    RS_ERR_NO_MEMORY,    /* an allocation failed */
    RS_ERR_BACKEND       /* a runtime backend failed or is unavailable */
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
    double accuracy;      /* top-1 % of the artifact on the held-out images */
    uint64_t params;
    char entry_point[64];
    rs_quantization input_quantization;
    rs_quantization output_quantization;
} rs_artifact;

typedef struct {
    uint32_t shape[4]; /* N, C, H, W */
    float mean[3];
    float std[3];
} rs_input_spec;

typedef struct rs_bundle rs_bundle;

/* Opens the bundle directory `dir` and parses its `bundle.index`. Files are validated on demand. */
RS_API rs_status rs_bundle_open(const char *dir, rs_bundle **out, rs_error *err);
RS_API void rs_bundle_close(rs_bundle *bundle);
RS_API size_t rs_bundle_artifact_count(const rs_bundle *bundle);
RS_API const rs_artifact *rs_bundle_artifact(const rs_bundle *bundle, size_t index);
RS_API const rs_input_spec *rs_bundle_input(const rs_bundle *bundle);
RS_API size_t rs_bundle_label_count(const rs_bundle *bundle);
RS_API const char *rs_bundle_label(const rs_bundle *bundle, size_t index);
RS_API const char *rs_bundle_dir(const rs_bundle *bundle);

/* Validates artifact `index`: its path stays inside the bundle (no `..`, not absolute, no symlink out),
 * its size and sha256 match the index. The result is remembered. `resolved` (may be NULL, PATH_MAX) gets
 * the real path of the file. */
RS_API rs_status rs_bundle_validate(rs_bundle *bundle, size_t index, char *resolved, size_t resolved_size,
                                  rs_error *err);

/* Memory available to this process, in bytes, and where the figure came from. */
typedef struct {
    uint64_t available;     /* the tightest of the figures below */
    uint64_t mem_available; /* MemAvailable from /proc/meminfo (UINT64_MAX if absent) */
    uint64_t cgroup_limit;  /* the memory cgroup's limit (UINT64_MAX if none) */
    uint64_t cgroup_usage;  /* the memory cgroup's usage (0 if no limit) */
    const char *source;     /* "meminfo", "cgroup v1" or "cgroup v2" */
} rs_memory;

/* Probes memory under `root` ("/" normally; tests pass a directory of fixture files). */
RS_API rs_status rs_probe_memory(const char *root, rs_memory *out, rs_error *err);

typedef struct {
    const char *backend;     /* "litert" or "executorch" (required) */
    uint64_t headroom_bytes; /* kept free beyond each variant's own need */
    double hysteresis;       /* fraction: moving up to a larger variant needs this much extra room */
    const char *override_id; /* if set, this variant is used when it is valid, whatever the memory */
} rs_policy;

typedef enum {
    RS_VERDICT_CHOSEN = 0,
    RS_VERDICT_OTHER_BACKEND,
    RS_VERDICT_TOO_LARGE,
    RS_VERDICT_INVALID,
    RS_VERDICT_LESS_ACCURATE,
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

/* Chooses the most accurate valid variant of the policy's backend whose memory need plus headroom fits in
 * `available`. `current` is the variant in use (SIZE_MAX if none): a larger one replaces it only with
 * `hysteresis` extra room, so the choice does not flap near a boundary. Returns RS_ERR_NOTHING_FITS (with
 * every verdict filled) when nothing qualifies. */
RS_API rs_status rs_select(rs_bundle *bundle, const rs_policy *policy, uint64_t available, size_t current,
                    rs_selection *out, rs_error *err);

/* ---- Running variants ---- */

/* A runtime backend, plugged in by the caller so the core never depends on one. Tensors are raw, in the
 * artifact's own input/output types (the runner quantizes and dequantizes with the index's parameters). */
typedef struct rs_backend {
    const char *name; /* must equal the artifacts' `backend` ("litert", "executorch") */
    void *context;    /* backend-wide state, owned by whoever created the backend */
    rs_status (*load)(void *context, const char *path, const rs_artifact *artifact, void **model, rs_error *err);
    rs_status (*run)(void *model, const void *input, size_t input_bytes, void *output, size_t output_bytes,
                     rs_error *err);
    void (*unload)(void *model);
} rs_backend;

typedef struct rs_runner rs_runner;

/* Selects a variant for the memory probed under `memory_root` and loads it with `backend`. The bundle and
 * the backend must outlive the runner. */
RS_API rs_status rs_runner_open(rs_bundle *bundle, const rs_policy *policy, const rs_backend *backend,
                                const char *memory_root, rs_runner **out, rs_error *err);

/* Runs one image: `input` is float32 NCHW, already normalised as the index's input line says, with exactly
 * the input shape's element count; `logits` receives one float per label. */
RS_API rs_status rs_runner_run(rs_runner *runner, const float *input, size_t input_count, float *logits,
                               size_t logits_count, rs_error *err);

/* Probes memory again and switches variant if another one should run now. The new variant is loaded
 * before the old one is released only if both fit; otherwise the old one is released first. `switched`
 * (may be NULL) is set to 1 when the variant changed. */
RS_API rs_status rs_runner_refresh(rs_runner *runner, int *switched, rs_error *err);

/* Same as rs_runner_refresh with `available` bytes given instead of probed. */
RS_API rs_status rs_runner_refresh_with(rs_runner *runner, uint64_t available, int *switched, rs_error *err);

/* The variant that runs now. */
RS_API const rs_artifact *rs_runner_current(const rs_runner *runner);
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
