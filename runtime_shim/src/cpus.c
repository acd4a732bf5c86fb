/* The CPUs this process may run on: the most threads a backend gives a runtime. */
#define _GNU_SOURCE /* sched_getaffinity and CPU_COUNT (glibc, musl and bionic all have them) */
#include <sched.h>
#include <unistd.h>

#include "restnet_shim.h"

int rs_usable_cpus(void) {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    long count = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : 0;
    if (count <= 0) {
        count = sysconf(_SC_NPROCESSORS_ONLN); /* more CPUs than a cpu_set_t holds, or no affinity call */
    }
    return count < 1 ? 1 : count > RS_MAX_THREADS ? RS_MAX_THREADS : (int)count;
}
