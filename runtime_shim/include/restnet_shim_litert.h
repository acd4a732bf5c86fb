/* restnet-shim LiteRT backend: runs `.tflite` variants with libLiteRt.so, loaded at run time (dlopen). */
#ifndef RESTNET_SHIM_LITERT_H
#define RESTNET_SHIM_LITERT_H

#include "restnet_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the LiteRT backend compiles programs. */
typedef struct rs_litert_options {
    /* Whether the signatures of one file share packed weights (rs_packing; default RS_PACKING_AS_INDEXED).
     * Shared, a program's compilation packs each weight and bias buffer of the file once for all its signatures
     * (XNNPACK's weight cache, in memory), where otherwise each signature packs its own copy. Sharing needs a
     * LiteRT whose opaque options take the XNNPACK settings as TOML (2.2 and later; checked with 2.3); with
     * RS_PACKING_OWN, older 2.x libraries work. */
    rs_packing packing;
    /* Threads XNNPACK runs each compiled program on: 0 (default) leaves LiteRT's own choice (one thread in 2.3),
     * more than rs_usable_cpus() count as that many, negative is refused. Pass rs_bundle_threads() for what the
     * compiler's target says. Like sharing, a count needs XNNPACK's options as TOML: an older
     * library runs at its default (and packs per signature, unless RS_PACKING_SHARED makes that an error). */
    int threads;
} rs_litert_options;

/* Loads `library` (a path to libLiteRt.so, or a bare name searched on the library path), creates a LiteRT
 * environment and fills `out` to compile programs as `options` says (copied; NULL: the defaults above).
 * Release with rs_backend_close after every runner using it is closed. */
RS_API rs_status rs_litert_backend_open_with(const char *library, const rs_litert_options *options,
                                             rs_backend *out, rs_error *err);

/* rs_litert_backend_open_with the default options. */
RS_API rs_status rs_litert_backend_open(const char *library, rs_backend *out, rs_error *err);

#ifdef __cplusplus
}
#endif

#endif
