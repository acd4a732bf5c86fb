/* restnet-shim ExecuTorch backend: runs `.pte` variants with the ExecuTorch runtime (Module API). */
#ifndef RESTNET_SHIM_EXECUTORCH_H
#define RESTNET_SHIM_EXECUTORCH_H

#include "restnet_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the ExecuTorch backend loads methods. */
typedef struct rs_executorch_options {
    /* Whether methods of one file share packed weights (rs_packing; default RS_PACKING_AS_INDEXED). Shared,
     * XNNPACK packs each distinct weight and bias pair once per process (its weight cache, keyed by the
     * constants' content) and every method loaded so uses that copy; the last method using a copy frees it when
     * it unloads. The cost: such methods run one at a time in the process (the cache's lock), also across
     * runners. restnetc does not check .pte files yet, so their index says `own`. */
    rs_packing packing;
    /* Threads of ExecuTorch's thread pool, which XNNPACK methods and kernels run on: 0 (default) leaves the pool
     * as it is (cpuinfo's count of the device's performance cores, whatever the affinity mask, unless an earlier
     * load resized it), more than rs_usable_cpus() count as that many, negative is refused. The pool is the
     * process's: loading a method resizes it only while no method of this library is loaded anywhere in the
     * process (a loaded method keeps the pool it was given), so the first method to load decides for all that
     * load with it; a resize the pool refuses fails the load. The pool is shared with whatever else in the process
     * runs ExecuTorch from the same libraries (its Python bindings, say), which the backend cannot see: such an
     * application passes 0 unless none of its own methods is loaded when the backend loads one. Pass
     * rs_bundle_threads() for what the compiler's target says. */
    int threads;
} rs_executorch_options;

/* Fills `out` to load methods as `options` says (copied; NULL: the defaults above). The ExecuTorch runtime, its
 * kernels and the XNNPACK delegate are linked into this library. Release with rs_backend_close after every
 * runner using it is closed. */
RS_API rs_status rs_executorch_backend_open_with(const rs_executorch_options *options, rs_backend *out,
                                                 rs_error *err);

/* rs_executorch_backend_open_with the default options. */
RS_API rs_status rs_executorch_backend_open(rs_backend *out, rs_error *err);

#ifdef __cplusplus
}
#endif

#endif
