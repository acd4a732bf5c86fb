/* Status codes, their names, and error reporting. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

rs_status rs_error_set(rs_error *err, rs_status code, const char *format, ...) {
    if (err != NULL) {
        va_list args;
        va_start(args, format);
        vsnprintf(err->message, sizeof err->message, format, args);
        va_end(args);
        err->code = code;
    }
    return code;
}

const char *rs_status_name(rs_status status) {
    switch (status) {
    case RS_OK: return "ok";
    case RS_ERR_ARGUMENT: return "invalid argument";
    case RS_ERR_IO: return "i/o error";
    case RS_ERR_FORMAT: return "format error";
    case RS_ERR_UNSAFE_PATH: return "unsafe path";
    case RS_ERR_SIZE: return "size mismatch";
    case RS_ERR_DIGEST: return "sha256 mismatch";
    case RS_ERR_NOTHING_FITS: return "nothing fits";
    case RS_ERR_NO_MEMORY: return "out of memory";
    case RS_ERR_BACKEND: return "backend error";
    case RS_ERR_STALE: return "bundle replaced";
    case RS_ERR_NO_MODEL: return "no model loaded";
    }
    return "unknown status";
}

const char *rs_verdict_name(rs_verdict_kind kind) {
    switch (kind) {
    case RS_VERDICT_CHOSEN: return "chosen";
    case RS_VERDICT_OTHER_BACKEND: return "other backend";
    case RS_VERDICT_TOO_LARGE: return "too large";
    case RS_VERDICT_INVALID: return "invalid";
    case RS_VERDICT_LESS_ACCURATE: return "less accurate";
    case RS_VERDICT_NOT_OVERRIDE: return "not the override";
    }
    return "unknown verdict";
}
