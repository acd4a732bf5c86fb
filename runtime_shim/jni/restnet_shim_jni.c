/* JNI bridge for ai.restnet.shim.RestnetShim: the same C core, errors raised as java.io.IOException.
 * Runners use the LiteRT backend (libLiteRt.so loaded at run time), and ExecuTorch when this library is
 * built with it (RS_WITH_EXECUTORCH). */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "restnet_shim.h"
#include "restnet_shim_litert.h"
#ifdef RS_WITH_EXECUTORCH
#include "restnet_shim_executorch.h"
#endif

static void throw_io(JNIEnv *env, const char *message) {
    jclass io = (*env)->FindClass(env, "java/io/IOException");
    if (io != NULL) {
        (*env)->ThrowNew(env, io, message);
    }
}

/* The UTF-8 characters of `text` (release with ReleaseStringUTFChars), or NULL with an exception pending. */
static const char *utf(JNIEnv *env, jstring text, const char *what) {
    const char *chars = text ? (*env)->GetStringUTFChars(env, text, NULL) : NULL;
    if (chars == NULL && !(*env)->ExceptionCheck(env)) {
        throw_io(env, what);
    }
    return chars;
}

JNIEXPORT jlong JNICALL Java_ai_restnet_shim_RestnetShim_nativeOpen(JNIEnv *env, jclass cls, jstring dir) {
    (void)cls;
    const char *path = utf(env, dir, "bundle directory is null");
    if (path == NULL) {
        return 0;
    }
    rs_bundle *bundle = NULL;
    rs_error err = {RS_OK, ""};
    rs_status status = rs_bundle_open(path, &bundle, &err);
    (*env)->ReleaseStringUTFChars(env, dir, path);
    if (status != RS_OK) {
        throw_io(env, err.message);
        return 0;
    }
    return (jlong)(intptr_t)bundle;
}

JNIEXPORT jlong JNICALL Java_ai_restnet_shim_RestnetShim_probeMemory(JNIEnv *env, jclass cls, jstring root) {
    (void)cls;
    const char *path = utf(env, root, "memory root is null");
    if (path == NULL) {
        return 0;
    }
    rs_memory memory;
    rs_error err = {RS_OK, ""};
    rs_status status = rs_probe_memory(path, &memory, &err);
    (*env)->ReleaseStringUTFChars(env, root, path);
    if (status != RS_OK) {
        throw_io(env, err.message);
        return 0;
    }
    return memory.available > INT64_MAX ? INT64_MAX : (jlong)memory.available;
}

JNIEXPORT jstring JNICALL Java_ai_restnet_shim_RestnetShim_nativeSelect(JNIEnv *env, jclass cls, jlong handle,
                                                                      jstring backend, jlong available,
                                                                      jlong headroom) {
    (void)cls;
    if (available < 0 || headroom < 0) {
        throw_io(env, "available and headroom must be >= 0");
        return NULL;
    }
    const char *name = utf(env, backend, "backend is null");
    if (name == NULL) {
        return NULL;
    }
    rs_bundle *bundle = (rs_bundle *)(intptr_t)handle;
    rs_selection *selection = malloc(sizeof *selection);
    rs_error err = {RS_OK, ""};
    rs_policy policy = {name, (uint64_t)headroom, RS_DEFAULT_HYSTERESIS, NULL, 0};
    rs_status status = selection ? rs_select(bundle, &policy, (uint64_t)available, SIZE_MAX, selection, &err)
                                 : RS_ERR_NO_MEMORY;
    (*env)->ReleaseStringUTFChars(env, backend, name);
    jstring chosen = NULL;
    if (status == RS_OK) {
        chosen = (*env)->NewStringUTF(env, rs_bundle_artifact(bundle, selection->chosen)->id);
    } else if (status != RS_ERR_NOTHING_FITS) {
        throw_io(env, status == RS_ERR_NO_MEMORY ? "out of memory" : err.message);
    }
    free(selection);
    return chosen;
}

JNIEXPORT jint JNICALL Java_ai_restnet_shim_RestnetShim_nativeArtifactCount(JNIEnv *env, jclass cls, jlong handle) {
    (void)env;
    (void)cls;
    return (jint)rs_bundle_artifact_count((rs_bundle *)(intptr_t)handle);
}

