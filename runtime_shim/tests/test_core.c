/* Tests of the shim's core against fixture memory trees and bundles written by the test itself. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "check.h"
#include "restnet_shim.h"

#define MIB (1024ull * 1024ull)

static const char *fixtures;


/* ---- SHA-256 known answers (FIPS 180-4 examples) ---- */
static void test_sha256(void) {
    char hex[65];
    rs_sha256_hex("", 0, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "%s", hex);
    rs_sha256_hex("abc", 3, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "%s", hex);
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    rs_sha256_hex(two_blocks, strlen(two_blocks), hex);
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "%s", hex);
}

/* ---- memory probing ---- */
/* Probes fixture `name`: `code`, and then `available` bytes from `text` (the source), or `text` in the error. */
static void probe_fixture(const char *name, rs_status code, uint64_t available, const char *text) {
    char root[4096];
    snprintf(root, sizeof root, "%s/memory/%s", fixtures, name);
    rs_memory memory;
    rs_error err = {RS_OK, ""};
    rs_status status = rs_probe_memory(root, &memory, &err);
    CHECK(status == code, "%s: status %s (%s)", name, rs_status_name(status), err.message);
    if (status != RS_OK) {
        CHECK(strstr(err.message, text) != NULL, "%s: message '%s' lacks '%s'", name, err.message, text);
        return;
    }
    CHECK(memory.available == available, "%s: available %llu, expected %llu", name,
          (unsigned long long)memory.available, (unsigned long long)available);
    CHECK(strcmp(memory.source, text) == 0, "%s: source %s, expected %s", name, memory.source, text);
}

static void expect_memory(const char *name, uint64_t available, const char *source) {
    probe_fixture(name, RS_OK, available, source);
}

static void expect_memory_error(const char *name, rs_status code, const char *words) {
    probe_fixture(name, code, 0, words);
}

static void test_memory(void) {
    expect_memory("meminfo-only", 2048000ull * 1024, "meminfo");
    expect_memory("cgroup-v2-limit", 384 * MIB, "cgroup v2");
    expect_memory("cgroup-v2-max", 1024000ull * 1024, "meminfo");
    expect_memory("cgroup-v1-limit", 192 * MIB, "cgroup v1");
    expect_memory("cgroup-v1-unlimited", 3072000ull * 1024, "meminfo");
    expect_memory("cgroup-v1-namespaced", 96 * MIB, "cgroup v1");
    expect_memory("cgroup-looser-than-meminfo", 512000ull * 1024, "meminfo");
    expect_memory("cgroup-over-limit", 0, "cgroup v2");
    expect_memory("cgroup-v2-nested", 100 * MIB, "cgroup v2");   /* the pod's limit, two levels up */
    expect_memory("cgroup-v2-high", 192 * MIB, "cgroup v2");     /* memory.high below memory.max */
    expect_memory("cgroup-v1-hierarchical", 96 * MIB, "cgroup v1");
    expect_memory_error("cgroup-v2-malformed", RS_ERR_FORMAT, "app/memory.max: expected a byte count");
    expect_memory_error("cgroup-v1-malformed", RS_ERR_FORMAT, "memory.limit_in_bytes: expected a byte count");
    expect_memory_error("nothing", RS_ERR_IO, "MemAvailable");
}

/* ---- bundles written here ---- */
static char workdir[] = "/tmp/restnet-shim-test-XXXXXX";

static void write_file(const char *path, const void *data, size_t size) {
    FILE *file = fopen(path, "wb");
    if (file == NULL || fwrite(data, 1, size, file) != size) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(file);
}

/* Writes `dir`/bundle.index: the version line, the identity of `body`, then `body`. */
static void write_index(const char *dir, const char *body) {
    char hex[65], path[4200];
    rs_sha256_hex(body, strlen(body), hex);
    size_t size = strlen(body) + 128;
    char *text = malloc(size);
    int length = snprintf(text, size, "restnet-bundle-index %d\nidentity %s\n%s", RS_INDEX_VERSION, hex, body);
    snprintf(path, sizeof path, "%s/bundle.index", dir);
    write_file(path, text, (size_t)length);
    free(text);
}

typedef struct {
    const char *id;
    const char *file;
    double accuracy;
    uint64_t memory_mib;
} spec;

/* A bundle directory `name` with one artifact file per spec (content derived from the id) and an index that
 * also lists one ExecuTorch artifact (never present on disk). */
