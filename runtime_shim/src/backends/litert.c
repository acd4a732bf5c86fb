/* LiteRT backend: `libLiteRt.so` (from the ai-edge-litert wheel, or a device's copy) opened at run time.
 *
 * The few LiteRT C API functions used here are declared by this file from the documented API (LiteRT 2.x,
 * `litert/c/litert_*.h`): handles are opaque pointers, statuses are ints (0 = ok), and the ranked tensor type is
 * only passed back to LiteRT, so it is kept as opaque storage. Compilation requests the CPU accelerator
 * (XNNPACK); "no accelerator" fails in LiteRT. A program is compiled once, every signature with it, when it is
 * opened; loading an entry point adds only its signature's buffers, so switching within a program is free.
 * Where the options and the index allow it (rs_packing), that compilation packs each buffer of the file once for
 * every signature using it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restnet_shim_litert.h"

typedef int lrt_status;
typedef void *lrt_handle;
typedef struct {
    _Alignas(16) unsigned char bytes[512]; /* LiteRtRankedTensorType, never read here */
} lrt_tensor_type;

/* kLiteRtStatusErrorMemoryAllocationFailure is LiteRtStatus 2. */
enum { LRT_HW_ACCELERATOR_CPU = 1, LRT_LOCK_READ = 0, LRT_LOCK_WRITE = 1, LRT_STATUS_NO_MEMORY = 2 };

typedef struct {
    void *library;
    lrt_handle environment;
    rs_packing packing; /* RS_PACKING_OWN when this library has no opaque options */
    int threads;        /* XNNPACK's, 1..rs_usable_cpus(), or 0: the library's default */
    lrt_status (*create_environment)(int, const void *, lrt_handle *);
    void (*destroy_environment)(lrt_handle);
    lrt_status (*create_model_from_buffer)(lrt_handle, const void *, size_t, lrt_handle *);
    void (*destroy_model)(lrt_handle);
    lrt_status (*get_num_signatures)(lrt_handle, size_t *);
    lrt_status (*get_model_signature)(lrt_handle, size_t, lrt_handle *);
    lrt_status (*get_signature_key)(lrt_handle, const char **);
    lrt_status (*get_signature_input)(lrt_handle, size_t, lrt_handle *);
    lrt_status (*get_signature_output)(lrt_handle, size_t, lrt_handle *);
    lrt_status (*get_ranked_tensor_type)(lrt_handle, lrt_tensor_type *);
    lrt_status (*create_options)(lrt_handle *);
    void (*destroy_options)(lrt_handle);
    lrt_status (*set_hardware_accelerators)(lrt_handle, int);
    lrt_status (*create_opaque_options)(const char *, void *, void (*)(void *), lrt_handle *);
    lrt_status (*add_opaque_options)(lrt_handle, lrt_handle);
    void (*destroy_opaque_options)(lrt_handle);
    lrt_status (*create_compiled_model)(lrt_handle, lrt_handle, lrt_handle, lrt_handle *);
    void (*destroy_compiled_model)(lrt_handle);
    lrt_status (*get_input_requirements)(lrt_handle, size_t, size_t, lrt_handle *);
    lrt_status (*get_output_requirements)(lrt_handle, size_t, size_t, lrt_handle *);
    lrt_status (*create_buffer_from_requirements)(lrt_handle, const lrt_tensor_type *, lrt_handle, lrt_handle *);
    void (*destroy_buffer)(lrt_handle);
    lrt_status (*lock_buffer)(lrt_handle, void **, int);
    lrt_status (*unlock_buffer)(lrt_handle);
    lrt_status (*get_buffer_packed_size)(lrt_handle, size_t *);
    lrt_status (*run_compiled_model)(lrt_handle, size_t, size_t, lrt_handle *, size_t, lrt_handle *);
} litert_api;

/* An open program: the model and its compilation (every signature, once), shared by its entry points. */
typedef struct {
    const litert_api *api;
    lrt_handle model;
    lrt_handle compiled;
} litert_program;

