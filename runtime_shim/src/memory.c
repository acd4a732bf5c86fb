/* Probing the memory available to this process: MemAvailable, and the room left under every memory cgroup
 * limit from the process's own cgroup up to the root.
 *
 * Every path is read under an injectable root ("/" in production) so tests run against fixture trees.
 * cgroup v2: `memory.max` and `memory.high` (literal "max" = no limit) against `memory.current`; cgroup v1:
 * `memory.limit_in_bytes` (a value near 2^63 = no limit) against `memory.usage_in_bytes`, and the
 * `hierarchical_memory_limit` of `memory.stat` (the tightest ancestor's limit, visible even when the ancestors
 * are not). The process's own cgroup comes from /proc/self/cgroup; if its directory is not visible (a
 * container's namespaced mount), the mount's root stands for it. A file that is absent, or that a sandbox does
 * not let us open, means "no figure here"; a file that exists but is not a regular file or does not parse is
 * an error naming it (fail closed).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define SMALL_FILE 65536
/* cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value; treat anything this big as none. */
#define UNLIMITED_FROM ((uint64_t)1 << 62)

typedef enum { FOUND, ABSENT, BROKEN } lookup;

/* Reads `root``path`; ABSENT if it does not exist, BROKEN (with `err` set) if it cannot be read. */
static lookup read_text(const char *root, const char *path, char **text, rs_error *err) {
    char full[8192];
    size_t length = 0;
    int absent = 0;
    snprintf(full, sizeof full, "%s%s", root, path);
    if (rs_read_file_at(AT_FDCWD, full, 0, SMALL_FILE, text, &length, &absent, err) == RS_OK) {
        return FOUND;
    }
    return absent ? ABSENT : BROKEN;
}

static int parse_decimal(const char *text, const char **end, uint64_t *value) {
    if (*text < '0' || *text > '9') {
        return -1;
    }
    uint64_t number = 0;
    for (; *text >= '0' && *text <= '9'; text++) {
        unsigned digit = (unsigned)(*text - '0');
        if (number > (UINT64_MAX - digit) / 10) {
            return -1;
        }
        number = number * 10 + digit;
    }
    *end = text;
    *value = number;
    return 0;
}

int rs_parse_limit(const char *text, uint64_t *value) {
    const char *end;
    if (strncmp(text, "max", 3) == 0) {
        end = text + 3;
        *value = UINT64_MAX;
    } else if (parse_decimal(text, &end, value) == 0) {
        *value = *value >= UNLIMITED_FROM ? UINT64_MAX : *value;
    } else {
        return -1;
    }
    return (end[0] == '\n' && end[1] == '\0') || end[0] == '\0' ? 0 : -1;
}

int rs_parse_stat_field(const char *text, const char *key, uint64_t *value) {
    size_t n = strlen(key);
    for (const char *line = text; line != NULL && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *end;
        if (strncmp(line, key, n) == 0 && line[n] == ' ' && parse_decimal(line + n + 1, &end, value) == 0 &&
            (*end == '\n' || *end == '\0')) {
            *value = *value >= UNLIMITED_FROM ? UINT64_MAX : *value;
            return 0;
        }
    }
    return -1;
}

int rs_parse_meminfo(const char *text, uint64_t *available) {
    static const char KEY[] = "MemAvailable:";
    for (const char *line = text; line != NULL && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, KEY, sizeof KEY - 1) != 0) {
            continue;
        }
        const char *p = line + sizeof KEY - 1, *end;
        while (*p == ' ') p++;
        uint64_t kib;
        if (parse_decimal(p, &end, &kib) != 0 || strncmp(end, " kB", 3) != 0 || kib > UINT64_MAX / 1024) {
            return -2;
        }
        *available = kib * 1024;
        return 0;
    }
    return -1;
}

