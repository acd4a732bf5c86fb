/* libFuzzer target: arbitrary bytes as a --input file (binary PGM/PPM or raw float32) must never crash the
 * reader, whose output must fill exactly the input tensor (run under ASan/UBSan), with either resize filter (odd
 * sizes bicubic). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "image_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const rs_input_spec spec = {
        {1, 3, 8, 8}, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}, size % 2 ? RS_RESIZE_BICUBIC : RS_RESIZE_BILINEAR};
    float out[3 * 8 * 8];
    FILE *file = fmemopen((void *)data, size, "rb");
    if (file == NULL) {
        return 0;
    }
    rs_error err;
    rs_read_input_stream(file, "fuzz", &spec, out, sizeof out / sizeof *out, &err);
    fclose(file);
    return 0;
}