JNIEXPORT jdouble JNICALL Java_ai_restnet_shim_RestnetShim_defaultHysteresis(JNIEnv *env, jclass cls) {
    (void)env;
    (void)cls;
    return RS_DEFAULT_HYSTERESIS;
}

JNIEXPORT jint JNICALL Java_ai_restnet_shim_RestnetShim_nativeLabelCount(JNIEnv *env, jclass cls, jlong handle) {
    (void)env;
    (void)cls;
    return (jint)rs_bundle_label_count((rs_bundle *)(intptr_t)handle);
}

JNIEXPORT void JNICALL Java_ai_restnet_shim_RestnetShim_nativeClose(JNIEnv *env, jclass cls, jlong handle) {
    (void)env;
    (void)cls;
    rs_bundle_close((rs_bundle *)(intptr_t)handle);
}

/* A runner and the backend it runs on (the backend is owned here and outlives the runner). */
typedef struct {
    rs_backend backend; /* context NULL until opened */
    rs_runner *runner;
} jni_runner;

static void close_runner(jni_runner *r) {
    rs_runner_close(r->runner);
    rs_backend_close(&r->backend);
    free(r);
}

/* Opens `backend` on `threads` threads (the bundle's: rs_bundle_threads). */
static rs_status open_backend(jni_runner *r, const char *backend, const char *library, int threads, rs_error *err) {
    if (strcmp(backend, "litert") == 0) {
        rs_litert_options options = {RS_PACKING_AS_INDEXED, threads};
        return rs_litert_backend_open_with(library ? library : "libLiteRt.so", &options, &r->backend, err);
    }
#ifdef RS_WITH_EXECUTORCH
    if (strcmp(backend, "executorch") == 0) {
        rs_executorch_options options = {RS_PACKING_AS_INDEXED, threads};
        return rs_executorch_backend_open_with(&options, &r->backend, err);
    }
#endif
    return rs_error_set(err, RS_ERR_ARGUMENT, "backend %s is not built into this library", backend);
}

JNIEXPORT jlong JNICALL Java_ai_restnet_shim_RestnetShim_nativeRunnerOpen(JNIEnv *env, jclass cls, jlong bundle,
                                                                        jstring backend, jstring library,
                                                                        jstring root, jlong headroom,
                                                                        jboolean preload_neighbours,
                                                                        jdouble hysteresis) {
    (void)cls;
    if (headroom < 0 || !(hysteresis >= 0)) {
        throw_io(env, "headroom and hysteresis must be >= 0");
        return 0;
    }
    const char *name = utf(env, backend, "backend is null");
    const char *memory_root = name ? utf(env, root, "memory root is null") : NULL;
    const char *path = library && memory_root ? (*env)->GetStringUTFChars(env, library, NULL) : NULL;
    jni_runner *r = calloc(1, sizeof *r);
    rs_error err = {RS_OK, ""};
    rs_status status = RS_ERR_ARGUMENT;
    if (memory_root != NULL && !(library != NULL && path == NULL)) {
        status = r ? open_backend(r, name, path, rs_bundle_threads((rs_bundle *)(intptr_t)bundle), &err)
                   : rs_error_set(&err, RS_ERR_NO_MEMORY, "out of memory");
    }
    if (status == RS_OK) {
        rs_policy policy = {name, (uint64_t)headroom, hysteresis, NULL, preload_neighbours == JNI_TRUE};
        status = rs_runner_open((rs_bundle *)(intptr_t)bundle, &policy, &r->backend, memory_root, &r->runner, &err);
    }
    if (path != NULL) {
        (*env)->ReleaseStringUTFChars(env, library, path);
    }
    if (memory_root != NULL) {
        (*env)->ReleaseStringUTFChars(env, root, memory_root);
    }
    if (name != NULL) {
        (*env)->ReleaseStringUTFChars(env, backend, name);
    }
    if (status != RS_OK) {
        if (r != NULL) {
            close_runner(r);
        }
        if (!(*env)->ExceptionCheck(env)) {
            throw_io(env, err.message);
        }
        return 0;
    }
    return (jlong)(intptr_t)r;
}

