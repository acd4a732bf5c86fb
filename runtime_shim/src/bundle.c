/* Opening a bundle: reading and parsing `bundle.index`, the compact form of `manifest.json`.
 *
 * Format (text, one record per line, fields separated by single spaces, unknown keys ignored):
 *   restnet-bundle-index 4
 *   identity HEX                                  (sha256 of every byte after this line)
 *   input shape=1,3,64,64 mean=0.498,0.498,0.498 std=0.502,0.502,0.502 resize=bilinear|bicubic
 *   label <name, the rest of the line>            (once per class, in class order)
 *   runtime threads=N                             (optional, at most once: the target's threads, 1..RS_MAX_THREADS)
 *   artifact id=ID backend=B file=REL bytes=N sha256=HEX memory=N program=N accuracy=PCT params=N entry=NAME
 *            in=DTYPE:SCALE:ZERO_POINT out=DTYPE:SCALE:ZERO_POINT layout=NCHW|NHWC packing=shared|own rank=N
 *
 * `program` (optional: 0 when absent) is the part of `memory` the open file holds before any entry point loads;
 * artifacts sharing a file give the same figure. `rank` (optional: 0 when absent) is the artifact's place in the
 * compiler's ship order (rs_artifact.rank); a reader that ignores it chooses by accuracy alone, a preference
 * rather than a misreading, so it came within version 4. `layout`, the order of the artifact's input tensor, came with
 * version 3 (a shim that ignored it would feed an NHWC model wrong): required there, NCHW in a version 2 index.
 * `resize`, how an image is resized to the input, came with version 4 (an older tool would resize otherwise than
 * the model was trained): required there, bilinear before.
 * `runtime` came within version 4: a shim that ignores it runs each runtime at its own thread count, slower
 * perhaps, never wrong. Records of other kinds are skipped (a later minor version's).
 *
 * The parser is strict: numbers are plain decimals (no hex, inf or nan), a key appears once per line, an
 * (id, backend) pair once per index, ids/files/entries use a small character set, and labels carry no
 * control characters. Every refusal names the line. The last line may lack its newline.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

rs_status rs_read_file_at(int dir_fd, const char *name, int no_follow, size_t limit, char **out, size_t *length,
                          int *absent, rs_error *err) {
    if (absent != NULL) {
        *absent = 0;
    }
    int fd = openat(dir_fd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (no_follow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        if (absent != NULL && (errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == EPERM)) {
            *absent = 1;
        }
        return rs_fail(err, errno == ELOOP ? RS_ERR_UNSAFE_PATH : RS_ERR_IO, "%s: cannot open: %s", name,
                       errno == ELOOP ? "a symlink" : strerror(errno));
    }
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        close(fd);
        return rs_fail(err, RS_ERR_IO, "%s: not a regular file", name);
    }
    char *buffer = malloc(limit + 1);
    if (buffer == NULL) {
        close(fd);
        return rs_fail(err, RS_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes", name, limit + 1);
    }
    size_t got = 0;
    ssize_t n = 0;
    char extra;
    while (got < limit && (n = read(fd, buffer + got, limit - got)) > 0) {
        got += (size_t)n;
    }
    int more = n >= 0 && got == limit && read(fd, &extra, 1) > 0;
    close(fd);
    if (n < 0 || more) {
        free(buffer);
        return n < 0 ? rs_fail(err, RS_ERR_IO, "%s: read error", name)
                     : rs_fail(err, RS_ERR_FORMAT, "%s: larger than %zu bytes", name, limit);
    }
    buffer[got] = '\0';
    *out = buffer;
    *length = got;
    return RS_OK;
}

static int copy_field(char *dest, size_t size, const char *value) {
    size_t n = strlen(value);
    if (n == 0 || n >= size) {
        return -1;
    }
    memcpy(dest, value, n + 1);
    return 0;
}

/* `value` only uses characters of `allowed` (plus ASCII letters and digits). */
static int only(const char *value, const char *allowed) {
    for (const char *p = value; *p; p++) {
        int alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!alnum && strchr(allowed, *p) == NULL) {
            return 0;
        }
    }
    return 1;
}

static int copy_name(char *dest, size_t size, const char *value, const char *allowed) {
    return only(value, allowed) ? copy_field(dest, size, value) : -1;
}

