/* libFuzzer target: arbitrary bytes as a bundle.index must never crash the parser (run under ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One bundle for every input (a fresh 0.5 MB one per input would make the fuzzer ASan-bound): emptied as
 * rs_bundle_new leaves it before each parse. */
static void empty(rs_bundle *bundle) {
    for (size_t i = 0; i < bundle->label_count; i++) {
        free(bundle->labels[i]);
    }
    bundle->label_count = 0;
    bundle->count = 0;
    memset(&bundle->input, 0, sizeof bundle->input);
    memset(bundle->identity, 0, sizeof bundle->identity);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rs_bundle *bundle;
    if (bundle == NULL && (bundle = rs_bundle_new()) == NULL) {
        return 0;
    }
    if (size > RS_MAX_INDEX_BYTES) {
        return 0;
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    rs_error err;
    rs_parse_index(bundle, text, size, &err);
    empty(bundle);
    free(text);
    return 0;
}