JNIEXPORT jfloatArray JNICALL Java_ai_restnet_shim_RestnetShim_nativeRun(JNIEnv *env, jclass cls, jlong handle,
                                                                       jint classes, jfloatArray input) {
    (void)cls;
    jni_runner *r = (jni_runner *)(intptr_t)handle;
    if (input == NULL || classes <= 0) {
        throw_io(env, "input is null");
        return NULL;
    }
    jsize count = (*env)->GetArrayLength(env, input);
    float *logits = malloc((size_t)classes * sizeof *logits);
    jfloat *values = logits ? (*env)->GetFloatArrayElements(env, input, NULL) : NULL;
    rs_error err = {RS_OK, ""};
    rs_status status = values ? rs_runner_run(r->runner, values, (size_t)count, logits, (size_t)classes, &err)
                              : rs_error_set(&err, RS_ERR_NO_MEMORY, "out of memory");
    if (values != NULL) {
        (*env)->ReleaseFloatArrayElements(env, input, values, JNI_ABORT);
    }
    jfloatArray result = status == RS_OK ? (*env)->NewFloatArray(env, classes) : NULL;
    if (result != NULL) {
        (*env)->SetFloatArrayRegion(env, result, 0, classes, logits);
    } else if (!(*env)->ExceptionCheck(env)) {
        throw_io(env, err.message);
    }
    free(logits);
    return result;
}

JNIEXPORT jboolean JNICALL Java_ai_restnet_shim_RestnetShim_nativeRefresh(JNIEnv *env, jclass cls, jlong handle,
                                                                        jlong available) {
    (void)cls;
    jni_runner *r = (jni_runner *)(intptr_t)handle;
    int switched = 0;
    rs_error err = {RS_OK, ""};
    rs_status status = available < 0 ? rs_runner_refresh(r->runner, &switched, &err)
                                     : rs_runner_refresh_with(r->runner, (uint64_t)available, &switched, &err);
    if (status != RS_OK) {
        throw_io(env, err.message);
    }
    return switched ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT void JNICALL Java_ai_restnet_shim_RestnetShim_nativeTake(JNIEnv *env, jclass cls, jlong handle,
                                                                  jstring id, jboolean use) {
    (void)cls;
    const char *chars = utf(env, id, "a variant id is required");
    if (chars == NULL) {
        return;
    }
    jni_runner *r = (jni_runner *)(intptr_t)handle;
    rs_error err = {RS_OK, ""};
    rs_status status = use ? rs_runner_use(r->runner, chars, &err) : rs_runner_preload(r->runner, chars, &err);
    (*env)->ReleaseStringUTFChars(env, id, chars);
    if (status != RS_OK) {
        throw_io(env, err.message);
    }
}

JNIEXPORT jboolean JNICALL Java_ai_restnet_shim_RestnetShim_nativeResident(JNIEnv *env, jclass cls, jlong handle,
                                                                          jstring id) {
    (void)cls;
    const char *chars = utf(env, id, "a variant id is required");
    if (chars == NULL) {
        return JNI_FALSE;
    }
    int loaded = 0;
    rs_error err = {RS_OK, ""};
    rs_status status = rs_runner_resident(((jni_runner *)(intptr_t)handle)->runner, chars, &loaded, &err);
    (*env)->ReleaseStringUTFChars(env, id, chars);
    if (status != RS_OK) {
        throw_io(env, err.message);
    }
    return loaded ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jstring JNICALL Java_ai_restnet_shim_RestnetShim_nativeCurrent(JNIEnv *env, jclass cls, jlong handle) {
    (void)cls;
    const rs_artifact *current = rs_runner_current(((jni_runner *)(intptr_t)handle)->runner);
    return current != NULL ? (*env)->NewStringUTF(env, current->id) : NULL;
}

JNIEXPORT void JNICALL Java_ai_restnet_shim_RestnetShim_nativeRunnerClose(JNIEnv *env, jclass cls, jlong handle) {
    (void)env;
    (void)cls;
    close_runner((jni_runner *)(intptr_t)handle);
}