static int parse_u64(const char *text, uint64_t *out) {
    if (*text < '0' || *text > '9') {
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = value;
    return 0;
}

/* A plain decimal: -?D+(.D+)?([eE][+-]?D+)?, nothing else (strtod alone would take hex, inf and nan). */
static int plain_decimal(const char *p) {
    if (*p == '-') p++;
    const char *digits = p;
    while (*p >= '0' && *p <= '9') p++;
    if (p == digits) return 0;
    if (*p == '.') {
        digits = ++p;
        while (*p >= '0' && *p <= '9') p++;
        if (p == digits) return 0;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        digits = p;
        while (*p >= '0' && *p <= '9') p++;
        if (p == digits) return 0;
    }
    return *p == '\0';
}

static int parse_double(const char *text, double *out) {
    if (!plain_decimal(text)) {
        return -1;
    }
    errno = 0;
    char *end;
    double value = strtod(text, &end); /* a comma-decimal locale stops at '.': refused, not misread */
    if (errno != 0 || *end != '\0' || !isfinite(value)) {
        return -1;
    }
    *out = value;
    return 0;
}

/* "a,b,c" into `count` doubles. */
static int parse_list(const char *text, double *out, size_t count) {
    char buffer[128];
    if (copy_field(buffer, sizeof buffer, text) != 0) {
        return -1;
    }
    char *cursor = buffer;
    for (size_t i = 0; i < count; i++) {
        char *comma = strchr(cursor, ',');
        if ((comma == NULL) != (i == count - 1)) {
            return -1;
        }
        if (comma != NULL) {
            *comma = '\0';
        }
        if (parse_double(cursor, &out[i]) != 0) {
            return -1;
        }
        if (comma != NULL) {
            cursor = comma + 1;
        }
    }
    return 0;
}

/* Three finite floats; with `positive`, each > 0. */
static int parse_channels(const char *text, float out[3], int positive) {
    double values[3];
    if (parse_list(text, values, 3) != 0) {
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (!isfinite((float)values[i]) || (positive && !((float)values[i] > 0))) {
            return -1;
        }
        out[i] = (float)values[i];
    }
    return 0;
}

/* Four dimensions in [1, 65536] whose float32 tensor fits a 32-bit size_t (element count <= 2^30 - 1). */
static int parse_shape(const char *text, uint32_t shape[4]) {
    double values[4];
    if (parse_list(text, values, 4) != 0) {
        return -1;
    }
    uint64_t product = 1;
    for (int i = 0; i < 4; i++) {
        if (values[i] < 1 || values[i] > 65536 || values[i] != (double)(uint32_t)values[i]) {
            return -1;
        }
        shape[i] = (uint32_t)values[i];
        product *= shape[i];
        if (product > (UINT32_MAX >> 2)) {
            return -1;
        }
    }
    return 0;
}

/* "int8:0.0123:-5" */
static int parse_quantization(const char *text, rs_quantization *out) {
    char buffer[96];
    if (copy_field(buffer, sizeof buffer, text) != 0) {
        return -1;
    }
    char *first = strchr(buffer, ':');
    char *second = first ? strchr(first + 1, ':') : NULL;
    if (second == NULL) {
        return -1;
    }
    *first = *second = '\0';
    double scale, zero_point;
    if (strcmp(buffer, "float32") != 0 && strcmp(buffer, "int8") != 0 && strcmp(buffer, "uint8") != 0) {
        return -1;
    }
    if (parse_double(first + 1, &scale) != 0 || !(scale > 0) || parse_double(second + 1, &zero_point) != 0 ||
        zero_point < -255 || zero_point > 255 || zero_point != (double)(int32_t)zero_point) {
        return -1;
    }
    memcpy(out->dtype, buffer, strlen(buffer) + 1);
    out->scale = scale;
    out->zero_point = (int32_t)zero_point;
    return 0;
}

static int is_hex64(const char *text) {
    if (strlen(text) != 64) {
        return 0;
    }
    for (const char *p = text; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* The fields of an artifact line: bit k of the `seen` mask is field k. The keys and their order are
 * restnetc.shim_abi.ARTIFACT_RECORD's; tests/test_shim_abi.py compares this table with it. */
typedef enum {
    KEY_ID,
    KEY_BACKEND,
    KEY_FILE,
    KEY_BYTES,
    KEY_SHA256,
    KEY_MEMORY,
    KEY_PROGRAM,
    KEY_ACCURACY,
    KEY_PARAMS,
    KEY_ENTRY,
    KEY_IN,
    KEY_OUT,
    KEY_LAYOUT,
    KEY_PACKING,
    KEY_RANK,
    ARTIFACT_KEY_COUNT
} artifact_key;

static const char *const ARTIFACT_KEYS[ARTIFACT_KEY_COUNT] = {
    [KEY_ID] = "id",         [KEY_BACKEND] = "backend", [KEY_FILE] = "file",     [KEY_BYTES] = "bytes",
    [KEY_SHA256] = "sha256", [KEY_MEMORY] = "memory",   [KEY_PROGRAM] = "program", [KEY_ACCURACY] = "accuracy",
    [KEY_PARAMS] = "params",
    [KEY_ENTRY] = "entry",   [KEY_IN] = "in",           [KEY_OUT] = "out",         [KEY_LAYOUT] = "layout",
    [KEY_PACKING] = "packing", [KEY_RANK] = "rank",
};

/* Parses the value of field `key` into `a`; -1 if invalid. Every key has a case (-Wswitch checks it). */
static int artifact_field(rs_artifact *a, artifact_key key, const char *value) {
    switch (key) {
    case KEY_ID: return copy_name(a->id, sizeof a->id, value, "._-");
    case KEY_BACKEND: return copy_name(a->backend, sizeof a->backend, value, "_-");
    case KEY_FILE: return copy_name(a->file, sizeof a->file, value, "._/-");
    case KEY_BYTES: return parse_u64(value, &a->bytes);
    case KEY_SHA256: return is_hex64(value) ? copy_field(a->sha256, sizeof a->sha256, value) : -1;
    case KEY_MEMORY: return parse_u64(value, &a->memory_bytes);
    case KEY_PROGRAM: return parse_u64(value, &a->program_memory_bytes);
    case KEY_ACCURACY: return parse_double(value, &a->accuracy) || a->accuracy < 0 || a->accuracy > 100 ? -1 : 0;
    case KEY_PARAMS: return parse_u64(value, &a->params);
    case KEY_ENTRY: return copy_name(a->entry_point, sizeof a->entry_point, value, "_");
    case KEY_IN: return parse_quantization(value, &a->input_quantization);
    case KEY_OUT: return parse_quantization(value, &a->output_quantization);
    case KEY_LAYOUT:
        return strcmp(value, "NCHW") == 0 || strcmp(value, "NHWC") == 0
                   ? copy_field(a->input_layout, sizeof a->input_layout, value)
                   : -1;
    case KEY_PACKING:
        a->shared_packing = strcmp(value, "shared") == 0;
        return a->shared_packing || strcmp(value, "own") == 0 ? 0 : -1;
    case KEY_RANK: {
        uint64_t rank = 0;
        int bad = parse_u64(value, &rank) || rank > RS_MAX_ARTIFACTS;
        a->rank = (uint32_t)rank;
        return bad ? -1 : 0;
    }
    case ARTIFACT_KEY_COUNT: break;
    }
    return -1;
}

static rs_status parse_artifact(rs_bundle *bundle, char *fields, size_t line, rs_error *err) {
    if (bundle->count == RS_MAX_ARTIFACTS) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: more than %d artifacts", line, RS_MAX_ARTIFACTS);
    }
    rs_artifact *a = &bundle->artifacts[bundle->count];
    memset(a, 0, sizeof *a);
    memcpy(a->input_layout, "NCHW", 5); /* a version 2 line has no layout */
    unsigned seen = 0;
    char *state = NULL;
    for (char *token = strtok_r(fields, " ", &state); token != NULL; token = strtok_r(NULL, " ", &state)) {
        char *equals = strchr(token, '=');
        if (equals == NULL) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: expected key=value, got '%.40s'", line, token);
        }
        *equals = '\0';
        artifact_key key = 0;
        while (key < ARTIFACT_KEY_COUNT && strcmp(token, ARTIFACT_KEYS[key]) != 0) key++;
        if (key == ARTIFACT_KEY_COUNT) {
            continue; /* a key of a later minor version */
        }
        if (seen & (1u << key)) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: %s given twice", line, token);
        }
        if (artifact_field(a, key, equals + 1) != 0) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: invalid %s", line, token);
        }
        seen |= 1u << key;
    }
    for (size_t i = 0; i < ARTIFACT_KEY_COUNT; i++) {
        if (!(seen & (1u << i)) && i != KEY_PROGRAM && i != KEY_PACKING && i != KEY_RANK &&
            (i != KEY_LAYOUT || bundle->version >= 3)) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: artifact without %s", line, ARTIFACT_KEYS[i]);
        }
    }
    for (size_t i = 0; i < bundle->count; i++) {
        const rs_artifact *other = &bundle->artifacts[i];
        if (strcmp(other->id, a->id) == 0 && strcmp(other->backend, a->backend) == 0) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: artifact %s of %s listed twice", line, a->id,
                           a->backend);
        }
        if (strcmp(other->file, a->file) == 0 &&
            (strcmp(other->backend, a->backend) != 0 || other->bytes != a->bytes ||
             strcmp(other->sha256, a->sha256) != 0 || other->program_memory_bytes != a->program_memory_bytes ||
             other->shared_packing != a->shared_packing || strcmp(other->entry_point, a->entry_point) == 0)) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: artifact %s shares %s with %s: a shared file needs "
                           "the same backend, bytes, sha256, program memory and packing and a different entry point", line,
                           a->id, a->file, other->id);
        }
    }
    bundle->validated[bundle->count] = RS_NOT_CHECKED;
    bundle->count++;
    return RS_OK;
}

