/* Example Linux app: classify an image file with a restnetc bundle, letting the shim pick the variant.
 *
 *   classify BUNDLE IMAGE.pgm|IMAGE.ppm [path/to/libLiteRt.so]
 *
 * It opens the bundle, loads the LiteRT backend, opens a runner (which probes memory and picks the most
 * accurate variant that fits), classifies the image, then re-probes memory as a long-running app would
 * before its next frame. */
#include <stdio.h>
#include <stdlib.h>

#include "image_input.h"
#include "restnet_shim.h"
#include "restnet_shim_litert.h"

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: classify BUNDLE IMAGE [libLiteRt.so]\n");
        return 2;
    }
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle = NULL;
    rs_backend litert = {0};
    rs_runner *runner = NULL;
    float *pixels = NULL, *logits = NULL;
    int code = 1;
    if (rs_bundle_open(argv[1], &bundle, &err) != RS_OK ||
        rs_litert_backend_open(argc == 4 ? argv[3] : "libLiteRt.so", &litert, &err) != RS_OK) {
        goto done;
    }
    const rs_input_spec *spec = rs_bundle_input(bundle);
    size_t count = (size_t)spec->shape[1] * spec->shape[2] * spec->shape[3];
    size_t classes = rs_bundle_label_count(bundle);
    pixels = malloc(count * sizeof *pixels);
    logits = malloc(classes * sizeof *logits);
    rs_policy policy = {"litert", RS_DEFAULT_HEADROOM_BYTES, RS_DEFAULT_HYSTERESIS, NULL, 0};
    if (pixels == NULL || logits == NULL || rs_read_input(argv[2], spec, pixels, count, &err) != RS_OK ||
        rs_runner_open(bundle, &policy, &litert, "/", &runner, &err) != RS_OK ||
        rs_runner_run(runner, pixels, count, logits, classes, &err) != RS_OK) {
        goto done;
    }
    size_t best = 0;
    for (size_t c = 1; c < classes; c++) {
        if (logits[c] > logits[best]) best = c;
    }
    printf("%s (variant %s)\n", rs_bundle_label(bundle, best), rs_runner_current(runner)->id);
    int switched = 0;
    if (rs_runner_refresh(runner, &switched, &err) != RS_OK && err.code != RS_ERR_NOTHING_FITS) {
        goto done;
    }
    if (switched) printf("memory changed: next frames run %s\n", rs_runner_current(runner)->id);
    code = 0;
done:
    if (code != 0) fprintf(stderr, "classify: %s\n", err.message);
    rs_runner_close(runner);
    rs_backend_close(&litert);
    rs_bundle_close(bundle);
    free(pixels);
    free(logits);
    return code;
}
