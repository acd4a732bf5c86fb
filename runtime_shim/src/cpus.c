/* The CPUs this process may run on: the most threads a backend gives a runtime. */
#define _GNU_SOURCE /* sched_getaffinity and CPU_COUNT (glibc, musl and bionic all have them) */
#include <sched.h>
#include <unistd.h>

#include "restnet_shim.h"

int rs_usable_cpus(void) {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) > 0) {
        return CPU_COUNT(&mask);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN); /* more CPUs than a cpu_set_t holds, or no affinity call */
    return online > 0 && online <= RS_MAX_THREADS ? (int)online : online > RS_MAX_THREADS ? RS_MAX_THREADS : 1;
}
