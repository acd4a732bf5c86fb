/* Opening a bundle: reading and parsing `bundle.index`, the compact form of `manifest.json`.
 *
 * Format (text, one record per line, fields separated by single spaces, unknown keys ignored):
 *   restnet-bundle-index 1
 *   input shape=1,3,64,64 mean=0.498,0.498,0.498 std=0.502,0.502,0.502
 *   label <name, the rest of the line>            (once per class, in class order)
 *   artifact id=ID backend=B file=REL bytes=N sha256=HEX memory=N accuracy=PCT params=N entry=NAME
 *            in=DTYPE:SCALE:ZERO_POINT out=DTYPE:SCALE:ZERO_POINT
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

rs_status rs_read_file(const char *path, size_t limit, char **out, size_t *length, rs_error *err) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        return rs_fail(err, RS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    char *buffer = malloc(limit + 1);
    if (buffer == NULL) {
        fclose(file);
        return rs_fail(err, RS_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes", path, limit + 1);
    }
    size_t got = fread(buffer, 1, limit, file);
    int failed = ferror(file);
    int more = !failed && got == limit && fgetc(file) != EOF;
    fclose(file);
    if (failed || more) {
        free(buffer);
        return failed ? rs_fail(err, RS_ERR_IO, "%s: read error", path)
                      : rs_fail(err, RS_ERR_FORMAT, "%s: larger than %zu bytes", path, limit);
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

static int parse_double(const char *text, double *out) {
    errno = 0;
    char *end;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || value != value) {
        return -1;
    }
    *out = value;
    return 0;
}

/* "a,b,c" into `count` floats. */
static int parse_floats(const char *text, float *out, size_t count) {
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
        double value;
        if (parse_double(cursor, &value) != 0) {
            return -1;
        }
        out[i] = (float)value;
        if (comma != NULL) {
            cursor = comma + 1;
        }
    }
    return 0;
}

static int parse_shape(const char *text, uint32_t shape[4]) {
    float values[4];
    if (parse_floats(text, values, 4) != 0) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (values[i] < 1 || values[i] > 65536 || values[i] != (float)(uint32_t)values[i]) {
            return -1;
        }
        shape[i] = (uint32_t)values[i];
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

enum { F_ID = 1, F_BACKEND = 2, F_FILE = 4, F_BYTES = 8, F_SHA = 16, F_MEMORY = 32, F_ACCURACY = 64,
       F_PARAMS = 128, F_ENTRY = 256, F_IN = 512, F_OUT = 1024, F_ALL = 2047 };

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

/* One `key=value` of an artifact line; returns the field's flag, 0 for an unknown key, -1 if invalid. */
static int artifact_field(rs_artifact *a, const char *key, const char *value) {
    if (strcmp(key, "id") == 0) return copy_field(a->id, sizeof a->id, value) ? -1 : F_ID;
    if (strcmp(key, "backend") == 0) return copy_field(a->backend, sizeof a->backend, value) ? -1 : F_BACKEND;
    if (strcmp(key, "file") == 0) return copy_field(a->file, sizeof a->file, value) ? -1 : F_FILE;
    if (strcmp(key, "entry") == 0) return copy_field(a->entry_point, sizeof a->entry_point, value) ? -1 : F_ENTRY;
    if (strcmp(key, "bytes") == 0) return parse_u64(value, &a->bytes) ? -1 : F_BYTES;
    if (strcmp(key, "memory") == 0) return parse_u64(value, &a->memory_bytes) ? -1 : F_MEMORY;
    if (strcmp(key, "params") == 0) return parse_u64(value, &a->params) ? -1 : F_PARAMS;
    if (strcmp(key, "accuracy") == 0) {
        return parse_double(value, &a->accuracy) || a->accuracy < 0 || a->accuracy > 100 ? -1 : F_ACCURACY;
    }
    if (strcmp(key, "sha256") == 0) {
        return is_hex64(value) && copy_field(a->sha256, sizeof a->sha256, value) == 0 ? F_SHA : -1;
    }
    if (strcmp(key, "in") == 0) return parse_quantization(value, &a->input_quantization) ? -1 : F_IN;
    if (strcmp(key, "out") == 0) return parse_quantization(value, &a->output_quantization) ? -1 : F_OUT;
    return 0;
}

static const char *const ARTIFACT_KEYS[] = {"id", "backend", "file", "bytes", "sha256", "memory",
                                            "accuracy", "params", "entry", "in", "out"};

static rs_status parse_artifact(rs_bundle *bundle, char *fields, size_t line, rs_error *err) {
    if (bundle->count == RS_MAX_ARTIFACTS) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: more than %d artifacts", line, RS_MAX_ARTIFACTS);
    }
    rs_artifact *a = &bundle->artifacts[bundle->count];
    memset(a, 0, sizeof *a);
    int seen = 0;
    char *state = NULL;
    for (char *token = strtok_r(fields, " ", &state); token != NULL; token = strtok_r(NULL, " ", &state)) {
        char *equals = strchr(token, '=');
        if (equals == NULL) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: expected key=value, got '%.40s'", line, token);
        }
        *equals = '\0';
        int flag = artifact_field(a, token, equals + 1);
        if (flag < 0) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: invalid %s '%.80s'", line, token, equals + 1);
        }
        seen |= flag;
    }
    for (size_t i = 0; i < sizeof ARTIFACT_KEYS / sizeof *ARTIFACT_KEYS; i++) {
        if (!(seen & (1 << i))) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: artifact without %s", line, ARTIFACT_KEYS[i]);
        }
    }
    bundle->validated[bundle->count] = (rs_status)-1;
    bundle->count++;
    return RS_OK;
}

