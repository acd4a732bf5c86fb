/* Validating an artifact before use: its path stays inside the bundle, its size and sha256 match. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* Rejects absolute paths, empty components and `..` anywhere, before touching the file system. */
static int lexically_safe(const char *file) {
    if (file[0] == '/' || file[0] == '\0') {
        return 0;
    }
    const char *component = file;
    while (1) {
        const char *slash = strchr(component, '/');
        size_t n = slash ? (size_t)(slash - component) : strlen(component);
        if (n == 0 || (n == 2 && component[0] == '.' && component[1] == '.') || (n == 1 && component[0] == '.')) {
            return 0;
        }
        if (slash == NULL) {
            return 1;
        }
        component = slash + 1;
    }
}

static rs_status check(rs_bundle *bundle, const rs_artifact *a, char *real, rs_error *err) {
    if (!lexically_safe(a->file)) {
        return rs_fail(err, RS_ERR_UNSAFE_PATH, "%s: file '%s' is absolute or contains '.' or '..'", a->id, a->file);
    }
    char joined[2 * PATH_MAX];
    snprintf(joined, sizeof joined, "%s/%s", bundle->real_dir, a->file);
    if (realpath(joined, real) == NULL) {
        return rs_fail(err, RS_ERR_IO, "%s: %s: %s", a->id, a->file, strerror(errno));
    }
    size_t root = strlen(bundle->real_dir);
    if (strncmp(real, bundle->real_dir, root) != 0 || real[root] != '/') {
        return rs_fail(err, RS_ERR_UNSAFE_PATH, "%s: %s resolves to %s, outside the bundle", a->id, a->file, real);
    }
    FILE *stream = fopen(real, "rb");
    if (stream == NULL) {
        return rs_fail(err, RS_ERR_IO, "%s: %s: %s", a->id, a->file, strerror(errno));
    }
    struct stat info;
    if (fstat(fileno(stream), &info) != 0 || !S_ISREG(info.st_mode)) {
        fclose(stream);
        return rs_fail(err, RS_ERR_IO, "%s: %s is not a regular file", a->id, a->file);
    }
    if ((uint64_t)info.st_size != a->bytes) {
        fclose(stream);
        return rs_fail(err, RS_ERR_SIZE, "%s: %s has %lld bytes, the index says %llu", a->id, a->file,
                       (long long)info.st_size, (unsigned long long)a->bytes);
    }
    char digest[65];
    int failed = rs_sha256_stream(stream, digest);
    fclose(stream);
    if (failed) {
        return rs_fail(err, RS_ERR_IO, "%s: %s: read error", a->id, a->file);
    }
    if (strcmp(digest, a->sha256) != 0) {
        return rs_fail(err, RS_ERR_DIGEST, "%s: %s has sha256 %.12s..., the index says %.12s...", a->id, a->file,
                       digest, a->sha256);
    }
    return RS_OK;
}

rs_status rs_bundle_validate(rs_bundle *bundle, size_t index, char *resolved, size_t resolved_size, rs_error *err) {
    if (bundle == NULL || index >= bundle->count) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_bundle_validate: no artifact %zu", index);
    }
    char real[PATH_MAX] = "";
    rs_status status = bundle->validated[index];
    if (status == (rs_status)-1) {
        rs_error local = {RS_OK, ""};
        status = check(bundle, &bundle->artifacts[index], real, &local);
        bundle->validated[index] = status;
        memcpy(bundle->validation_message[index], local.message, sizeof local.message);
    } else if (status == RS_OK) {
        char joined[2 * PATH_MAX];
        snprintf(joined, sizeof joined, "%s/%s", bundle->real_dir, bundle->artifacts[index].file);
        if (realpath(joined, real) == NULL) {
            real[0] = '\0';
        }
    }
    if (status != RS_OK) {
        return rs_fail(err, status, "%s", bundle->validation_message[index]);
    }
    if (resolved != NULL && resolved_size > 0) {
        snprintf(resolved, resolved_size, "%s", real);
    }
    return RS_OK;
}
