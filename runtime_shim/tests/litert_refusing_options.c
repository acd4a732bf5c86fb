/*
 * A libLiteRt.so that refuses every opaque option (XNNPACK's weight cache among them), as a LiteRT build that
 * reads its options otherwise would. It defines only LiteRtAddOpaqueOptions and needs the real libLiteRt.so,
 * which dlsym() on this library's handle searches after it, so every other call reaches the real runtime.
 * Test-only (tests/test_runtime_shim.py): never linked into the shim.
 */
#define EXPORTED __attribute__((visibility("default")))

/* Any non-zero LiteRtStatus is a refusal; the shim reports the code it got. */
EXPORTED int LiteRtAddOpaqueOptions(void *options, void *opaque) {
    (void)options;
    (void)opaque;
    return 1;
}