static rs_status parse_input(rs_bundle *bundle, char *fields, size_t line, rs_error *err) {
    int seen = 0;
    char *state = NULL;
    for (char *token = strtok_r(fields, " ", &state); token != NULL; token = strtok_r(NULL, " ", &state)) {
        char *equals = strchr(token, '=');
        int ok = equals != NULL;
        if (ok) {
            *equals = '\0';
            const char *value = equals + 1;
            if (strcmp(token, "shape") == 0) ok = parse_shape(value, bundle->input.shape) == 0 && (seen |= 1);
            else if (strcmp(token, "mean") == 0) ok = parse_floats(value, bundle->input.mean, 3) == 0 && (seen |= 2);
            else if (strcmp(token, "std") == 0) ok = parse_floats(value, bundle->input.std, 3) == 0 && (seen |= 4);
        }
        if (!ok) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: invalid input field '%.60s'", line, token);
        }
    }
    if (seen != 7) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: input needs shape, mean and std", line);
    }
    return RS_OK;
}

rs_status rs_parse_index(rs_bundle *bundle, const char *text, size_t length, rs_error *err) {
    static const char HEADER[] = "restnet-bundle-index ";
    if (strlen(text) != length) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index: contains a NUL byte");
    }
    char line_buffer[RS_MAX_LINE + 1];
    size_t line = 0;
    int has_input = 0;
    const char *cursor = text;
    while (*cursor != '\0') {
        const char *end = strchr(cursor, '\n');
        if (end == NULL) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: truncated (last line has no newline)", line + 1);
        }
        size_t n = (size_t)(end - cursor);
        line++;
        if (n > RS_MAX_LINE) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: line longer than %d bytes", line, RS_MAX_LINE);
        }
        memcpy(line_buffer, cursor, n);
        line_buffer[n] = '\0';
        cursor = end + 1;
        if (line == 1) {
            if (strncmp(line_buffer, HEADER, sizeof HEADER - 1) != 0) {
                return rs_fail(err, RS_ERR_FORMAT, "bundle.index: not a restnet bundle index (bad first line)");
            }
            if (strcmp(line_buffer + sizeof HEADER - 1, "1") != 0) {
                return rs_fail(err, RS_ERR_FORMAT, "bundle.index: version '%.20s', this shim reads version %d",
                               line_buffer + sizeof HEADER - 1, RS_INDEX_VERSION);
            }
            continue;
        }
        char *space = strchr(line_buffer, ' ');
        if (space == NULL) {
            return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: expected 'KIND FIELDS...'", line);
        }
        *space = '\0';
        rs_status status = RS_OK;
        if (strcmp(line_buffer, "artifact") == 0) {
            status = parse_artifact(bundle, space + 1, line, err);
        } else if (strcmp(line_buffer, "input") == 0) {
            status = parse_input(bundle, space + 1, line, err);
            has_input = 1;
        } else if (strcmp(line_buffer, "label") == 0) {
            if (bundle->label_count == RS_MAX_LABELS) {
                return rs_fail(err, RS_ERR_FORMAT, "bundle.index:%zu: more than %d labels", line, RS_MAX_LABELS);
            }
            char *label = malloc(strlen(space + 1) + 1);
            if (label == NULL) {
                return rs_fail(err, RS_ERR_NO_MEMORY, "bundle.index:%zu: cannot allocate a label", line);
            }
            strcpy(label, space + 1);
            bundle->labels[bundle->label_count++] = label;
        }
        if (status != RS_OK) {
            return status;
        }
    }
    if (line == 0) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index: empty");
    }
    if (!has_input || bundle->count == 0) {
        return rs_fail(err, RS_ERR_FORMAT, "bundle.index: needs an input line and at least one artifact");
    }
    return RS_OK;
}

rs_status rs_bundle_open(const char *dir, rs_bundle **out, rs_error *err) {
    if (dir == NULL || out == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_bundle_open: dir and out are required");
    }
    *out = NULL;
    rs_bundle *bundle = calloc(1, sizeof *bundle);
    if (bundle == NULL) {
        return rs_fail(err, RS_ERR_NO_MEMORY, "%s: cannot allocate the bundle", dir);
    }
    if (strlen(dir) >= sizeof bundle->dir || realpath(dir, bundle->real_dir) == NULL) {
        free(bundle);
        return rs_fail(err, RS_ERR_IO, "%s: not a directory that can be opened", dir);
    }
    strcpy(bundle->dir, dir);
    char path[sizeof bundle->real_dir + sizeof RS_INDEX_NAME + 1];
    snprintf(path, sizeof path, "%s/%s", bundle->real_dir, RS_INDEX_NAME);
    char *text;
    size_t length;
    rs_status status = rs_read_file(path, RS_MAX_INDEX_BYTES, &text, &length, err);
    if (status == RS_OK) {
        status = rs_parse_index(bundle, text, length, err);
        free(text);
    }
    if (status != RS_OK) {
        rs_bundle_close(bundle);
        return status;
    }
    *out = bundle;
    return RS_OK;
}

void rs_bundle_close(rs_bundle *bundle) {
    if (bundle == NULL) {
        return;
    }
    for (size_t i = 0; i < bundle->label_count; i++) {
        free(bundle->labels[i]);
    }
    free(bundle);
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
