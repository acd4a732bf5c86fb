/* Internal helpers shared by the core's translation units (not installed). */
#ifndef RESTNET_SHIM_INTERNAL_H
#define RESTNET_SHIM_INTERNAL_H

#include <stdio.h>

#include "restnet_shim.h"

#define RS_INDEX_NAME "bundle.index"
#define RS_MAX_INDEX_BYTES (1u << 20)
#define RS_MAX_LINE 4096

struct rs_bundle {
    char dir[4096];
    char real_dir[4096];
    rs_input_spec input;
    size_t count;
    rs_artifact artifacts[RS_MAX_ARTIFACTS];
    rs_status validated[RS_MAX_ARTIFACTS]; /* RS_OK, an error, or -1 when not yet checked */
    char validation_message[RS_MAX_ARTIFACTS][320];
    size_t label_count;
    char *labels[RS_MAX_LABELS];
};

/* Inside the core, failing is rs_error_set. */
#define rs_fail rs_error_set

/* Reads at most `limit` bytes of `path` into a NUL-terminated heap buffer; fails if the file is larger. */
rs_status rs_read_file(const char *path, size_t limit, char **out, size_t *length, rs_error *err);

/* Parses the text of a `bundle.index` into `bundle`. */
rs_status rs_parse_index(rs_bundle *bundle, const char *text, size_t length, rs_error *err);

/* SHA-256 of the open stream, as 64 lowercase hex digits plus NUL. */
int rs_sha256_stream(FILE *stream, char hex[65]);
void rs_sha256_hex(const void *data, size_t size, char hex[65]);

#endif