static void make_bundle(const char *name, const spec *specs, size_t count, char *dir, size_t dir_size) {
    snprintf(dir, dir_size, "%s/%s", workdir, name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        exit(2);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/litert", dir);
    mkdir(path, 0755);
    char index[16384];
    int used = snprintf(index, sizeof index,
                        "input shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0.5,0.5 resize=bicubic\n"
                        "label T-shirt/top\nlabel Ankle boot\n");
    for (size_t i = 0; i < count; i++) {
        char content[256];
        int length = snprintf(content, sizeof content, "artifact bytes of %s", specs[i].id);
        char hex[65];
        rs_sha256_hex(content, (size_t)length, hex);
        snprintf(path, sizeof path, "%s/litert/%s.tflite", dir, specs[i].id);
        write_file(path, content, (size_t)length);
        const char *file = specs[i].file;
        char default_file[128];
        if (file == NULL) {
            snprintf(default_file, sizeof default_file, "litert/%s.tflite", specs[i].id);
            file = default_file;
        }
        used += snprintf(index + used, sizeof index - (size_t)used,
                         "artifact id=%s backend=litert file=%s bytes=%d sha256=%s memory=%llu accuracy=%.2f "
                         "params=1000 entry=serving_default in=int8:0.0187:-14 out=float32:1:0 layout=NHWC future=ignored\n",
                         specs[i].id, file, length, hex, (unsigned long long)(specs[i].memory_mib * MIB),
                         specs[i].accuracy);
    }
    used += snprintf(index + used, sizeof index - (size_t)used,
                     "artifact id=other backend=executorch file=executorch/other.pte bytes=1 sha256=%064d "
                     "memory=1 accuracy=99 params=1 entry=forward in=float32:1:0 out=float32:1:0 layout=NCHW\n", 0);
    write_index(dir, index);
}

static const spec LADDER[] = {
    {"parent-small", NULL, 80.0, 10}, {"stitch-a", NULL, 81.0, 12}, {"stitch-b", NULL, 82.0, 14},
    {"parent-large", NULL, 83.0, 16},
};

static const char *choose(rs_bundle *bundle, uint64_t available_mib, size_t current, rs_selection *selection,
                          rs_status *status) {
    rs_policy policy = {"litert", 2 * MIB, 0.25, NULL, 0};
    rs_error err = {RS_OK, ""};
    *status = rs_select(bundle, &policy, available_mib * MIB, current, selection, &err);
    return selection->chosen == SIZE_MAX ? "(none)" : rs_bundle_artifact(bundle, selection->chosen)->id;
}

static size_t find(const rs_bundle *bundle, const char *id) {
    for (size_t i = 0; i < rs_bundle_artifact_count(bundle); i++) {
        if (strcmp(rs_bundle_artifact(bundle, i)->id, id) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

static void test_selection(void) {
    char dir[4096];
    make_bundle("good", LADDER, 4, dir, sizeof dir);
    rs_bundle *bundle;
    rs_error err = {RS_OK, ""};
    CHECK(rs_bundle_open(dir, &bundle, &err) == RS_OK, "%s", err.message);
    if (bundle == NULL) return;
    CHECK(rs_bundle_artifact_count(bundle) == 5, "%zu artifacts", rs_bundle_artifact_count(bundle));
    CHECK(rs_bundle_label_count(bundle) == 2 && strcmp(rs_bundle_label(bundle, 1), "Ankle boot") == 0, "labels");
    CHECK(rs_bundle_input(bundle)->shape[2] == 32, "input shape");
    CHECK(rs_bundle_input(bundle)->resize == RS_RESIZE_BICUBIC, "input resize");
    const rs_artifact *a = rs_bundle_artifact(bundle, 0);
    CHECK(strcmp(a->input_quantization.dtype, "int8") == 0 && a->input_quantization.zero_point == -14, "in");

    rs_selection selection;
    rs_status status;
    /* needs: 12, 14, 16, 18 MiB with 2 MiB headroom */
    CHECK(strcmp(choose(bundle, 100, SIZE_MAX, &selection, &status), "parent-large") == 0, "plenty");
    CHECK(strcmp(choose(bundle, 17, SIZE_MAX, &selection, &status), "stitch-b") == 0, "17 MiB");
    CHECK(strcmp(choose(bundle, 13, SIZE_MAX, &selection, &status), "parent-small") == 0, "13 MiB");
    CHECK(selection.verdicts[find(bundle, "stitch-a")].kind == RS_VERDICT_TOO_LARGE, "stitch-a too large");
    CHECK(selection.verdicts[find(bundle, "other")].kind == RS_VERDICT_OTHER_BACKEND, "other backend");
    CHECK(strcmp(choose(bundle, 11, SIZE_MAX, &selection, &status), "(none)") == 0 && status == RS_ERR_NOTHING_FITS,
          "nothing fits");

    /* Hysteresis: with stitch-a in use, moving up to stitch-b (14 MiB) needs 14 + 2 + 3.5 MiB. */
    size_t in_use = find(bundle, "stitch-a");
    CHECK(strcmp(choose(bundle, 17, in_use, &selection, &status), "stitch-a") == 0, "hysteresis holds");
    CHECK(strcmp(choose(bundle, 20, in_use, &selection, &status), "stitch-b") == 0, "hysteresis passed");
    CHECK(strcmp(choose(bundle, 13, in_use, &selection, &status), "parent-small") == 0, "moves down at once");

    /* Override: chosen whatever the memory; an unknown id is an error. */
    rs_policy policy = {"litert", 0, 0.0, "parent-large", 0};
    CHECK(rs_select(bundle, &policy, 1, SIZE_MAX, &selection, &err) == RS_OK &&
              selection.chosen == find(bundle, "parent-large"), "override: %s", err.message);
    policy.override_id = "missing";
    CHECK(rs_select(bundle, &policy, 1, SIZE_MAX, &selection, &err) == RS_ERR_ARGUMENT, "unknown override");
    CHECK(strstr(err.message, "missing") != NULL, "%s", err.message);
    rs_bundle_close(bundle);
}

/* ---- bad bundles ---- */
/* A bad bundle is refused promptly (no blocking read, no reading a declared size that is not there). The bound is
 * loose because the suite also runs under sanitizers on a shared machine; what it catches takes far longer. */
static const double PROMPT_SECONDS = 5.0;

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void open_expecting(const char *name, rs_status code, const char *words) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", workdir, name);
    rs_bundle *bundle = NULL;
    rs_error err = {RS_OK, ""};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    rs_status status = rs_bundle_open(dir, &bundle, &err);
    double took = seconds_since(&start);
    CHECK(took < PROMPT_SECONDS, "%s: took %.2f s", name, took);
    CHECK(status == code, "%s: status %s (%s)", name, rs_status_name(status), err.message);
    CHECK(code != RS_OK || bundle != NULL, "%s: no bundle", name);
    CHECK(code == RS_OK || bundle == NULL, "%s: a bundle despite the error", name);
    CHECK(strstr(err.message, words) != NULL, "%s: message '%s' lacks '%s'", name, err.message, words);
    rs_bundle_close(bundle);
}

static void make_dir(const char *name, char *dir, size_t size) {
    snprintf(dir, size, "%s/%s", workdir, name);
    mkdir(dir, 0755);
}

/* `index_text` written as is (NULL: no index). */
static void expect_raw_error(const char *name, const char *index_text, rs_status code, const char *words) {
    char dir[4096], path[4200];
    make_dir(name, dir, sizeof dir);
    if (index_text != NULL) {
        snprintf(path, sizeof path, "%s/bundle.index", dir);
        write_file(path, index_text, strlen(index_text));
    }
    open_expecting(name, code, words);
}

/* `body` after a version line and its correct identity. */
static void expect_index_error(const char *name, const char *body, rs_status code, const char *words) {
    char dir[4096];
    make_dir(name, dir, sizeof dir);
    write_index(dir, body);
    open_expecting(name, code, words);
}

#define INPUT "input shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0.5,0.5 resize=bilinear\n"
#define SHA "sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ARTIFACT(ID, EXTRA) "artifact id=" ID " backend=litert file=litert/x.tflite bytes=0 " SHA " memory=1 " \
    "accuracy=50 params=1 entry=serving_default in=float32:1:0 out=float32:1:0 layout=NCHW" EXTRA "\n"

/* An input line as versions 2 and 3 wrote it, and as a version 4 reader must not trust (`resize` came with 4). */
#define OLD_INPUT "input shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0.5,0.5 resize=bicubic\n"

/* Another entry point of ARTIFACT's file, with `program=` given (an ARTIFACT line leaves it out: 0). */
#define SIBLING(PROGRAM) "artifact id=y backend=litert file=litert/x.tflite bytes=0 " SHA " memory=1 program=" \
    PROGRAM " accuracy=50 params=1 entry=other in=float32:1:0 out=float32:1:0 layout=NCHW\n"

/* The index's ship order (`rank`) comes before accuracy: the rung the compiler ranks higher is chosen wherever
 * it fits, whatever the accuracy figures say, and a rank-0 rung (never shipped on memory alone) only when no
 * ranked one fits. Without the key every rank is 0 and accuracy decides (test_selection). */
static void test_ship_order(void) {
    static const char body[] =
        INPUT
        "artifact id=small backend=litert file=litert/s.tflite bytes=0 " SHA " memory=10485760 accuracy=80 "
        "params=1 entry=serving_default in=float32:1:0 out=float32:1:0 layout=NCHW rank=1\n"
        "artifact id=lucky backend=litert file=litert/l.tflite bytes=0 " SHA " memory=12582912 accuracy=84 "
        "params=1 entry=serving_default in=float32:1:0 out=float32:1:0 layout=NCHW rank=0\n"
        "artifact id=large backend=litert file=litert/b.tflite bytes=0 " SHA " memory=14680064 accuracy=82 "
        "params=1 entry=serving_default in=float32:1:0 out=float32:1:0 layout=NCHW rank=2\n";
    char dir[4096], path[4200];
    make_dir("ship-order", dir, sizeof dir);
    write_index(dir, body);
    snprintf(path, sizeof path, "%s/litert", dir);
    mkdir(path, 0755);
    static const char *const files[] = {"litert/s.tflite", "litert/l.tflite", "litert/b.tflite"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        write_file(path, "", 0);
    }
    rs_bundle *bundle;
    rs_error err = {RS_OK, ""};
    CHECK(rs_bundle_open(dir, &bundle, &err) == RS_OK, "%s", err.message);
    if (bundle == NULL) return;
    CHECK(rs_bundle_artifact(bundle, find(bundle, "large"))->rank == 2, "rank parsed");
    rs_selection selection;
    rs_status status;
    /* needs with 2 MiB headroom: small 12, lucky 14, large 16 MiB */
    CHECK(strcmp(choose(bundle, 100, SIZE_MAX, &selection, &status), "large") == 0, "plenty: the top rank");
    CHECK(strstr(selection.verdicts[find(bundle, "lucky")].reason, "ship order") != NULL, "%s",
          selection.verdicts[find(bundle, "lucky")].reason);
    CHECK(strcmp(choose(bundle, 15, SIZE_MAX, &selection, &status), "small") == 0,
          "15 MiB: rank 1 over a more accurate rank 0");
    CHECK(selection.verdicts[find(bundle, "lucky")].kind == RS_VERDICT_LESS_ACCURATE, "lucky passed over");
    rs_bundle_close(bundle);
}

/* The `runtime` record gives the target's threads; without one, 0. A key it does not know is skipped, as is a
 * record kind it does not know (both a later minor version's). */
static void test_runtime_threads(void) {
    const char *bodies[] = {INPUT ARTIFACT("x", ""), INPUT "runtime future=1 threads=4\nlater kind\n" ARTIFACT("x", "")};
    for (int i = 0; i < 2; i++) {
        char dir[4096];
        make_dir(i ? "runtime-threads" : "runtime-none", dir, sizeof dir);
        write_index(dir, bodies[i]);
        rs_bundle *bundle = NULL;
        rs_error err = {RS_OK, ""};
        CHECK(rs_bundle_open(dir, &bundle, &err) == RS_OK, "%s", err.message);
        CHECK(rs_bundle_threads(bundle) == (i ? 4 : 0), "threads %d", rs_bundle_threads(bundle));
        rs_bundle_close(bundle);
    }
    CHECK(rs_usable_cpus() >= 1, "usable CPUs %d", rs_usable_cpus());
}

/* A version 2 index (before `layout`) still opens: its artifacts take NCHW; a version 3 line says NHWC. Before
 * version 4 an input's `resize` is bilinear whatever the line says (an old compiler never wrote it). */
static void test_layouts(void) {
    char dir[4096], path[4200], hex[65], text[1024];
    make_dir("layouts", dir, sizeof dir);
    for (int version = 2; version <= 3; version++) {
        const char *body = version == 2 ? OLD_INPUT "artifact id=v2 backend=litert file=litert/x.tflite bytes=0 " SHA
                                                " memory=1 accuracy=50 params=1 entry=serving_default in=float32:1:0 "
                                                "out=float32:1:0\n"
                                          : OLD_INPUT "artifact id=v3 backend=litert file=litert/x.tflite bytes=0 " SHA
                                                " memory=1 accuracy=50 params=1 entry=serving_default in=float32:1:0 "
                                                "out=float32:1:0 layout=NHWC\n";
        rs_sha256_hex(body, strlen(body), hex);
        int length = snprintf(text, sizeof text, "restnet-bundle-index %d\nidentity %s\n%s", version, hex, body);
        snprintf(path, sizeof path, "%s/bundle.index", dir);
        write_file(path, text, (size_t)length);
        rs_bundle *bundle = NULL;
        rs_error err = {RS_OK, ""};
        CHECK(rs_bundle_open(dir, &bundle, &err) == RS_OK, "version %d: %s", version, err.message);
        if (bundle != NULL) {
            const char *layout = rs_bundle_artifact(bundle, 0)->input_layout;
            CHECK(strcmp(layout, version == 2 ? "NCHW" : "NHWC") == 0, "version %d: layout %s", version, layout);
            CHECK(rs_bundle_input(bundle)->resize == RS_RESIZE_BILINEAR, "version %d: resize", version);
        }
        rs_bundle_close(bundle);
    }
}

static void test_bad_indexes(void) {
    expect_raw_error("no-index", NULL, RS_ERR_IO, "bundle.index: cannot open");
    expect_raw_error("json", "{\"schema_version\": 1}\n", RS_ERR_FORMAT, "not a restnet bundle index");
    expect_raw_error("empty", "", RS_ERR_FORMAT, "empty");
    expect_raw_error("future", "restnet-bundle-index 5\n", RS_ERR_FORMAT, "this shim reads versions 2 to 4");
    expect_raw_error("old", "restnet-bundle-index 1\n", RS_ERR_FORMAT, "this shim reads versions 2 to 4");
    expect_index_error("no-resize", "input shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0.5,0.5\n" ARTIFACT("x", ""),
                       RS_ERR_FORMAT, "bundle.index:3: input needs shape, mean, std and resize");
    expect_index_error("odd-resize", "input shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0.5,0.5 resize=nearest\n",
                       RS_ERR_FORMAT, "bundle.index:3: invalid input resize");
    expect_index_error("repeated-resize", "input resize=bicubic resize=bicubic\n", RS_ERR_FORMAT,
                       "bundle.index:3: resize given twice");
    expect_index_error("no-layout", INPUT "artifact id=x backend=litert file=litert/x.tflite bytes=0 " SHA " memory=1 "
                       "accuracy=50 params=1 entry=serving_default in=float32:1:0 out=float32:1:0\n", RS_ERR_FORMAT,
                       "bundle.index:4: artifact without layout");
    expect_index_error("repeated-layout", INPUT ARTIFACT("x", " layout=NHWC"), RS_ERR_FORMAT, "bundle.index:4: layout given twice");
    expect_index_error("odd-layout", INPUT "artifact id=x layout=nhwc\n", RS_ERR_FORMAT, "bundle.index:4: invalid layout");
    expect_raw_error("no-identity", "restnet-bundle-index 4\n" INPUT, RS_ERR_FORMAT, "bundle.index:2: expected 'identity'");
    expect_raw_error("edited", "restnet-bundle-index 4\nidentity " "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                     INPUT ARTIFACT("x", ""), RS_ERR_FORMAT, "does not match its content");
    expect_index_error("truncated", INPUT "artifact id=x backend=litert file=x.tflite bytes=1", RS_ERR_FORMAT,
                       "bundle.index:4: artifact without sha256");
    expect_index_error("no-final-newline", INPUT "label a\n" ARTIFACT("x", "") "label b", RS_OK, "");
    expect_index_error("bad-number", "artifact id=x bytes=-5\n", RS_ERR_FORMAT, "bundle.index:3: invalid bytes");
    expect_index_error("no-artifacts", INPUT, RS_ERR_FORMAT, "an input line and an artifact");
    expect_index_error("duplicate-id", INPUT ARTIFACT("x", "") ARTIFACT("x", ""), RS_ERR_FORMAT,
                       "bundle.index:5: artifact x of litert listed twice");
    expect_index_error("shared-file-same-entry", INPUT ARTIFACT("x", "") ARTIFACT("y", ""), RS_ERR_FORMAT,
                       "bundle.index:5: artifact y shares litert/x.tflite with x");
    expect_index_error("shared-file-other-entry", INPUT ARTIFACT("x", "") SIBLING("0"), RS_OK, "");
    expect_index_error("shared-file-program-differs", INPUT ARTIFACT("x", "") SIBLING("1"), RS_ERR_FORMAT,
                       "bundle.index:5: artifact y shares litert/x.tflite with x: a shared file needs the same "
                       "backend, bytes, sha256, program memory and packing");
    expect_index_error("shared-file-packing-differs", INPUT ARTIFACT("x", " packing=shared") SIBLING("0"),
                       RS_ERR_FORMAT, "bundle.index:5: artifact y shares litert/x.tflite with x");
    expect_index_error("shared-file-packing-agrees", INPUT ARTIFACT("x", " packing=own") SIBLING("0"), RS_OK, "");
    expect_index_error("odd-packing", INPUT "artifact id=x packing=yes\n", RS_ERR_FORMAT,
                       "bundle.index:4: invalid packing");
    expect_index_error("odd-rank", INPUT ARTIFACT("x", " rank=first"), RS_ERR_FORMAT, "bundle.index:4: invalid rank");
    expect_index_error("negative-rank", INPUT ARTIFACT("x", " rank=-1"), RS_ERR_FORMAT, "bundle.index:4: invalid rank");
    expect_index_error("rank-beyond-artifacts", INPUT ARTIFACT("x", " rank=257"), RS_ERR_FORMAT,
                       "bundle.index:4: invalid rank");
    expect_index_error("repeated-key", INPUT ARTIFACT("x", " memory=99"), RS_ERR_FORMAT, "bundle.index:4: memory given twice");
    expect_index_error("scale-inf", INPUT "artifact id=x in=int8:inf:0\n", RS_ERR_FORMAT, "bundle.index:4: invalid in");
    expect_index_error("scale-nan", INPUT "artifact id=x out=int8:nan:0\n", RS_ERR_FORMAT, "bundle.index:4: invalid out");
    expect_index_error("hex-float", INPUT "artifact id=x accuracy=0x1p4\n", RS_ERR_FORMAT, "bundle.index:4: invalid accuracy");
    expect_index_error("std-zero", "input shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0,0.5\n", RS_ERR_FORMAT,
                       "bundle.index:3: invalid input std");
    expect_index_error("mean-inf", "input shape=1,3,32,32 mean=inf,0.5,0.5 std=0.5,0.5,0.5\n", RS_ERR_FORMAT,
                       "bundle.index:3: invalid input mean");
    expect_index_error("mean-huge", "input shape=1,3,32,32 mean=1e39,0.5,0.5 std=0.5,0.5,0.5\n", RS_ERR_FORMAT,
                       "bundle.index:3: invalid input mean");
    expect_index_error("shape-overflow", "input shape=1,3,65536,65536 mean=0.5,0.5,0.5 std=0.5,0.5,0.5\n",
                       RS_ERR_FORMAT, "bundle.index:3: invalid input shape");
    expect_index_error("two-inputs", INPUT INPUT, RS_ERR_FORMAT, "bundle.index:4: a second input line");
    expect_index_error("two-runtimes", INPUT "runtime threads=2\nruntime threads=2\n", RS_ERR_FORMAT,
                       "bundle.index:5: a second runtime line");
    expect_index_error("runtime-threads-twice", INPUT "runtime threads=2 threads=3\n", RS_ERR_FORMAT,
                       "bundle.index:4: runtime threads must appear once, 1 to 256");
    expect_index_error("runtime-no-threads", INPUT "runtime cores=2\n", RS_ERR_FORMAT,
                       "bundle.index:4: runtime needs threads=N");
    expect_index_error("runtime-zero-threads", INPUT "runtime threads=0\n", RS_ERR_FORMAT,
                       "bundle.index:4: runtime threads must appear once");
    expect_index_error("runtime-too-many-threads", INPUT "runtime threads=257\n", RS_ERR_FORMAT,
                       "bundle.index:4: runtime threads must appear once");
    expect_index_error("runtime-odd-threads", INPUT "runtime threads=+2\n", RS_ERR_FORMAT,
                       "bundle.index:4: runtime threads must appear once");
    expect_index_error("escape-in-id", INPUT ARTIFACT("x\033[2J", ""), RS_ERR_FORMAT, "bundle.index:4: invalid id");
    expect_index_error("control-in-label", INPUT "label bad\a bell\n", RS_ERR_FORMAT,
                       "bundle.index:4: label with a control character");
    expect_index_error("slash-in-id", INPUT ARTIFACT("../x", ""), RS_ERR_FORMAT, "bundle.index:4: invalid id");
    char *long_line = malloc(RS_MAX_LINE + 64);
    snprintf(long_line, RS_MAX_LINE + 64, "label %0*d\n", RS_MAX_LINE, 0);
    expect_index_error("long-line", long_line, RS_ERR_FORMAT, "longer than");
    free(long_line);

    /* Special files in place of the index: refused at once, never read (a FIFO would block forever). */
    char dir[4096], path[4200];
    make_dir("index-fifo", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bundle.index", dir);
    CHECK(mkfifo(path, 0644) == 0, "mkfifo %s", path);
    open_expecting("index-fifo", RS_ERR_IO, "bundle.index: not a regular file");
    make_dir("index-directory", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bundle.index", dir);
    mkdir(path, 0755);
    open_expecting("index-directory", RS_ERR_IO, "bundle.index: not a regular file");
    make_dir("index-symlink", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bundle.index", dir);
    CHECK(symlink("/etc/hostname", path) == 0, "symlink");
    open_expecting("index-symlink", RS_ERR_UNSAFE_PATH, "bundle.index: cannot open: a symlink");
    if (geteuid() == 0) {
        make_dir("index-device", dir, sizeof dir);
        snprintf(path, sizeof path, "%s/bundle.index", dir);
        CHECK(mknod(path, S_IFCHR | 0644, makedev(1, 3)) == 0, "mknod %s", path); /* like /dev/null */
        open_expecting("index-device", RS_ERR_IO, "bundle.index: not a regular file");
    } else {
        printf("skipped: device nodes need root\n");
    }
}

/* A good ladder plus one bad variant (the most accurate, so selection meets it first and must skip it). */
static void expect_bad_variant(const char *name, const char *file, rs_status code, const char *words,
                               void (*damage)(const char *dir)) {
    spec specs[5];
    memcpy(specs, LADDER, sizeof LADDER);
    specs[4] = (spec){"bad", file, 99.0, 10};
    char dir[4096];
    make_bundle(name, specs, 5, dir, sizeof dir);
    if (damage != NULL) {
        damage(dir);
    }
    rs_bundle *bundle;
    rs_error err = {RS_OK, ""};
    CHECK(rs_bundle_open(dir, &bundle, &err) == RS_OK, "%s: %s", name, err.message);
    if (bundle == NULL) return;
    size_t bad = find(bundle, "bad");
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    rs_status status = rs_bundle_validate(bundle, bad, &err);
    double took = seconds_since(&start);
    CHECK(took < PROMPT_SECONDS, "%s: took %.2f s", name, took);
    CHECK(status == code, "%s: status %s (%s)", name, rs_status_name(status), err.message);
    CHECK(strstr(err.message, words) != NULL, "%s: message '%s' lacks '%s'", name, err.message, words);
    rs_selection selection;
    const char *chosen = choose(bundle, 100, SIZE_MAX, &selection, &status);
    CHECK(strcmp(chosen, "parent-large") == 0, "%s: fell back to %s", name, chosen);
    CHECK(selection.verdicts[bad].kind == RS_VERDICT_INVALID, "%s: verdict", name);
    rs_bundle_close(bundle);
}

static void flip_byte(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/litert/bad.tflite", dir);
    FILE *file = fopen(path, "r+b");
    int c = fgetc(file);
    fseek(file, 0, SEEK_SET);
    fputc(c ^ 1, file);
    fclose(file);
}

static void grow_declared_size(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/bundle.index", dir);
    char *text = NULL;
    size_t length = 0;
    if (rs_read_file_at(AT_FDCWD, path, 0, RS_MAX_INDEX_BYTES, &text, &length, NULL, NULL) != RS_OK) exit(2);
    const char *body = strchr(strchr(text, '\n') + 1, '\n') + 1;
    char *line = strstr(text, "id=bad ");
    char *bytes = strstr(line, "bytes=");
    char *end = strchr(bytes, ' ');
    char rewritten[32768];
    snprintf(rewritten, sizeof rewritten, "%.*sbytes=18446744073709551615%s", (int)(bytes - body), body, end);
    write_index(dir, rewritten);
    free(text);
}

/* The bad variant's file replaced by a special file or a directory. */
static void replace_with(const char *dir, mode_t kind) {
    char path[4200];
    snprintf(path, sizeof path, "%s/litert/bad.tflite", dir);
    unlink(path);
    int made = kind == S_IFIFO ? mkfifo(path, 0644) : kind == S_IFDIR ? mkdir(path, 0755)
                                                                     : mknod(path, kind | 0644, makedev(1, 3));
    if (made != 0) exit(2);
}

static void fifo(const char *dir) { replace_with(dir, S_IFIFO); }
static void directory(const char *dir) { replace_with(dir, S_IFDIR); }
static void device(const char *dir) { replace_with(dir, S_IFCHR); }

/* litert/ itself a symlink to a directory holding the same files: refused all the same. */
static void symlinked_directory(const char *dir) {
    char from[4200], to[4200], command[9000];
    snprintf(from, sizeof from, "%s/litert", dir);
    snprintf(to, sizeof to, "%s-real", dir);
    snprintf(command, sizeof command, "mv '%s' '%s'", from, to);
    if (system(command) != 0 || symlink(to, from) != 0) exit(2);
}

static void symlink_outside(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/litert/escape.tflite", dir);
    if (symlink("/etc/hostname", path) != 0) exit(2);
}

static void remove_file(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/litert/bad.tflite", dir);
    unlink(path);
}

static void test_bad_variants(void) {
    expect_bad_variant("dotdot", "litert/../../bad.tflite", RS_ERR_UNSAFE_PATH, "contains '.' or '..'", NULL);
    expect_bad_variant("absolute", "/etc/hostname", RS_ERR_UNSAFE_PATH, "is absolute", NULL);
    expect_bad_variant("symlink", "litert/escape.tflite", RS_ERR_UNSAFE_PATH, "crosses a symlink", symlink_outside);
    expect_bad_variant("fifo", NULL, RS_ERR_IO, "is not a regular file", fifo);
    expect_bad_variant("directory", NULL, RS_ERR_IO, "is not a regular file", directory);
    if (geteuid() == 0) {
        expect_bad_variant("device", NULL, RS_ERR_IO, "is not a regular file", device);
    }
    expect_bad_variant("missing", NULL, RS_ERR_IO, "No such file", remove_file);
    expect_bad_variant("flipped", NULL, RS_ERR_DIGEST, "sha256", flip_byte);
    expect_bad_variant("huge", NULL, RS_ERR_SIZE, "the index says 18446744073709551615", grow_declared_size);
}

static void test_two_bundles(void) {
    char first[4096], second[4096];
    make_bundle("first", LADDER, 2, first, sizeof first);
    make_bundle("second", LADDER + 2, 2, second, sizeof second);
    rs_bundle *a = NULL, *b = NULL;
    rs_error err = {RS_OK, ""};
    CHECK(rs_bundle_open(first, &a, &err) == RS_OK && rs_bundle_open(second, &b, &err) == RS_OK, "%s", err.message);
    if (a == NULL || b == NULL) {
        rs_bundle_close(a);
        rs_bundle_close(b);
        return;
    }
    rs_selection selection;
    rs_status status;
    CHECK(strcmp(choose(a, 100, SIZE_MAX, &selection, &status), "stitch-a") == 0, "first bundle");
    CHECK(strcmp(choose(b, 100, SIZE_MAX, &selection, &status), "parent-large") == 0, "second bundle");
    rs_bundle_close(a);
    rs_bundle_close(b);
}

static void rename_or_exit(const char *name, const char *to) {
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s", workdir, name);
    snprintf(b, sizeof b, "%s/%s", workdir, to);
    if (rename(a, b) != 0) exit(2);
}

/* A bundle swapped on disk (as `restnetc build` swaps it) is detected, and the opened one never reads the
 * new directory's files: they are resolved from the directory it opened, or not at all. */
static void test_replaced_bundle(void) {
    char old_dir[4096], new_dir[4096], path[4200];
    make_bundle("swap", LADDER, 4, old_dir, sizeof old_dir);
    rs_bundle *bundle = NULL;
    rs_error err = {RS_OK, ""};
    CHECK(rs_bundle_open(old_dir, &bundle, &err) == RS_OK, "%s", err.message);
    if (bundle == NULL) return;
    CHECK(rs_bundle_check_current(bundle, &err) == RS_OK, "unchanged: %s", err.message);
    make_bundle("swap-next", LADDER + 1, 3, new_dir, sizeof new_dir);
    snprintf(path, sizeof path, "%s/litert/stitch-b.tflite", new_dir);
    write_file(path, "another model", 13);
    rename_or_exit("swap", "swap-old");
    rename_or_exit("swap-next", "swap");
    CHECK(rs_bundle_check_current(bundle, &err) == RS_ERR_STALE, "swapped: %s", err.message);
    CHECK(strstr(err.message, "now holds bundle") != NULL, "%s", err.message);
    size_t b = find(bundle, "stitch-b");
    CHECK(rs_bundle_validate(bundle, b, &err) == RS_OK, "old files still served: %s", err.message);
    snprintf(path, sizeof path, "rm -rf '%s/swap-old'", workdir);
    if (system(path) != 0) exit(2);
    rs_status status = rs_bundle_validate(bundle, b, &err);
    CHECK(status == RS_ERR_IO && strstr(err.message, "No such file") != NULL, "old files gone: %s (%s)",
          rs_status_name(status), err.message);
    rs_bundle_close(bundle);

    make_bundle("linked-dir", LADDER, 1, old_dir, sizeof old_dir);
    symlinked_directory(old_dir);
    CHECK(rs_bundle_open(old_dir, &bundle, &err) == RS_OK, "%s", err.message);
    if (bundle == NULL) return;
    status = rs_bundle_validate(bundle, 0, &err);
    CHECK(status == RS_ERR_UNSAFE_PATH && strstr(err.message, "crosses a symlink") != NULL, "linked dir: %s (%s)",
          rs_status_name(status), err.message);
    rs_bundle_close(bundle);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_core FIXTURES_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    if (mkdtemp(workdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_sha256();
    test_memory();
    test_selection();
    test_ship_order();
    test_runtime_threads();
    test_bad_indexes();
    test_layouts();
    test_bad_variants();
    test_two_bundles();
    test_replaced_bundle();
    char command[4200];
    snprintf(command, sizeof command, "rm -rf '%s'", workdir);
    if (system(command) != 0) {
        fprintf(stderr, "could not remove %s\n", workdir);
    }
    printf("%s (%d failures)\n", failures ? "FAILED" : "all core tests passed", failures);
    return failures ? 1 : 0;
}
