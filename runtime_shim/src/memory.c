/* Probing the memory available to this process: MemAvailable, and the memory cgroup's limit minus usage.
 *
 * Every path is read under an injectable root ("/" in production) so tests run against fixture trees.
 * cgroup v2: `memory.max` (literal "max" = no limit) and `memory.current`; cgroup v1:
 * `memory.limit_in_bytes` (a value near 2^63 = no limit) and `memory.usage_in_bytes`. The process's own
 * cgroup comes from /proc/self/cgroup; if its directory is not visible (a container's namespaced mount),
 * the mount's root directory is used.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SMALL_FILE 65536
/* cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value; treat anything this big as none. */
#define UNLIMITED_FROM ((uint64_t)1 << 62)

static int read_text(const char *root, const char *path, char **text) {
    char full[8192];
    size_t length;
    snprintf(full, sizeof full, "%s%s", root, path);
    return rs_read_file(full, SMALL_FILE, text, &length, NULL) == RS_OK ? 0 : -1;
}

/* A file holding one number (or "max"); returns 0 and sets *value (UINT64_MAX for no limit), -1 if absent/bad. */
static int read_number(const char *root, const char *path, uint64_t *value) {
    char *text;
    if (read_text(root, path, &text) != 0) {
        return -1;
    }
    int result = -1;
    char *end;
    if (strncmp(text, "max", 3) == 0 && (text[3] == '\n' || text[3] == '\0')) {
        *value = UINT64_MAX;
        result = 0;
    } else if (text[0] >= '0' && text[0] <= '9') {
        unsigned long long number = strtoull(text, &end, 10);
        if (*end == '\n' || *end == '\0') {
            *value = number >= UNLIMITED_FROM ? UINT64_MAX : number;
            result = 0;
        }
    }
    free(text);
    return result;
}

static int mem_available(const char *root, uint64_t *value) {
    char *text;
    if (read_text(root, "/proc/meminfo", &text) != 0) {
        return -1;
    }
    int result = -1;
    const char *line = strstr(text, "MemAvailable:");
    if (line != NULL && (line == text || line[-1] == '\n')) {
        char *end;
        unsigned long long kib = strtoull(line + strlen("MemAvailable:"), &end, 10);
        if (strncmp(end, " kB", 3) == 0 && kib < UINT64_MAX / 1024) {
            *value = (uint64_t)kib * 1024;
            result = 0;
        }
    }
    free(text);
    return result;
}

/* The cgroup path of this process for v2 ("0::PATH") or for the v1 memory controller ("N:...memory...:PATH"). */
static int own_cgroup(const char *root, int v2, char *path, size_t size) {
    char *text;
    if (read_text(root, "/proc/self/cgroup", &text) != 0) {
        return -1;
    }
    int found = -1;
    char *state = NULL;
    for (char *line = strtok_r(text, "\n", &state); line != NULL && found != 0; line = strtok_r(NULL, "\n", &state)) {
        char *first = strchr(line, ':');
        char *second = first ? strchr(first + 1, ':') : NULL;
        if (second == NULL) {
            continue;
        }
        *second = '\0';
        const char *controllers = first + 1;
        int match = v2 ? strncmp(line, "0:", 2) == 0 && controllers[0] == '\0' : 0;
        if (!v2) {
            char *cstate = NULL;
            for (char *c = strtok_r(first + 1, ",", &cstate); c != NULL; c = strtok_r(NULL, ",", &cstate)) {
                match |= strcmp(c, "memory") == 0;
            }
        }
        if (match && strlen(second + 1) < size && (strcmp(second + 1, "/") == 0 || strstr(second + 1, "..") == NULL)) {
            snprintf(path, size, "%s", strcmp(second + 1, "/") == 0 ? "" : second + 1);
            found = 0;
        }
    }
    free(text);
    return found;
}

/* limit and usage of one cgroup version; 0 if a limit file was found. */
static int cgroup_figures(const char *root, int v2, uint64_t *limit, uint64_t *usage) {
    const char *mount = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
    const char *limit_file = v2 ? "memory.max" : "memory.limit_in_bytes";
    const char *usage_file = v2 ? "memory.current" : "memory.usage_in_bytes";
    char own[2048] = "";
    char path[4096];
    int have_own = own_cgroup(root, v2, own, sizeof own) == 0 && own[0] != '\0';
    for (int attempt = have_own ? 0 : 1; attempt < 2; attempt++) {
        const char *dir = attempt == 0 ? own : "";
        snprintf(path, sizeof path, "%s%s/%s", mount, dir, limit_file);
        if (read_number(root, path, limit) != 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s%s/%s", mount, dir, usage_file);
        if (read_number(root, path, usage) != 0 || *usage == UINT64_MAX) {
            *usage = 0;
        }
        return 0;
    }
    return -1;
}

rs_status rs_probe_memory(const char *root, rs_memory *out, rs_error *err) {
    if (root == NULL || out == NULL || strlen(root) > 2048) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_probe_memory: root (at most 2048 bytes) and out are required");
    }
    const char *base = strcmp(root, "/") == 0 ? "" : root;
    out->mem_available = UINT64_MAX;
    out->cgroup_limit = UINT64_MAX;
    out->cgroup_usage = 0;
    out->source = "meminfo";
    int have_meminfo = mem_available(base, &out->mem_available) == 0;
    out->available = out->mem_available;
    for (int v2 = 1; v2 >= 0; v2--) {
        uint64_t limit, usage;
        if (cgroup_figures(base, v2, &limit, &usage) != 0 || limit == UINT64_MAX) {
            continue;
        }
        uint64_t room = usage < limit ? limit - usage : 0;
        if (room < out->available) {
            out->available = room;
            out->cgroup_limit = limit;
            out->cgroup_usage = usage;
            out->source = v2 ? "cgroup v2" : "cgroup v1";
        }
    }
    if (!have_meminfo && out->cgroup_limit == UINT64_MAX) {
        return rs_fail(err, RS_ERR_IO, "%s/proc/meminfo: no MemAvailable, and no memory cgroup limit found", base);
    }
    return RS_OK;
}