/* A loaded entry point: its signature and host buffers for its one input and one output. */
typedef struct {
    const litert_program *program;
    size_t signature;
    lrt_handle input;
    lrt_handle output;
} litert_entry;

#define LRT_CALL(what, call)                                                                          \
    do {                                                                                              \
        lrt_status lrt_code = (call);                                                                 \
        if (lrt_code != 0) {                                                                          \
            status = rs_error_set(err, lrt_code == LRT_STATUS_NO_MEMORY ? RS_ERR_NO_MEMORY : RS_ERR_BACKEND,      \
                                  "%s: %s failed with LiteRT status %d", name, what, lrt_code);                     \
            goto fail;                                                                                \
        }                                                                                             \
    } while (0)

static void close_program(void *handle) {
    litert_program *p = handle;
    if (p == NULL) {
        return;
    }
    if (p->compiled) p->api->destroy_compiled_model(p->compiled);
    if (p->model) p->api->destroy_model(p->model);
    free(p);
}

/* Adds `toml` (copied, NUL-terminated: LiteRT reads it as a C string) to `options` as the opaque options `id`. */
static lrt_status add_toml_options(const litert_api *api, lrt_handle options, const char *id, const char *toml) {
    char *payload = strdup(toml);
    lrt_handle opaque = NULL;
    if (payload == NULL) {
        return LRT_STATUS_NO_MEMORY;
    }
    lrt_status code = api->create_opaque_options(id, payload, free, &opaque);
    if (code != 0) {
        free(payload);
        return code;
    }
    code = api->add_opaque_options(options, opaque); /* on success, the options own it */
    if (code != 0) {
        api->destroy_opaque_options(opaque);
    }
    return code;
}

/* Gives the CPU accelerator (XNNPACK, whose options are TOML under the id "xnnpack") its settings, all in one
 * payload (LiteRT reads the first payload of an id): a weight cache in memory when `share` (packed weights are
 * keyed by the file's buffer, so every signature using a buffer shares its packing), and `threads` when not 0. */
static lrt_status set_xnnpack_options(const litert_api *api, lrt_handle options, int share, int threads) {
    char settings[96];
    int length = snprintf(settings, sizeof settings, "%s", share ? "weight_cache_file_path = \":memory:\"\n" : "");
    if (threads > 0) snprintf(settings + length, sizeof settings - (size_t)length, "num_threads = %d\n", threads);
    return add_toml_options(api, options, "xnnpack", settings);
}

/* Compiles `p->model` for the CPU accelerator, with XNNPACK's weight cache when `share` and on `threads` threads
 * (0: LiteRT's default). Per-channel zero points that are all zero (restnetc's symmetric weights) are asked to be
 * kept once per tensor rather than per channel in every subgraph's interpreter (LiteRT's runtime option
 * compress_quantization_zero_points: benchmarks/RESULTS.md section 9); a library without opaque options, or one
 * that refuses the option, keeps its default. */
static rs_status compile(litert_program *p, int share, int threads, const char *name, rs_error *err) {
    const litert_api *api = p->api;
    rs_status status = RS_OK;
    lrt_handle options = NULL;
    LRT_CALL("LiteRtCreateOptions", api->create_options(&options));
    LRT_CALL("LiteRtSetOptionsHardwareAccelerators", api->set_hardware_accelerators(options, LRT_HW_ACCELERATOR_CPU));
    if (share || threads > 0) {
        LRT_CALL(share ? "requesting XNNPACK's weight cache" : "setting XNNPACK's threads",
                 set_xnnpack_options(api, options, share, threads));
    }
    if (api->create_opaque_options != NULL) { /* a memory preference: refused, LiteRT keeps its default */
        (void)add_toml_options(api, options, "runtime_options_string", "compress_quantization_zero_points = true\n");
    }
    LRT_CALL("LiteRtCreateCompiledModel", api->create_compiled_model(api->environment, p->model, options, &p->compiled));
fail:
    if (options) api->destroy_options(options);
    return status;
}