static int parse_resize(const char *value, rs_resize *out) {
    int bicubic = strcmp(value, "bicubic") == 0;
    if (!bicubic && strcmp(value, "bilinear") != 0) {
        return 1;
    }
    *out = bicubic ? RS_RESIZE_BICUBIC : RS_RESIZE_BILINEAR;
    return 0;
}

static rs_status parse_input(rs_bundle *bundle, char *fields, size_t line, rs_error *err) {
    enum { SHAPE, MEAN, STD, RESIZE, INPUT_KEYS };
    static const char *const KEYS[INPUT_KEYS] = {
        [SHAPE] = "shape", [MEAN] = "mean", [STD] = "std", [RESIZE] = "resize"};
    const unsigned known = bundle->version >= 4 ? INPUT_KEYS : RESIZE; /* resize came with version 4 */
    const unsigned required = (1u << known) - 1;
    unsigned seen = 0;
    char *state = NULL;
    bundle->input.resize = RS_RESIZE_BILINEAR; /* before version 4, the only one */
    for (char *token = strtok_r(fields, " ", &state); token != NULL; token = strtok_r(NULL, " ", &state)) {
        char *equals = strchr(token, '=');
        if (equals == NULL) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: expected key=value, got '%.40s'", line, token);
        }
        *equals = '\0';
        const char *value = equals + 1;
        unsigned key = 0;
        while (key < known && strcmp(token, KEYS[key]) != 0) key++;
        if (key == known) {
            continue; /* unknown here, or a key of a later version */
        }
        if (seen & (1u << key)) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: %s given twice", line, token);
        }
        int bad = key == SHAPE  ? parse_shape(value, bundle->input.shape)
                  : key == MEAN ? parse_channels(value, bundle->input.mean, 0)
                  : key == STD  ? parse_channels(value, bundle->input.std, 1)
                                : parse_resize(value, &bundle->input.resize);
        if (bad) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: invalid input %s", line, token);
        }
        seen |= 1u << key;
    }
    if (seen != required) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: input needs %s", line,
                       bundle->version >= 4 ? "shape, mean, std and resize" : "shape, mean and std");
    }
    return RS_OK;
}

