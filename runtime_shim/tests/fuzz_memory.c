/* libFuzzer target: arbitrary bytes as the text of a memory file (meminfo, a limit, memory.stat, the cgroup
 * list) must never crash the parsers, and what they accept must be consistent (run under ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t value;
    char path[64];
    if (rs_parse_limit(text, &value) == 0 && value != UINT64_MAX && value >= ((uint64_t)1 << 62)) {
        abort(); /* "no limit" has one spelling */
    }
    rs_parse_meminfo(text, &value);
    rs_parse_stat_field(text, "hierarchical_memory_limit", &value);
    for (int v2 = 0; v2 < 2; v2++) {
        if (rs_parse_cgroup_path(text, v2, path, sizeof path) == 0 && (strstr(path, "/..") || strlen(path) >= 64)) {
            abort(); /* a path that could climb out of the cgroup mount */
        }
    }
    free(text);
    return 0;
}
