/* Reading one input image for the CLI: a binary PGM/PPM (resized and normalised here) or raw float32. */
#ifndef RESTNET_SHIM_IMAGE_INPUT_H
#define RESTNET_SHIM_IMAGE_INPUT_H

#include <stdio.h>

#include "restnet_shim.h"

/* Fills `out` (count = C*H*W of `spec`) from `path`: a binary PGM (P5) or PPM (P6) image, stretched to the
 * input size with the spec's antialiased `resize` filter (torch's interpolate(..., antialias=True), as the
 * compiler resizes) and normalised with the spec's mean and std (grey images fill all three channels); or a
 * file of exactly `count` raw little-endian float32 values, already normalised, in NCHW order. */
rs_status rs_read_input(const char *path, const rs_input_spec *spec, float *out, size_t count, rs_error *err);

/* rs_read_input from an open stream (`path` names it in messages); a FIFO or device is never opened by
 * rs_read_input (regular files only), so this is also what the fuzzer drives. */
rs_status rs_read_input_stream(FILE *file, const char *path, const rs_input_spec *spec, float *out, size_t count,
                               rs_error *err);

#endif
