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

/* The taps of one output pixel along one axis: `count` input pixels from `first`, with weights summing to 1. */
typedef struct {
    uint32_t first, count;
    double *weights;
} taps;

/* The weight `resize`'s filter gives a tap at distance `x` >= 0 in (scaled) input pixels (support: make_taps). */
static double filter_weight(rs_resize resize, double x) {
    if (resize == RS_RESIZE_BICUBIC) { /* Keys' cubic with a = -0.5, PIL's and torch's antialiased choice */
        const double a = -0.5;
        return x < 1 ? ((a + 2) * x - (a + 3)) * x * x + 1 : x < 2 ? ((x - 5) * x + 8) * x * a - 4 * a : 0;
    }
    return x < 1 ? 1 - x : 0;
}

/* Antialiased taps from `in` pixels to `out` (PIL's filters, as torch's interpolate with antialias=True and
 * align_corners=False computes them): the filter centred on each output pixel's centre, widened to the scale
 * when downscaling, truncated at the borders and renormalised. A pixel has at most 2 * support + 1 taps, within
 * `widest`. Returns NULL when out of memory (or when the table would not fit a size_t); free the result with
 * free_taps. */
static taps *make_taps(uint32_t in, uint32_t out, rs_resize resize) {
    double scale = (double)in / out, reach = resize == RS_RESIZE_BICUBIC ? 2 : 1;
    double support = reach * (scale >= 1 ? scale : 1), inverse = scale >= 1 ? 1 / scale : 1;
    size_t widest = (size_t)(2 * support) + 2;
    if (widest > SIZE_MAX / sizeof(double) / out) return NULL;
    taps *t = calloc(out, sizeof *t);
    double *weights = t ? calloc((size_t)out * widest, sizeof *weights) : NULL;
    if (weights == NULL) {
        free(t);
        return NULL;
    }
    for (uint32_t i = 0; i < out; i++) {
        double centre = scale * (i + 0.5), total = 0;
        long first = (long)(centre - support + 0.5), last = (long)(centre + support + 0.5);
        first = first < 0 ? 0 : first;
        last = last > (long)in ? (long)in : last;
        t[i] = (taps){(uint32_t)first, (uint32_t)(last - first), weights + (size_t)i * widest};
        for (uint32_t k = 0; k < t[i].count; k++) {
            double x = ((double)first + k - centre + 0.5) * inverse;
            t[i].weights[k] = filter_weight(resize, x < 0 ? -x : x);
            total += t[i].weights[k];
        }
        for (uint32_t k = 0; k < t[i].count && total != 0; k++) t[i].weights[k] /= total;
    }
    return t;
}

static void free_taps(taps *t) {
    if (t != NULL) free(t[0].weights);
    free(t);
}

static rs_status read_netpbm(FILE *file, const char *path, int channels, const rs_input_spec *spec, float *out,
                             rs_error *err) {
    unsigned width, height, maxval;
    if (header_number(file, &width) || header_number(file, &height) || header_number(file, &maxval) || width == 0 ||
        height == 0 || width > MAX_SIDE || height > MAX_SIDE || maxval == 0 || maxval > 255) {
        return fail(err, path, "bad PGM/PPM header (8-bit binary P5/P6, at most 8192 px a side)");
    }
    uint32_t out_h = spec->shape[2], out_w = spec->shape[3];
    size_t size = (size_t)width * height * (size_t)channels;
    uint8_t *pixels = malloc(size);
    /* One channel resized horizontally; the index bounds out_w, but not below what a 32-bit size_t holds. */
    int rows_fit = out_w <= SIZE_MAX / sizeof(double) / height;
    double *rows = rows_fit ? malloc((size_t)height * out_w * sizeof *rows) : NULL;
    taps *across = make_taps(width, out_w, spec->resize), *down = make_taps(height, out_h, spec->resize);
    rs_status status = RS_OK;
    if (pixels == NULL || rows == NULL || across == NULL || down == NULL) {
        status = fail(err, path, "cannot allocate the image");
    } else if (fread(pixels, 1, size, file) != size) {
        status = fail(err, path, "truncated image data");
    }
    /* Separable, as torch does it: along each row first, then down each column; grey fills all three channels. */
    for (uint32_t c = 0; c < 3 && status == RS_OK; c++) {
        size_t source = channels == 1 ? 0 : c;
        for (uint32_t y = 0; y < height; y++) {
            for (uint32_t x = 0; x < out_w; x++) {
                double sum = 0;
                for (uint32_t k = 0; k < across[x].count; k++) {
                    size_t at = ((size_t)y * width + across[x].first + k) * (size_t)channels + source;
                    sum += across[x].weights[k] * pixels[at];
                }
                rows[(size_t)y * out_w + x] = sum;
            }
        }
        for (uint32_t y = 0; y < out_h; y++) {
            for (uint32_t x = 0; x < out_w; x++) {
                double sum = 0;
                for (uint32_t k = 0; k < down[y].count; k++) {
                    sum += down[y].weights[k] * rows[(size_t)(down[y].first + k) * out_w + x];
                }
                out[((size_t)c * out_h + y) * out_w + x] = (float)((sum / maxval - spec->mean[c]) / spec->std[c]);
            }
        }
    }
    free_taps(across);
    free_taps(down);
    free(rows);
    free(pixels);
    return status;
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
