/* Validating an artifact: opened beneath the bundle directory without following symlinks, a regular file,
 * read whole, and its size and sha256 compared with the index. The bytes read are the bytes a runner loads. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Opens `file` component by component beneath `dir_fd`, never following a symlink; -1 with errno on failure. */
static int open_beneath(int dir_fd, const char *file) {
    char path[sizeof ((rs_artifact *)0)->file];
    snprintf(path, sizeof path, "%s", file);
    int fd = dup(dir_fd);
    char *state = NULL;
    char *component = strtok_r(path, "/", &state);
    while (fd >= 0 && component != NULL) {
        char *next = strtok_r(NULL, "/", &state);
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (next != NULL ? O_DIRECTORY : O_NONBLOCK | O_NOCTTY);
        int child = openat(fd, component, flags);
        struct stat link;
        if (child < 0 && errno == ENOTDIR && fstatat(fd, component, &link, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(link.st_mode)) {
            errno = ELOOP; /* a symlinked directory, refused like a symlinked file */
        }
        int saved = errno;
        close(fd);
        errno = saved;
        fd = child;
        component = next;
    }
    return fd;
}

/* Reads and checks artifact `a`; on success `*data` holds its bytes. `*lasting` says whether the verdict is
 * about the file itself (a symlink, a special file, missing, wrong size or digest) rather than a passing
 * condition (out of memory, too many open files, an I/O error), which must not be remembered. */
static rs_status check(const rs_bundle *bundle, const rs_artifact *a, unsigned char **data, int *lasting,
                       rs_error *err) {
    *lasting = 1;
    if (!lexically_safe(a->file)) {
        return rs_fail(err, RS_ERR_UNSAFE_PATH, "%s: file '%s' is absolute or contains '.' or '..'", a->id, a->file);
    }
    int fd = open_beneath(bundle->dir_fd, a->file);
    if (fd < 0) {
        int symlink = errno == ELOOP;
        *lasting = symlink || errno == ENOENT || errno == ENOTDIR;
        return rs_fail(err, symlink ? RS_ERR_UNSAFE_PATH : RS_ERR_IO, "%s: %s: %s", a->id, a->file,
                       symlink ? "crosses a symlink (refused: artifacts must be plain files inside the bundle)"
                               : strerror(errno));
    }
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        close(fd);
        return rs_fail(err, RS_ERR_IO, "%s: %s is not a regular file", a->id, a->file);
    }
    if ((uint64_t)info.st_size != a->bytes || a->bytes > SIZE_MAX - 1) {
        close(fd);
        return rs_fail(err, RS_ERR_SIZE, "%s: %s has %lld bytes, the index says %llu", a->id, a->file,
                       (long long)info.st_size, (unsigned long long)a->bytes);
    }
    size_t size = (size_t)a->bytes, got = 0;
    unsigned char *bytes = malloc(size + 1); /* one more: a file that grew since fstat is caught */
    if (bytes == NULL) {
        close(fd);
        *lasting = 0;
        return rs_fail(err, RS_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes", a->id, size);
    }
    ssize_t n = 0;
    while (got <= size && (n = read(fd, bytes + got, size + 1 - got)) > 0) {
        got += (size_t)n;
    }
    close(fd);
    if (n < 0 || got != size) {
        free(bytes);
        *lasting = n >= 0;
        return n < 0 ? rs_fail(err, RS_ERR_IO, "%s: %s: read error", a->id, a->file)
                     : rs_fail(err, RS_ERR_SIZE, "%s: %s changed size while being read", a->id, a->file);
    }
    char digest[65];
    rs_sha256_hex(bytes, size, digest);
    if (strcmp(digest, a->sha256) != 0) {
        free(bytes);
        return rs_fail(err, RS_ERR_DIGEST, "%s: %s has sha256 %.12s..., the index says %.12s...", a->id, a->file,
                       digest, a->sha256);
    }
    *data = bytes;
    return RS_OK;
}

/* Records a verdict about artifact `index`'s file for every artifact sharing that file (the index guarantees
 * they agree on its size and digest), so a ladder file is hashed once. A refusal is never replaced by a later OK
 * (the file was seen to be wrong once). */
static void remember(rs_bundle *bundle, size_t index, rs_status status, const char *message) {
    pthread_mutex_lock(&bundle->lock);
    for (size_t i = 0; i < bundle->count; i++) {
        rs_status before = bundle->validated[i];
        if (strcmp(bundle->artifacts[i].file, bundle->artifacts[index].file) == 0 &&
            (status != RS_OK || before == RS_NOT_CHECKED || before == RS_OK)) {
            bundle->validated[i] = status;
            snprintf(bundle->validation_message[i], sizeof bundle->validation_message[i], "%s", message);
        }
    }
    pthread_mutex_unlock(&bundle->lock);
}

rs_status rs_bundle_read_verified(rs_bundle *bundle, size_t index, unsigned char **data, size_t *size,
                                  rs_error *err) {
    if (bundle == NULL || index >= bundle->count || data == NULL || size == NULL) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_bundle_validate: no artifact %zu", index);
    }
    rs_error local = {RS_OK, ""};
    int lasting;
    *data = NULL;
    rs_status status = check(bundle, &bundle->artifacts[index], data, &lasting, &local);
    if (lasting) {
        remember(bundle, index, status, local.message);
    }
    *size = (size_t)bundle->artifacts[index].bytes;
    return status == RS_OK ? RS_OK : rs_fail(err, status, "%s", local.message);
}

rs_status rs_bundle_validate(rs_bundle *bundle, size_t index, rs_error *err) {
    unsigned char *data;
    size_t size;
    rs_status status = rs_bundle_read_verified(bundle, index, &data, &size, err);
    if (status == RS_OK) {
        free(data);
    }
    return status;
}

rs_status rs_bundle_verdict(rs_bundle *bundle, size_t index, rs_error *err) {
    pthread_mutex_lock(&bundle->lock);
    rs_status status = bundle->validated[index];
    char message[sizeof bundle->validation_message[index]];
    memcpy(message, bundle->validation_message[index], sizeof message);
    pthread_mutex_unlock(&bundle->lock);
    if (status == RS_NOT_CHECKED) {
        return rs_bundle_validate(bundle, index, err);
    }
    return status == RS_OK ? RS_OK : rs_fail(err, status, "%s", message);
}
