/* The C tests' one assertion: report the failed condition with a message and keep going. */
#ifndef RESTNET_SHIM_TEST_CHECK_H
#define RESTNET_SHIM_TEST_CHECK_H

#include <stdio.h>

static int failures = 0;

#define CHECK(condition, ...)                                                             \
    do {                                                                                  \
        if (!(condition)) {                                                               \
            failures++;                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #condition); \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

#endif