/* `data` outlives the program (the core frees it after close), as LiteRtCreateModelFromBuffer requires. A program
 * that LiteRT will not compile with XNNPACK's settings (a library reading its options otherwise, before 2.2) is
 * compiled again without them, packing per signature at LiteRT's default threads: the threads are a speed
 * preference, and sharing as the index says a memory one; forced shared (RS_PACKING_SHARED), it is an error. */
static rs_status open_program(void *context, const void *data, size_t size, const rs_artifact *artifact,
                              void **out, rs_error *err) {
    const litert_api *api = context;
    const char *name = artifact->file;
    rs_status status = RS_OK;
    litert_program *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return rs_error_set(err, RS_ERR_NO_MEMORY, "%s: cannot allocate", name);
    }
    p->api = api;
    LRT_CALL("LiteRtCreateModelFromBuffer", api->create_model_from_buffer(api->environment, data, size, &p->model));
    int share = rs_packing_shared(api->packing, artifact);
    rs_error shared_failure = {0}; /* reported only when no retry follows, so a successful retry leaves `err` alone */
    status = compile(p, share, api->threads, name, &shared_failure);
    if (status == RS_ERR_BACKEND && (share || api->threads > 0) && api->packing != RS_PACKING_SHARED) {
        status = compile(p, 0, 0, name, err);
    } else if (status != RS_OK && err != NULL) {
        *err = shared_failure;
    }
    if (status != RS_OK) {
        goto fail;
    }
    *out = p;
    return RS_OK;
fail:
    close_program(p);
    return status;
}

static void unload(void *handle) {
    litert_entry *e = handle;
    if (e == NULL) {
        return;
    }
    if (e->input) e->program->api->destroy_buffer(e->input);
    if (e->output) e->program->api->destroy_buffer(e->output);
    free(e);
}

/* A host buffer for the first input or output of the entry's signature, as the compiled model requires it. */
static lrt_status make_buffer(const litert_entry *e, int output, lrt_handle *buffer) {
    const litert_api *api = e->program->api;
    lrt_handle signature, tensor, requirements;
    lrt_tensor_type type;
    lrt_status code = api->get_model_signature(e->program->model, e->signature, &signature);
    if (code == 0) code = (output ? api->get_signature_output : api->get_signature_input)(signature, 0, &tensor);
    if (code == 0) code = api->get_ranked_tensor_type(tensor, &type);
    if (code == 0) code = (output ? api->get_output_requirements : api->get_input_requirements)(
                       e->program->compiled, e->signature, 0, &requirements);
    if (code == 0) code = api->create_buffer_from_requirements(api->environment, &type, requirements, buffer);
    return code;
}

/* The index of the signature whose key is `entry_point` in `model`; -1 with `code` set if LiteRT fails, -2 if
 * no signature has that key. */
static long find_signature(const litert_api *api, lrt_handle model, const char *entry_point, lrt_status *code) {
    size_t count = 0;
    *code = api->get_num_signatures(model, &count);
    for (size_t i = 0; *code == 0 && i < count; i++) {
        lrt_handle signature;
        const char *key = NULL;
        *code = api->get_model_signature(model, i, &signature);
        if (*code == 0) *code = api->get_signature_key(signature, &key);
        if (*code == 0 && key != NULL && strcmp(key, entry_point) == 0) return (long)i;
    }
    return *code == 0 ? -2 : -1;
}

/* An entry point of an open program: its signature and buffers (the compilation is the program's). */
static rs_status load(void *handle, const rs_artifact *artifact, void **out, rs_error *err) {
    const litert_program *p = handle;
    const char *name = artifact->id;
    rs_status status = RS_OK;
    litert_entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return rs_error_set(err, RS_ERR_NO_MEMORY, "%s: cannot allocate", name);
    }
    e->program = p;
    lrt_status found_code = 0;
    long found = find_signature(p->api, p->model, artifact->entry_point, &found_code);
    LRT_CALL("finding the entry point's signature", found_code);
    if (found < 0) {
        status = rs_error_set(err, RS_ERR_BACKEND, "%s: no signature '%s' in the program", name, artifact->entry_point);
        goto fail;
    }
    e->signature = (size_t)found;
    LRT_CALL("creating the input buffer", make_buffer(e, 0, &e->input));
    LRT_CALL("creating the output buffer", make_buffer(e, 1, &e->output));
    *out = e;
    return RS_OK;