int rs_parse_cgroup_path(const char *text, int v2, char *path, size_t size) {
    for (const char *line = text; line != NULL && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *first = memchr(line, ':', n);
        const char *second = first ? memchr(first + 1, ':', n - (size_t)(first + 1 - line)) : NULL;
        if (second == NULL) {
            continue;
        }
        const char *controllers = first + 1, *own = second + 1;
        size_t controllers_n = (size_t)(second - controllers), own_n = n - (size_t)(own - line);
        int match = 0;
        if (v2) {
            match = first == line + 1 && line[0] == '0' && controllers_n == 0;
        } else {
            for (const char *c = controllers; c < second;) {
                const char *comma = memchr(c, ',', (size_t)(second - c));
                size_t length = comma ? (size_t)(comma - c) : (size_t)(second - c);
                match |= length == 6 && strncmp(c, "memory", 6) == 0;
                c += length + 1;
            }
        }
        if (!match || own_n == 0 || own[0] != '/' || own_n >= size) {
            continue;
        }
        memcpy(path, own, own_n);
        path[own_n] = '\0';
        if (strstr(path, "/..") != NULL || strstr(path, "//") != NULL) {
            continue;
        }
        if (own_n == 1) {
            path[0] = '\0'; /* the root cgroup: "" under the mount */
        }
        return 0;
    }
    return -1;
}

/* The value of a limit file; ABSENT leaves *value untouched. */
static lookup read_limit(const char *root, const char *path, uint64_t *value, rs_error *err) {
    char *text = NULL;
    lookup found = read_text(root, path, &text, err);
    if (found != FOUND) {
        return found;
    }
    if (rs_parse_limit(text, value) != 0) {
        rs_fail(err, RS_ERR_FORMAT, "%s%s: expected a byte count or 'max', got '%.20s'", root, path, text);
        found = BROKEN;
    }
    free(text);
    return found;
}

/* The tightest room over all levels of one cgroup version; `*limit` stays UINT64_MAX when there is none. */
typedef struct {
    const char *mount, *limit_files[2], *usage_file;
} cgroup_layout;

static const cgroup_layout V2 = {"/sys/fs/cgroup", {"memory.max", "memory.high"}, "memory.current"};
static const cgroup_layout V1 = {"/sys/fs/cgroup/memory", {"memory.limit_in_bytes", NULL}, "memory.usage_in_bytes"};

static void tighten(uint64_t limit, uint64_t usage, uint64_t *room, uint64_t *best_limit, uint64_t *best_usage) {
    uint64_t here = usage < limit ? limit - usage : 0;
    if (limit != UINT64_MAX && here < *room) {
        *room = here;
        *best_limit = limit;
        *best_usage = usage;
    }
}

