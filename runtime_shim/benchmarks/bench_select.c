/* Times the core's hot paths on a real bundle: opening it, probing memory, the first selection (which
 * validates the chosen file: size and sha256) and later selections (validation remembered).
 * usage: bench_select BUNDLE BACKEND RUNS   -> one JSON line of medians in microseconds */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "restnet_shim.h"

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int n) {
    qsort(values, (size_t)n, sizeof *values, compare);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

int main(int argc, char **argv) {
    if (argc != 4 || atoi(argv[3]) < 1) {
        fprintf(stderr, "usage: bench_select BUNDLE BACKEND RUNS\n");
        return 2;
    }
    int runs = atoi(argv[3]);
    double *open_us = calloc((size_t)runs, sizeof(double)), *probe_us = calloc((size_t)runs, sizeof(double));
    double *first_us = calloc((size_t)runs, sizeof(double)), *again_us = calloc((size_t)runs, sizeof(double));
    rs_selection *selection = malloc(sizeof *selection);
    rs_policy policy = {argv[2], RS_DEFAULT_HEADROOM_BYTES, RS_DEFAULT_HYSTERESIS, NULL, 0};
    rs_error err = {RS_OK, ""};
    for (int i = 0; i < runs; i++) {
        rs_bundle *bundle;
        rs_memory memory;
        double t0 = now_us();
        if (rs_bundle_open(argv[1], &bundle, &err) != RS_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        double t1 = now_us();
        if (rs_probe_memory("/", &memory, &err) != RS_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        double t2 = now_us();
        rs_status first = rs_select(bundle, &policy, memory.available, SIZE_MAX, selection, &err);
        double t3 = now_us();
        rs_status again = rs_select(bundle, &policy, memory.available, selection->chosen, selection, &err);
        double t4 = now_us();
        if (first != RS_OK || again != RS_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        open_us[i] = t1 - t0;
        probe_us[i] = t2 - t1;
        first_us[i] = t3 - t2;
        again_us[i] = t4 - t3;
        rs_bundle_close(bundle);
    }
    printf("{\"runs\": %d, \"open_us\": %.1f, \"probe_memory_us\": %.1f, \"first_select_us\": %.1f, "
           "\"select_us\": %.2f}\n",
           runs, median(open_us, runs), median(probe_us, runs), median(first_us, runs), median(again_us, runs));
    free(open_us);
    free(probe_us);
    free(first_us);
    free(again_us);
    free(selection);
    return 0;
}
