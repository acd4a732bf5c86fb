/*
 * LD_PRELOAD helper for running LiteRT under qemu-user: there /proc/cpuinfo is the x86 host's, and the
 * aarch64 libLiteRt.so crashes while compiling a model. Opening "/proc/cpuinfo" through open() or fopen()
 * (the two calls libLiteRt.so imports for it) opens the file named by RS_CPUINFO instead.
 * Test-only: never linked into the shim.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORTED __attribute__((visibility("default")))

static const char *redirected(const char *path) {
    const char *replacement = getenv("RS_CPUINFO");
    return (replacement != NULL && path != NULL && strcmp(path, "/proc/cpuinfo") == 0) ? replacement : path;
}

EXPORTED int open(const char *path, int flags, ...) {
    int (*next)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list args;
        va_start(args, flags);
        mode = (mode_t)va_arg(args, int);
        va_end(args);
    }
    return next(redirected(path), flags, mode);
}

EXPORTED FILE *fopen(const char *path, const char *mode) {
    FILE *(*next)(const char *, const char *) = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
    return next(redirected(path), mode);
}
