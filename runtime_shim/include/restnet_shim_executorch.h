/* restnet-shim ExecuTorch backend: runs `.pte` variants with the ExecuTorch runtime (Module API). */
#ifndef RESTNET_SHIM_EXECUTORCH_H
#define RESTNET_SHIM_EXECUTORCH_H

#include "restnet_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills `out`. The ExecuTorch runtime, its kernels and the XNNPACK delegate are linked into this library. */
RS_API rs_status rs_executorch_backend_open(rs_backend *out, rs_error *err);

#ifdef __cplusplus
}
#endif

#endif