/* The `runtime` record: `threads`, required (unknown keys skipped). */
static rs_status parse_runtime(rs_bundle *bundle, char *fields, size_t line, rs_error *err) {
    if (bundle->threads != 0) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: a second runtime line", line);
    }
    char *state = NULL;
    for (char *token = strtok_r(fields, " ", &state); token != NULL; token = strtok_r(NULL, " ", &state)) {
        if (strncmp(token, "threads=", 8) != 0) {
            continue; /* a key of a later minor version */
        }
        uint64_t threads = 0;
        if (bundle->threads != 0 || parse_u64(token + 8, &threads) || threads < 1 || threads > RS_MAX_THREADS) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: runtime threads must appear once, 1 to %d", line,
                           RS_MAX_THREADS);
        }
        bundle->threads = (int)threads;
    }
    if (bundle->threads == 0) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: runtime needs threads=N", line);
    }
    return RS_OK;
}

static rs_status parse_label(rs_bundle *bundle, const char *text, size_t line, rs_error *err) {
    if (bundle->label_count == RS_MAX_LABELS) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: more than %d labels", line, RS_MAX_LABELS);
    }
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: label with a control character", line);
        }
    }
    char *label = strdup(text);
    if (label == NULL) {
        return rs_fail(err, RS_ERR_NO_MEMORY, "bundle.index:%zu: cannot allocate a label", line);
    }
    bundle->labels[bundle->label_count++] = label;
    return RS_OK;
}

