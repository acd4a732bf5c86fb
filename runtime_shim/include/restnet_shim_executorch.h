/* restnet-shim ExecuTorch backend: runs `.pte` variants with the ExecuTorch runtime (Module API). */
#ifndef RESTNET_SHIM_EXECUTORCH_H
#define RESTNET_SHIM_EXECUTORCH_H

#include "restnet_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the ExecuTorch backend loads methods. */
typedef struct rs_executorch_options {
    /* Nonzero (off by default, as rs_litert_options says; ExecuTorch keys by content and packing seed):
     * XNNPACK packs each distinct weight and bias pair once
     * per process, and every method loaded with this option uses that one packed copy (XNNPACK's weight cache,
     * keyed by the constants' content); the last method using a copy frees it when it unloads. The rungs of a
     * ladder file then hold the blocks they share once in memory (restnetc quantizes the blocks a stitched rung
     * shares with a parent to the parent's bytes). The cost: XNNPACK methods loaded with it run one at a time in the process
     * (the cache's lock), also across runners. */
    int share_packed_weights;
} rs_executorch_options;

/* Fills `out` to load methods as `options` says (copied; NULL: the defaults above). The ExecuTorch runtime, its
 * kernels and the XNNPACK delegate are linked into this library. */
RS_API rs_status rs_executorch_backend_open_with(const rs_executorch_options *options, rs_backend *out,
                                                 rs_error *err);

/* rs_executorch_backend_open_with the default options. */
RS_API rs_status rs_executorch_backend_open(rs_backend *out, rs_error *err);

#ifdef __cplusplus
}
#endif

#endif
