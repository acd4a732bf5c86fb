/* Tests of the shim's core against fixture memory trees and bundles written by the test itself. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
static void expect_memory(const char *name, uint64_t available, const char *source) {
    char root[4096];
    snprintf(root, sizeof root, "%s/memory/%s", fixtures, name);
    rs_memory memory;
    rs_error err = {RS_OK, ""};
    rs_status status = rs_probe_memory(root, &memory, &err);
    CHECK(status == RS_OK, "%s: %s", name, err.message);
    CHECK(memory.available == available, "%s: available %llu, expected %llu", name,
          (unsigned long long)memory.available, (unsigned long long)available);
    CHECK(strcmp(memory.source, source) == 0, "%s: source %s, expected %s", name, memory.source, source);
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
    char root[4096];
    snprintf(root, sizeof root, "%s/memory/nothing", fixtures);
    rs_memory memory;
    rs_error err = {RS_OK, ""};
    CHECK(rs_probe_memory(root, &memory, &err) == RS_ERR_IO, "no figures: %s", err.message);
    CHECK(strstr(err.message, "MemAvailable") != NULL, "%s", err.message);
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
                        "restnet-bundle-index 1\ninput shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0.5,0.5\n"
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
                         "params=1000 entry=serving_default in=int8:0.0187:-14 out=float32:1:0 future=ignored\n",
                         specs[i].id, file, length, hex, (unsigned long long)(specs[i].memory_mib * MIB),
                         specs[i].accuracy);
    }
    used += snprintf(index + used, sizeof index - (size_t)used,
                     "artifact id=other backend=executorch file=executorch/other.pte bytes=1 sha256=%064d "
                     "memory=1 accuracy=99 params=1 entry=forward in=float32:1:0 out=float32:1:0\n", 0);
    snprintf(path, sizeof path, "%s/bundle.index", dir);
    write_file(path, index, (size_t)used);
}

static const spec LADDER[] = {
    {"parent-small", NULL, 80.0, 10}, {"stitch-a", NULL, 81.0, 12}, {"stitch-b", NULL, 82.0, 14},
    {"parent-large", NULL, 83.0, 16},
};

static const char *choose(rs_bundle *bundle, uint64_t available_mib, size_t current, rs_selection *selection,
                          rs_status *status) {
    rs_policy policy = {"litert", 2 * MIB, 0.25, NULL};
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
    rs_policy policy = {"litert", 0, 0.0, "parent-large"};
    CHECK(rs_select(bundle, &policy, 1, SIZE_MAX, &selection, &err) == RS_OK &&
              selection.chosen == find(bundle, "parent-large"), "override: %s", err.message);
    policy.override_id = "missing";
    CHECK(rs_select(bundle, &policy, 1, SIZE_MAX, &selection, &err) == RS_ERR_ARGUMENT, "unknown override");
    CHECK(strstr(err.message, "missing") != NULL, "%s", err.message);
    rs_bundle_close(bundle);
}

/* ---- bad bundles ---- */
static void expect_open_error(const char *name, const char *index_text, rs_status code, const char *words) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/%s", workdir, name);
    mkdir(dir, 0755);
    if (index_text != NULL) {
        snprintf(path, sizeof path, "%s/bundle.index", dir);
        write_file(path, index_text, strlen(index_text));
    }
    rs_bundle *bundle = NULL;
    rs_error err = {RS_OK, ""};
    rs_status status = rs_bundle_open(dir, &bundle, &err);
    CHECK(status == code && bundle == NULL, "%s: status %s (%s)", name, rs_status_name(status), err.message);
    CHECK(strstr(err.message, words) != NULL, "%s: message '%s' lacks '%s'", name, err.message, words);
}

static void test_bad_indexes(void) {
    expect_open_error("no-index", NULL, RS_ERR_IO, "bundle.index: cannot open");
    expect_open_error("json", "{\"schema_version\": 1}\n", RS_ERR_FORMAT, "not a restnet bundle index");
    expect_open_error("empty", "", RS_ERR_FORMAT, "empty");
    expect_open_error("truncated", "restnet-bundle-index 1\ninput shape=1,3,32,32 mean=0.5,0.5,0.5 std=0.5,0.5,0.5\n"
                                   "artifact id=x backend=litert file=x.tflite bytes=1",
                      RS_ERR_FORMAT, "truncated");
    expect_open_error("future", "restnet-bundle-index 2\n", RS_ERR_FORMAT, "this shim reads version 1");
    expect_open_error("missing-field", "restnet-bundle-index 1\ninput shape=1,3,32,32 mean=0.5,0.5,0.5 "
                                       "std=0.5,0.5,0.5\nartifact id=x backend=litert file=x.tflite bytes=1\n",
                      RS_ERR_FORMAT, "artifact without sha256");
    expect_open_error("bad-number", "restnet-bundle-index 1\nartifact id=x bytes=-5\n", RS_ERR_FORMAT,
                      "invalid bytes");
    expect_open_error("no-artifacts", "restnet-bundle-index 1\ninput shape=1,3,32,32 mean=0.5,0.5,0.5 "
                                      "std=0.5,0.5,0.5\n", RS_ERR_FORMAT, "at least one artifact");
    char *long_line = malloc(RS_MAX_LINE + 64);
    snprintf(long_line, RS_MAX_LINE + 64, "restnet-bundle-index 1\nlabel %0*d\n", RS_MAX_LINE, 0);
    expect_open_error("long-line", long_line, RS_ERR_FORMAT, "longer than");
    free(long_line);
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
    rs_status status = rs_bundle_validate(bundle, bad, NULL, 0, &err);
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
    char *text;
    size_t length;
    if (rs_read_file(path, RS_MAX_INDEX_BYTES, &text, &length, NULL) != RS_OK) exit(2);
    char *line = strstr(text, "id=bad ");
    char *bytes = strstr(line, "bytes=");
    char *end = strchr(bytes, ' ');
    char rewritten[32768];
    snprintf(rewritten, sizeof rewritten, "%.*sbytes=18446744073709551615%s", (int)(bytes - text), text, end);
    write_file(path, rewritten, strlen(rewritten));
    free(text);
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
    expect_bad_variant("symlink", "litert/escape.tflite", RS_ERR_UNSAFE_PATH, "outside the bundle", symlink_outside);
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
    test_bad_indexes();
    test_bad_variants();
    test_two_bundles();
    char command[4200];
    snprintf(command, sizeof command, "rm -rf '%s'", workdir);
    if (system(command) != 0) {
        fprintf(stderr, "could not remove %s\n", workdir);
    }
    printf("%s (%d failures)\n", failures ? "FAILED" : "all core tests passed", failures);
    return failures ? 1 : 0;
}