/* Lines 1 and 2: the header with its version, and the identity. */
static rs_status parse_preamble(rs_bundle *bundle, const char *text, size_t line, rs_error *err) {
    static const char HEADER[] = "restnet-bundle-index ";
    if (line == 1) {
        if (strncmp(text, HEADER, sizeof HEADER - 1) != 0) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index: not a restnet bundle index (bad first line)");
        }
        const char *version = text + sizeof HEADER - 1;
        bundle->version = strcmp(version, "2") == 0 ? 2 : strcmp(version, "3") == 0 ? 3 : strcmp(version, "4") == 0 ? 4 : 0;
        if (bundle->version == 0) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index: version '%.20s', this shim reads versions 2 to %d",
                           version, RS_INDEX_VERSION);
        }
        return RS_OK;
    }
    if (strncmp(text, "identity ", 9) != 0 || !is_hex64(text + 9)) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:2: expected 'identity' and 64 hex digits");
    }
    memcpy(bundle->identity, text + 9, 65);
    return RS_OK;
}

rs_status rs_parse_index(rs_bundle *bundle, const char *text, size_t length, rs_error *err) {
    if (strlen(text) != length) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index: contains a NUL byte");
    }
    char line_buffer[RS_MAX_LINE + 1];
    size_t line = 0;
    int has_input = 0;
    const char *cursor = text;
    while (*cursor != '\0') {
        const char *end = strchr(cursor, '\n');
        size_t n = end != NULL ? (size_t)(end - cursor) : strlen(cursor);
        line++;
        if (n > RS_MAX_LINE) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: line longer than %d bytes", line, RS_MAX_LINE);
        }
        memcpy(line_buffer, cursor, n);
        line_buffer[n] = '\0';
        cursor += n + (end != NULL);
        rs_status status = RS_OK;
        char *space = strchr(line_buffer, ' ');
        if (line <= 2) {
            status = parse_preamble(bundle, line_buffer, line, err);
        } else if (space == NULL) {
            status = rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: expected 'KIND FIELDS...'", line);
        } else {
            *space = '\0';
            if (strcmp(line_buffer, "artifact") == 0) {
                status = parse_artifact(bundle, space + 1, line, err);
            } else if (strcmp(line_buffer, "input") == 0) {
                status = has_input ? rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: a second input line", line)
                                   : parse_input(bundle, space + 1, line, err);
                has_input = 1;
            } else if (strcmp(line_buffer, "label") == 0) {
                status = parse_label(bundle, space + 1, line, err);
            } else if (strcmp(line_buffer, "runtime") == 0) {
                status = parse_runtime(bundle, space + 1, line, err);
            }
        }
        if (status != RS_OK) {
            return status;
        }
    }
    if (line == 0) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index: empty");
    }
    if (line < 2 || !has_input || bundle->count == 0) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index: needs an identity, an input line and an artifact");
    }
    return RS_OK;
}

/* The identity line is the sha256 of every byte after it: an edited or truncated index is refused. */
static rs_status check_identity(const rs_bundle *bundle, const char *text, rs_error *err) {
    const char *first = strchr(text, '\n');
    const char *second = first ? strchr(first + 1, '\n') : NULL;
    char digest[65];
    const char *rest = second != NULL ? second + 1 : "";
    rs_sha256_hex(rest, strlen(rest), digest);
    if (strcmp(digest, bundle->identity) != 0) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index: identity %.12s... does not match its content (%.12s...): "
                                           "edited or truncated", bundle->identity, digest);
    }
    return RS_OK;
}

/* Reads and parses the index of the directory `dir_fd` into the zeroed `bundle`. */
static rs_status read_index(rs_bundle *bundle, int dir_fd, rs_error *err) {
    char *text = NULL;
    size_t length = 0;
    rs_status status = rs_read_file_at(dir_fd, RS_INDEX_NAME, 1, RS_MAX_INDEX_BYTES, &text, &length, NULL, err);
    if (status != RS_OK) {
        return status;
    }
    status = rs_parse_index(bundle, text, length, err);
    if (status == RS_OK) {
        status = check_identity(bundle, text, err);
    }
    free(text);
    return status;
}