/* One level of the hierarchy: its limits (tightest) against its usage. */
static rs_status level(const char *root, const cgroup_layout *layout, const char *dir, int v1_own, uint64_t *room,
                       uint64_t *limit, uint64_t *usage, rs_error *err) {
    char path[4096];
    uint64_t tightest = UINT64_MAX, value, used = 0;
    for (int i = 0; i < 2 && layout->limit_files[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s%s/%s", layout->mount, dir, layout->limit_files[i]);
        value = UINT64_MAX;
        lookup found = read_limit(root, path, &value, err);
        if (found == BROKEN) {
            return err->code;
        }
        tightest = value < tightest ? value : tightest;
    }
    if (v1_own) { /* v1: the ancestors' tightest limit, as the kernel sums it up for this cgroup */
        char *text = NULL;
        snprintf(path, sizeof path, "%s%s/memory.stat", layout->mount, dir);
        lookup found = read_text(root, path, &text, err);
        if (found == BROKEN) {
            return err->code;
        }
        if (found == FOUND) { /* without the line (an emulated cgroupfs), there is no figure here */
            if (rs_parse_stat_field(text, "hierarchical_memory_limit", &value) == 0) {
                tightest = value < tightest ? value : tightest;
            }
            free(text);
        }
    }
    if (tightest == UINT64_MAX) {
        return RS_OK;
    }
    snprintf(path, sizeof path, "%s%s/%s", layout->mount, dir, layout->usage_file);
    lookup found = read_limit(root, path, &used, err);
    if (found != FOUND || used == UINT64_MAX) {
        return found == BROKEN ? err->code
                               : rs_fail(err, RS_ERR_FORMAT, "%s%s: missing or 'max' beside a limit", root, path);
    }
    tighten(tightest, used, room, limit, usage);
    return RS_OK;
}

static int is_directory(const char *root, const char *mount, const char *dir) {
    char path[8192];
    struct stat info;
    snprintf(path, sizeof path, "%s%s%s", root, mount, dir);
    return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

static rs_status cgroup_room(const char *root, const cgroup_layout *layout, uint64_t *room, uint64_t *limit,
                             uint64_t *usage, rs_error *err) {
    char *text = NULL;
    char own[2048] = "";
    lookup found = read_text(root, "/proc/self/cgroup", &text, err);
    if (found == BROKEN) {
        return err->code;
    }
    if (found == FOUND) {
        if (rs_parse_cgroup_path(text, layout == &V2, own, sizeof own) != 0) {
            own[0] = '\0';
        }
        free(text);
    }
    if (!is_directory(root, layout->mount, own)) {
        own[0] = '\0'; /* namespaced: the mount's root is this process's cgroup */
    }
    for (int first = 1;; first = 0) {
        rs_status status = level(root, layout, own, first && layout == &V1, room, limit, usage, err);
        if (status != RS_OK) {
            return status;
        }
        char *slash = strrchr(own, '/');
        if (slash == NULL) {
            return RS_OK;
        }
        *slash = '\0';
    }
}

/* rs_probe_memory under `base` ("" for the real root); `err` is never NULL. */
static rs_status probe(const char *base, rs_memory *out, rs_error *err) {
    out->mem_available = UINT64_MAX;
    out->cgroup_limit = UINT64_MAX;
    out->cgroup_usage = 0;
    out->source = "meminfo";
    char *text = NULL;
    lookup found = read_text(base, "/proc/meminfo", &text, err);
    if (found == BROKEN) {
        return err->code;
    }
    int parsed = found == FOUND ? rs_parse_meminfo(text, &out->mem_available) : -1;
    if (found == FOUND) {
        free(text);
    }
    if (parsed == -2) {
        return rs_fail(err, RS_ERR_FORMAT, "%s/proc/meminfo: MemAvailable is not 'N kB'", base);
    }
    int have_meminfo = parsed == 0;
    out->available = out->mem_available;
    const cgroup_layout *layouts[2] = {&V2, &V1};
    for (int i = 0; i < 2; i++) {
        uint64_t room = UINT64_MAX, limit = UINT64_MAX, usage = 0;
        rs_status status = cgroup_room(base, layouts[i], &room, &limit, &usage, err);
        if (status != RS_OK) {
            return status;
        }
        if (limit != UINT64_MAX && room < out->available) {
            out->available = room;
            out->cgroup_limit = limit;
            out->cgroup_usage = usage;
            out->source = i == 0 ? "cgroup v2" : "cgroup v1";
        }
    }
    if (!have_meminfo && out->cgroup_limit == UINT64_MAX) {
        return rs_fail(err, RS_ERR_IO, "%s/proc/meminfo: no MemAvailable, and no memory cgroup limit found", base);
    }
    return RS_OK;
}

rs_status rs_probe_memory(const char *root, rs_memory *out, rs_error *err) {
    if (root == NULL || out == NULL || strlen(root) > 2048) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_probe_memory: root (at most 2048 bytes) and out are required");
    }
    rs_error local = {RS_OK, ""};
    rs_status status = probe(strcmp(root, "/") == 0 ? "" : root, out, &local);
    return status == RS_OK ? RS_OK : rs_fail(err, status, "%s", local.message);
}
