/* JNI bridge for ai.restnet.shim.RestnetShim: the same C core, errors raised as java.io.IOException. */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>

#include "restnet_shim.h"

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
    rs_policy policy = {name, (uint64_t)headroom, 0.1, NULL};
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

JNIEXPORT void JNICALL Java_ai_restnet_shim_RestnetShim_nativeClose(JNIEnv *env, jclass cls, jlong handle) {
    (void)env;
    (void)cls;
    rs_bundle_close((rs_bundle *)(intptr_t)handle);
}