fail:
    unload(e);
    return status;
}

static rs_status copy_through(const litert_api *api, lrt_handle buffer, void *data, size_t bytes, int write,
                              rs_error *err) {
    size_t size = 0;
    void *host = NULL;
    if (api->get_buffer_packed_size(buffer, &size) != 0 || size != bytes) {
        return rs_error_set(err, RS_ERR_BACKEND, "LiteRT %s tensor has %zu bytes, the bundle index implies %zu",
                              write ? "input" : "output", size, bytes);
    }
    if (api->lock_buffer(buffer, &host, write ? LRT_LOCK_WRITE : LRT_LOCK_READ) != 0 || host == NULL) {
        return rs_error_set(err, RS_ERR_BACKEND, "LiteRtLockTensorBuffer failed");
    }
    if (write) memcpy(host, data, bytes);
    else memcpy(data, host, bytes);
    return api->unlock_buffer(buffer) == 0 ? RS_OK : rs_error_set(err, RS_ERR_BACKEND, "LiteRtUnlockTensorBuffer failed");
}

static rs_status run(void *handle, const void *input, size_t input_bytes, void *output, size_t output_bytes,
                     rs_error *err) {
    litert_entry *e = handle;
    const litert_api *api = e->program->api;
    rs_status status = copy_through(api, e->input, (void *)input, input_bytes, 1, err);
    if (status != RS_OK) {
        return status;
    }
    lrt_status code = api->run_compiled_model(e->program->compiled, e->signature, 1, &e->input, 1, &e->output);
    if (code != 0) {
        return rs_error_set(err, RS_ERR_BACKEND, "LiteRtRunCompiledModel failed with LiteRT status %d", code);
    }
    return copy_through(api, e->output, output, output_bytes, 0, err);
}

#define LRT_SYMBOL(field, name)                                                                     \
    do {                                                                                            \
        *(void **)(&api->field) = dlsym(api->library, name);                                        \
        if (api->field == NULL) {                                                                   \
            rs_error_set(err, RS_ERR_BACKEND, "%s: no symbol %s (a LiteRT 2.x library is expected)", library, name); \
            goto fail;                                                                              \
        }                                                                                           \
    } while (0)

/* rs_backend.release: the environment, then the library its functions come from. */
static void release(void *context) {
    litert_api *api = context;
    api->destroy_environment(api->environment);
    dlclose(api->library);
    free(api);
}

