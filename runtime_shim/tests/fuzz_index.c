/* libFuzzer target: arbitrary bytes as a bundle.index must never crash the parser (run under ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > RS_MAX_INDEX_BYTES) {
        return 0;
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    rs_bundle *bundle = rs_bundle_new();
    if (bundle != NULL) {
        rs_error err;
        rs_parse_index(bundle, text, size, &err);
        rs_bundle_close(bundle);
    }
    free(text);
    return 0;
}
