/* Internal helpers shared by the core's translation units (not installed). */
#ifndef RESTNET_SHIM_INTERNAL_H
#define RESTNET_SHIM_INTERNAL_H

#include <pthread.h>
#include <stdio.h>

#include "restnet_shim.h"

#define RS_INDEX_NAME "bundle.index"
#define RS_MAX_INDEX_BYTES (1u << 20)
#define RS_MAX_LINE 4096
#define RS_NOT_CHECKED ((rs_status)-1)

struct rs_bundle {
    char dir[4096];      /* the path given to rs_bundle_open (re-read by rs_bundle_check_current) */
    char real_dir[4096]; /* its real path when opened, for messages */
    int dir_fd;          /* the directory opened then: every later read is relative to it */
    char identity[65];
    int version;         /* of the index: 2 (every input NCHW, no layout key) or RS_INDEX_VERSION */
    rs_input_spec input;
    int threads;         /* the `runtime` record's threads, 0 without one */
    size_t count;
    rs_artifact artifacts[RS_MAX_ARTIFACTS];
    size_t label_count;
    char *labels[RS_MAX_LABELS];
    /* Guarded by `lock`: verdicts (RS_OK, an error, or RS_NOT_CHECKED) and the owners' reference count. */
    pthread_mutex_t lock;
    rs_status validated[RS_MAX_ARTIFACTS];
    char validation_message[RS_MAX_ARTIFACTS][320];
    unsigned references;
};

/* Inside the core, failing is rs_error_set. */
#define rs_fail rs_error_set

/* Reads the regular file `name` (relative to `dir_fd`, or a path when `dir_fd` is AT_FDCWD) into a NUL-terminated
 * heap buffer of at most `limit` bytes. Never blocks on a FIFO or device: they are refused as not regular files.
 * With `no_follow`, a symlink is refused. `*absent` (may be NULL) is set when the file does not exist or may not
 * be opened (EACCES, EPERM: a sandbox hiding it), which memory probing reads as "no figure here". */
rs_status rs_read_file_at(int dir_fd, const char *name, int no_follow, size_t limit, char **out, size_t *length,
                          int *absent, rs_error *err);

/* An empty bundle (no directory, one reference), or NULL; released with rs_bundle_close. */
rs_bundle *rs_bundle_new(void);

/* Parses the text of a `bundle.index` into an empty `bundle` (the identity line's syntax, not its digest). */
rs_status rs_parse_index(rs_bundle *bundle, const char *text, size_t length, rs_error *err);

/* Verdict of artifact `index` for selection: remembered after the first check. */
rs_status rs_bundle_verdict(rs_bundle *bundle, size_t index, rs_error *err);

/* Reads artifact `index` beneath the bundle directory and checks it as rs_bundle_validate does; on success
 * `*data` (heap, the caller frees it) holds exactly the `*size` bytes whose sha256 matched. The verdict is
 * remembered. */
rs_status rs_bundle_read_verified(rs_bundle *bundle, size_t index, unsigned char **data, size_t *size,
                                  rs_error *err);

/* Reference counting for runners (rs_bundle_close drops the caller's reference). */
void rs_bundle_retain(rs_bundle *bundle);
void rs_bundle_release(rs_bundle *bundle);

/* How selection orders two artifacts, memory aside: 1 when `a` comes before `b` (higher rank, or equal rank and
 * higher accuracy), -1 when after, 0 when neither (exactly these three values). */
int rs_artifact_order(const rs_artifact *a, const rs_artifact *b);

/* rs_select with per-artifact memory needs (`needs[i]` replaces artifact i's index figure; NULL: the index). */
rs_status rs_select_with_needs(rs_bundle *bundle, const rs_policy *policy, uint64_t available, size_t current,
                               const uint64_t *needs, rs_selection *out, rs_error *err);

/* Parsers of the memory files' contents, exposed for the fuzzers. Each returns 0, or -1 if malformed. */
int rs_parse_limit(const char *text, uint64_t *value);                 /* "N\n" or "max\n"; UINT64_MAX = none */
int rs_parse_meminfo(const char *text, uint64_t *available); /* MemAvailable, bytes; -1 absent, -2 malformed */
int rs_parse_stat_field(const char *text, const char *key, uint64_t *value); /* "key N" line of memory.stat */
int rs_parse_cgroup_path(const char *text, int v2, char *path, size_t size); /* own cgroup; -1 if none */

/* SHA-256 as 64 lowercase hex digits plus NUL. */
void rs_sha256_hex(const void *data, size_t size, char hex[65]);

#endif
