/* restnet-shim: the command-line face of the runtime shim, and the on-device debugging tool.
 *
 *   restnet-shim select BUNDLE [--backend B] [--available-mb N | --memory-root DIR] [--headroom-mb N]
 *                              [--hysteresis F] [--override ID] [--json]
 *   restnet-shim verify BUNDLE
 *
 * Exit status: 0 on success, 1 when the bundle is bad or nothing fits, 2 on a usage error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restnet_shim.h"

#define MIB (1024.0 * 1024.0)

static int usage(const char *problem) {
    fprintf(stderr, "restnet-shim: %s\n", problem);
    fprintf(stderr, "usage: restnet-shim select BUNDLE [--backend litert|executorch] [--available-mb N | "
                    "--memory-root DIR]\n                           [--headroom-mb N] [--hysteresis F] "
                    "[--override ID] [--json]\n       restnet-shim verify BUNDLE\n");
    return 2;
}

static int parse_number(const char *text, double *out) {
    char *end;
    *out = strtod(text, &end);
    return end != text && *end == '\0' && *out >= 0 && *out < 1e12 ? 0 : -1;
}

static void json_string(const char *text) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static void print_json(const rs_bundle *bundle, const rs_memory *memory, const char *backend,
                       const rs_selection *selection, rs_status status, const rs_error *err) {
    printf("{\"status\": ");
    json_string(rs_status_name(status));
    printf(", \"message\": ");
    json_string(status == RS_OK ? "" : err->message);
    printf(", \"backend\": ");
    json_string(backend);
    printf(", \"available_bytes\": %llu, \"memory_source\": ", (unsigned long long)selection->available);
    json_string(memory ? memory->source : "given");
    printf(", \"chosen\": ");
    if (selection->chosen == SIZE_MAX) {
        printf("null");
    } else {
        json_string(rs_bundle_artifact(bundle, selection->chosen)->id);
    }
    printf(", \"artifacts\": [");
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        printf("%s{\"id\": ", i ? ", " : "");
        json_string(a->id);
        printf(", \"backend\": ");
        json_string(a->backend);
        printf(", \"file\": ");
        json_string(a->file);
        printf(", \"bytes\": %llu, \"sha256\": ", (unsigned long long)a->bytes);
        json_string(a->sha256);
        printf(", \"memory_bytes\": %llu, \"accuracy\": %.3f, \"params\": %llu, \"entry_point\": ",
               (unsigned long long)a->memory_bytes, a->accuracy, (unsigned long long)a->params);
        json_string(a->entry_point);
        printf(", \"verdict\": ");
        json_string(rs_verdict_name(selection->verdicts[i].kind));
        printf(", \"reason\": ");
        json_string(selection->verdicts[i].reason);
        printf("}");
    }
    printf("]}\n");
}

static void print_text(const rs_bundle *bundle, const rs_memory *memory, const char *backend,
                       const rs_selection *selection) {
    printf("bundle: %s (%zu artifacts)\n", rs_bundle_dir(bundle), rs_bundle_artifact_count(bundle));
    if (memory == NULL) {
        printf("memory: %.1f MiB available (given)\n", (double)selection->available / MIB);
    } else {
        printf("memory: %.1f MiB available (from %s", (double)memory->available / MIB, memory->source);
        if (memory->cgroup_limit != UINT64_MAX) {
            printf(": limit %.1f MiB, usage %.1f MiB", (double)memory->cgroup_limit / MIB,
                   (double)memory->cgroup_usage / MIB);
        }
        if (memory->mem_available != UINT64_MAX) {
            printf("; MemAvailable %.1f MiB", (double)memory->mem_available / MIB);
        }
        printf(")\n");
    }
    if (selection->chosen != SIZE_MAX) {
        const rs_artifact *a = rs_bundle_artifact(bundle, selection->chosen);
        printf("chosen: %s (%s): %s\n", a->id, a->file, selection->verdicts[selection->chosen].reason);
    }
    printf("%s variants not chosen:\n", backend);
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_verdict *v = &selection->verdicts[i];
        if (v->kind != RS_VERDICT_CHOSEN && v->kind != RS_VERDICT_OTHER_BACKEND) {
            printf("  %s: %s: %s\n", rs_bundle_artifact(bundle, i)->id, rs_verdict_name(v->kind), v->reason);
        }
    }
}

static int command_select(int argc, char **argv) {
    const char *dir = NULL, *root = "/", *override = NULL, *backend = "litert";
    double available_mb = -1, headroom_mb = 16, hysteresis = 0.1;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--json") == 0) {
            json = 1;
            continue;
        }
        if (arg[0] != '-') {
            if (dir != NULL) return usage("more than one bundle given");
            dir = arg;
            continue;
        }
        if (value == NULL) return usage("an option is missing its value");
        i++;
        if (strcmp(arg, "--backend") == 0) backend = value;
        else if (strcmp(arg, "--memory-root") == 0) root = value;
        else if (strcmp(arg, "--override") == 0) override = value;
        else if (strcmp(arg, "--available-mb") == 0) {
            if (parse_number(value, &available_mb) != 0) return usage("--available-mb expects a number >= 0");
        } else if (strcmp(arg, "--headroom-mb") == 0) {
            if (parse_number(value, &headroom_mb) != 0) return usage("--headroom-mb expects a number >= 0");
        } else if (strcmp(arg, "--hysteresis") == 0) {
            if (parse_number(value, &hysteresis) != 0) return usage("--hysteresis expects a fraction >= 0");
        } else {
            return usage("unknown option");
        }
    }
    if (dir == NULL) return usage("select needs a BUNDLE directory");
    if (strcmp(backend, "litert") != 0 && strcmp(backend, "executorch") != 0) {
        return usage("--backend must be litert or executorch");
    }
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle;
    if (rs_bundle_open(dir, &bundle, &err) != RS_OK) {
        fprintf(stderr, "restnet-shim: %s\n", err.message);
        return 1;
    }
    rs_memory memory;
    const rs_memory *probed = NULL;
    uint64_t available;
    if (available_mb >= 0) {
        available = (uint64_t)(available_mb * MIB);
    } else {
        if (rs_probe_memory(root, &memory, &err) != RS_OK) {
            fprintf(stderr, "restnet-shim: %s\n", err.message);
            rs_bundle_close(bundle);
            return 1;
        }
        probed = &memory;
        available = memory.available;
    }
    rs_policy policy = {backend, (uint64_t)(headroom_mb * MIB), hysteresis, override};
    static rs_selection selection;
    rs_status status = rs_select(bundle, &policy, available, SIZE_MAX, &selection, &err);
    if (json) {
        print_json(bundle, probed, backend, &selection, status, &err);
    } else {
        print_text(bundle, probed, backend, &selection);
    }
    if (status != RS_OK) {
        fprintf(stderr, "restnet-shim: %s\n", err.message);
    }
    rs_bundle_close(bundle);
    return status == RS_OK ? 0 : 1;
}

static int command_verify(int argc, char **argv) {
    if (argc != 1) return usage("verify needs exactly one BUNDLE directory");
    rs_error err = {RS_OK, ""};
    rs_bundle *bundle;
    if (rs_bundle_open(argv[0], &bundle, &err) != RS_OK) {
        fprintf(stderr, "restnet-shim: %s\n", err.message);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        const rs_artifact *a = rs_bundle_artifact(bundle, i);
        rs_status status = rs_bundle_validate(bundle, i, NULL, 0, &err);
        printf("%-4s %s/%s%s%s\n", status == RS_OK ? "ok" : "BAD", a->backend, a->id, status == RS_OK ? "" : ": ",
               status == RS_OK ? "" : err.message);
        bad |= status != RS_OK;
    }
    rs_bundle_close(bundle);
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage("missing command");
    if (strcmp(argv[1], "select") == 0) return command_select(argc - 2, argv + 2);
    if (strcmp(argv[1], "verify") == 0) return command_verify(argc - 2, argv + 2);
    return usage("unknown command (select, verify)");
}