rs_status rs_litert_backend_open_with(const char *library, const rs_litert_options *options, rs_backend *out,
                                      rs_error *err) {
    if (library == NULL || out == NULL) {
        return rs_error_set(err, RS_ERR_ARGUMENT, "rs_litert_backend_open_with: library path and out are required");
    }
    litert_api *api = calloc(1, sizeof *api);
    if (api == NULL) {
        return rs_error_set(err, RS_ERR_BACKEND, "cannot allocate the LiteRT backend");
    }
    rs_packing packing = options != NULL ? options->packing : RS_PACKING_AS_INDEXED;
    int threads = options != NULL ? options->threads : 0;
    if (!rs_packing_valid(packing) || threads < 0) {
        free(api);
        return threads < 0 ? rs_error_set(err, RS_ERR_ARGUMENT, "rs_litert_backend_open_with: threads %d: expected 0 "
                                                                "(LiteRT's default) or more", threads)
                           : rs_error_set(err, RS_ERR_ARGUMENT, "rs_litert_backend_open_with: packing %d is not an "
                                                                "rs_packing", (int)packing);
    }
    api->packing = packing;
    int usable = rs_usable_cpus();
    api->threads = threads < usable ? threads : usable;
    api->library = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (api->library == NULL) {
        const char *why = dlerror();
        rs_error_set(err, RS_ERR_BACKEND, "cannot load %s: %s", library, why ? why : "unknown error");
        free(api);
        return RS_ERR_BACKEND;
    }
    LRT_SYMBOL(create_environment, "LiteRtCreateEnvironment");
    LRT_SYMBOL(destroy_environment, "LiteRtDestroyEnvironment");
    LRT_SYMBOL(create_model_from_buffer, "LiteRtCreateModelFromBuffer");
    LRT_SYMBOL(destroy_model, "LiteRtDestroyModel");
    LRT_SYMBOL(get_num_signatures, "LiteRtGetNumModelSignatures");
    LRT_SYMBOL(get_model_signature, "LiteRtGetModelSignature");
    LRT_SYMBOL(get_signature_key, "LiteRtGetSignatureKey");
    LRT_SYMBOL(get_signature_input, "LiteRtGetSignatureInputTensorByIndex");
    LRT_SYMBOL(get_signature_output, "LiteRtGetSignatureOutputTensorByIndex");
    LRT_SYMBOL(get_ranked_tensor_type, "LiteRtGetRankedTensorType");
    LRT_SYMBOL(create_options, "LiteRtCreateOptions");
    LRT_SYMBOL(destroy_options, "LiteRtDestroyOptions");
    LRT_SYMBOL(set_hardware_accelerators, "LiteRtSetOptionsHardwareAccelerators");
    if (api->packing == RS_PACKING_SHARED) { /* required then; else without them, XNNPACK runs at its defaults */
        LRT_SYMBOL(create_opaque_options, "LiteRtCreateOpaqueOptions");
        LRT_SYMBOL(add_opaque_options, "LiteRtAddOpaqueOptions");
        LRT_SYMBOL(destroy_opaque_options, "LiteRtDestroyOpaqueOptions");
    } else {
        *(void **)(&api->create_opaque_options) = dlsym(api->library, "LiteRtCreateOpaqueOptions");
        *(void **)(&api->add_opaque_options) = dlsym(api->library, "LiteRtAddOpaqueOptions");
        *(void **)(&api->destroy_opaque_options) = dlsym(api->library, "LiteRtDestroyOpaqueOptions");
        if (!api->create_opaque_options || !api->add_opaque_options || !api->destroy_opaque_options) {
            api->packing = RS_PACKING_OWN;
            api->threads = 0;
        }
    }
    LRT_SYMBOL(create_compiled_model, "LiteRtCreateCompiledModel");
    LRT_SYMBOL(destroy_compiled_model, "LiteRtDestroyCompiledModel");
    LRT_SYMBOL(get_input_requirements, "LiteRtGetCompiledModelInputBufferRequirements");
    LRT_SYMBOL(get_output_requirements, "LiteRtGetCompiledModelOutputBufferRequirements");
    LRT_SYMBOL(create_buffer_from_requirements, "LiteRtCreateManagedTensorBufferFromRequirements");
    LRT_SYMBOL(destroy_buffer, "LiteRtDestroyTensorBuffer");
    LRT_SYMBOL(lock_buffer, "LiteRtLockTensorBuffer");
    LRT_SYMBOL(unlock_buffer, "LiteRtUnlockTensorBuffer");
    LRT_SYMBOL(get_buffer_packed_size, "LiteRtGetTensorBufferPackedSize");
    LRT_SYMBOL(run_compiled_model, "LiteRtRunCompiledModel");
    lrt_status code = api->create_environment(0, NULL, &api->environment);
    if (code != 0) {
        rs_error_set(err, RS_ERR_BACKEND, "%s: LiteRtCreateEnvironment failed with LiteRT status %d", library, code);
        goto fail;
    }
    *out = (rs_backend){"litert", api, open_program, load, run, unload, close_program, release};
    return RS_OK;
fail:
    dlclose(api->library);
    free(api);
    return RS_ERR_BACKEND;
}

rs_status rs_litert_backend_open(const char *library, rs_backend *out, rs_error *err) {
    return rs_litert_backend_open_with(library, NULL, out, err);
}