rs_bundle *rs_bundle_new(void) {
    rs_bundle *bundle = calloc(1, sizeof *bundle);
    if (bundle != NULL) {
        pthread_mutex_init(&bundle->lock, NULL);
        bundle->references = 1;
        bundle->dir_fd = -1;
    }
    return bundle;
}

static void destroy(rs_bundle *bundle) {
    for (size_t i = 0; i < bundle->label_count; i++) {
        free(bundle->labels[i]);
    }
    if (bundle->dir_fd >= 0) {
        close(bundle->dir_fd);
    }
    pthread_mutex_destroy(&bundle->lock);
    free(bundle);
}

rs_status rs_bundle_open(const char *dir, rs_bundle **out, rs_error *err) {
    if (dir == NULL || out == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_bundle_open: dir and out are required");
    }
    *out = NULL;
    rs_bundle *bundle = rs_bundle_new();
    if (bundle == NULL) {
        return rs_fail(err, RS_ERR_NO_MEMORY, "%s: cannot allocate the bundle", dir);
    }
    bundle->dir_fd = strlen(dir) < sizeof bundle->dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (bundle->dir_fd < 0 || realpath(dir, bundle->real_dir) == NULL) {
        destroy(bundle);
        return rs_fail(err, RS_ERR_IO, "%s: not a directory that can be opened", dir);
    }
    strcpy(bundle->dir, dir);
    rs_status status = read_index(bundle, bundle->dir_fd, err);
    if (status != RS_OK) {
        destroy(bundle);
        return status;
    }
    *out = bundle;
    return RS_OK;
}

rs_status rs_bundle_check_current(const rs_bundle *bundle, rs_error *err) {
    if (bundle == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_bundle_check_current: bundle is required");
    }
    rs_bundle *now = rs_bundle_new();
    if (now == NULL) {
        return rs_fail(err, RS_ERR_NO_MEMORY, "cannot allocate a bundle");
    }
    now->dir_fd = open(bundle->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rs_error local = {RS_OK, ""};
    rs_status status = now->dir_fd < 0 ? rs_fail(&local, RS_ERR_IO, "%s", strerror(errno))
                                       : read_index(now, now->dir_fd, &local);
    if (status == RS_OK && strcmp(now->identity, bundle->identity) == 0) {
        destroy(now);
        return RS_OK;
    }
    status = status == RS_OK ? rs_fail(err, RS_ERR_STALE, "%s now holds bundle %.12s..., this one is %.12s...",
                                       bundle->dir, now->identity, bundle->identity)
                             : rs_fail(err, RS_ERR_STALE, "%s no longer holds this bundle (%s)", bundle->dir,
                                       local.message);
    destroy(now);
    return status;
}

void rs_bundle_retain(rs_bundle *bundle) {
    pthread_mutex_lock(&bundle->lock);
    bundle->references++;
    pthread_mutex_unlock(&bundle->lock);
}

void rs_bundle_release(rs_bundle *bundle) {
    pthread_mutex_lock(&bundle->lock);
    unsigned left = --bundle->references;
    pthread_mutex_unlock(&bundle->lock);
    if (left == 0) {
        destroy(bundle);
    }
}

void rs_bundle_close(rs_bundle *bundle) {
    if (bundle != NULL) {
        rs_bundle_release(bundle);
    }
}

size_t rs_bundle_artifact_count(const rs_bundle *bundle) { return bundle ? bundle->count : 0; }

const rs_artifact *rs_bundle_artifact(const rs_bundle *bundle, size_t index) {
    return bundle && index < bundle->count ? &bundle->artifacts[index] : NULL;
}

const rs_input_spec *rs_bundle_input(const rs_bundle *bundle) { return bundle ? &bundle->input : NULL; }

size_t rs_bundle_label_count(const rs_bundle *bundle) { return bundle ? bundle->label_count : 0; }

const char *rs_bundle_label(const rs_bundle *bundle, size_t index) {
    return bundle && index < bundle->label_count ? bundle->labels[index] : NULL;
}

const char *rs_bundle_dir(const rs_bundle *bundle) { return bundle ? bundle->real_dir : NULL; }

const char *rs_bundle_identity(const rs_bundle *bundle) { return bundle ? bundle->identity : NULL; }

int rs_bundle_threads(const rs_bundle *bundle) { return bundle ? bundle->threads : 0; }
