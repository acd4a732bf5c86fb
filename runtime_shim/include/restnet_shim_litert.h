/* restnet-shim LiteRT backend: runs `.tflite` variants with libLiteRt.so, loaded at run time (dlopen). */
#ifndef RESTNET_SHIM_LITERT_H
#define RESTNET_SHIM_LITERT_H

#include "restnet_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the LiteRT backend compiles programs. */
typedef struct rs_litert_options {
    /* Nonzero (off by default: XNNPACK keys packed weights by buffer, not by the input quantization packing
     * folds in, so a ladder whose rungs use one buffer under different quantizations runs wrong; restnetc
     * ladders built with shared quantization do not): a program's compilation packs each weight and bias
     * buffer of the file once for all its signatures (XNNPACK's weight cache, in memory), where without it each
     * signature packs its own copy. The rungs of a ladder file share buffers wherever their bytes are equal
     * (restnetc quantizes the blocks a stitched rung shares with a parent to the parent's bytes). Needs a
     * LiteRT whose opaque options take the XNNPACK settings as TOML (2.3); with 0, older 2.x libraries work. */
    int share_packed_weights;
} rs_litert_options;

/* Loads `library` (a path to libLiteRt.so, or a bare name searched on the library path), creates a LiteRT
 * environment and fills `out` to compile programs as `options` says (copied; NULL: the defaults above).
 * Release with rs_litert_backend_close after every runner using it is closed. */
RS_API rs_status rs_litert_backend_open_with(const char *library, const rs_litert_options *options,
                                             rs_backend *out, rs_error *err);

/* rs_litert_backend_open_with the default options. */
RS_API rs_status rs_litert_backend_open(const char *library, rs_backend *out, rs_error *err);
RS_API void rs_litert_backend_close(rs_backend *backend);

#ifdef __cplusplus
}
#endif

#endif
