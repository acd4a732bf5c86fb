/* Input files for restnet-shim run: netpbm images or raw float32 tensors. */
#include "image_input.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SIDE 8192

static rs_status fail(rs_error *err, const char *path, const char *why) {
    snprintf(err->message, sizeof err->message, "%s: %s", path, why);
    err->code = RS_ERR_FORMAT;
    return RS_ERR_FORMAT;
}

/* Next header number of a netpbm file, skipping whitespace and comments. */
static int header_number(FILE *file, unsigned *value) {
    int c;
    while ((c = fgetc(file)) != EOF) {
        if (c == '#') {
            while ((c = fgetc(file)) != EOF && c != '\n') {
            }
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
    }
    unsigned number = 0;
    int digits = 0;
    while (c >= '0' && c <= '9' && digits < 6) {
        number = number * 10 + (unsigned)(c - '0');
        digits++;
        c = fgetc(file);
    }
    *value = number;
    return digits > 0 && (c == ' ' || c == '\t' || c == '\n' || c == '\r') ? 0 : -1;
}

static rs_status read_netpbm(FILE *file, const char *path, int channels, const rs_input_spec *spec, float *out,
                             rs_error *err) {
    unsigned width, height, maxval;
    if (header_number(file, &width) || header_number(file, &height) || header_number(file, &maxval) || width == 0 ||
        height == 0 || width > MAX_SIDE || height > MAX_SIDE || maxval == 0 || maxval > 255) {
        return fail(err, path, "bad PGM/PPM header (8-bit binary P5/P6, at most 8192 px a side)");
    }
    size_t size = (size_t)width * height * (size_t)channels;
    uint8_t *pixels = malloc(size);
    if (pixels == NULL) {
        return fail(err, path, "cannot allocate the image");
    }
    if (fread(pixels, 1, size, file) != size) {
        free(pixels);
        return fail(err, path, "truncated image data");
    }
    uint32_t out_h = spec->shape[2], out_w = spec->shape[3];
    for (uint32_t c = 0; c < 3; c++) {
        int source = channels == 1 ? 0 : (int)c;
        for (uint32_t y = 0; y < out_h; y++) {
            /* bilinear, pixel centres aligned (half-pixel offsets) */
            double sy = ((double)y + 0.5) * height / out_h - 0.5;
            sy = sy < 0 ? 0 : sy > height - 1 ? height - 1 : sy;
            unsigned y0 = (unsigned)sy, y1 = y0 + 1 < height ? y0 + 1 : y0;
            double fy = sy - y0;
            for (uint32_t x = 0; x < out_w; x++) {
                double sx = ((double)x + 0.5) * width / out_w - 0.5;
                sx = sx < 0 ? 0 : sx > width - 1 ? width - 1 : sx;
                unsigned x0 = (unsigned)sx, x1 = x0 + 1 < width ? x0 + 1 : x0;
                double fx = sx - x0;
#define PIXEL(yy, xx) ((double)pixels[((size_t)(yy) * width + (xx)) * (size_t)channels + (size_t)source])
                double value = (1 - fy) * ((1 - fx) * PIXEL(y0, x0) + fx * PIXEL(y0, x1)) +
                               fy * ((1 - fx) * PIXEL(y1, x0) + fx * PIXEL(y1, x1));
#undef PIXEL
                out[((size_t)c * out_h + y) * out_w + x] =
                    (float)((value / maxval - spec->mean[c]) / spec->std[c]);
            }
        }
    }
    free(pixels);
    return RS_OK;
}

rs_status rs_read_input_stream(FILE *file, const char *path, const rs_input_spec *spec, float *out, size_t count,
                               rs_error *err) {
    if (spec->shape[1] != 3 || count != (size_t)3 * spec->shape[2] * spec->shape[3]) {
        return fail(err, path, "the bundle's input is not one 3-channel image");
    }
    char magic[2] = {0, 0};
    size_t got = fread(magic, 1, 2, file);
    if (got == 2 && magic[0] == 'P' && (magic[1] == '5' || magic[1] == '6')) {
        return read_netpbm(file, path, magic[1] == '5' ? 1 : 3, spec, out, err);
    }
    rewind(file);
    got = fread(out, sizeof(float), count, file);
    return got == count && fgetc(file) == EOF
               ? RS_OK
               : fail(err, path, "neither a binary PGM/PPM nor exactly C*H*W raw float32 values");
}

rs_status rs_read_input(const char *path, const rs_input_spec *spec, float *out, size_t count, rs_error *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat info;
    if (fd < 0 || fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        if (fd >= 0) close(fd);
        return fail(err, path, fd < 0 ? "cannot open" : "not a regular file");
    }
    FILE *file = fdopen(fd, "rb");
    if (file == NULL) {
        close(fd);
        return fail(err, path, "cannot open");
    }
    rs_status status = rs_read_input_stream(file, path, spec, out, count, err);
    fclose(file);
    return status;
}
