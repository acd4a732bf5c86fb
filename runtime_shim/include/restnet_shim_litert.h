/* restnet-shim LiteRT backend: runs `.tflite` variants with libLiteRt.so, loaded at run time (dlopen). */
#ifndef RESTNET_SHIM_LITERT_H
#define RESTNET_SHIM_LITERT_H

#include "restnet_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads `library` (a path to libLiteRt.so, or a bare name searched on the library path), creates a LiteRT
 * environment and fills `out`. Release with rs_litert_backend_close after every runner using it is closed. */
RS_API rs_status rs_litert_backend_open(const char *library, rs_backend *out, rs_error *err);
RS_API void rs_litert_backend_close(rs_backend *backend);

#ifdef __cplusplus
}
#endif

#endif
