package ai.restnet.shim;

import java.io.Closeable;
import java.io.IOException;

/**
 * A restnetc bundle opened by the native runtime shim: probe the memory available and pick the variant
 * that fits. The same class works on Android (load the library with System.loadLibrary("restnet_shim_jni")).
 */
public final class RestnetShim implements Closeable {
    private long handle;

    private RestnetShim(long handle) {
        this.handle = handle;
    }

    /** Opens the bundle directory (reads its bundle.index). */
    public static RestnetShim open(String bundleDir) throws IOException {
        return new RestnetShim(nativeOpen(bundleDir));
    }

    /** Bytes of memory available to this process now; {@code root} is "/" except in tests. */
    public static native long probeMemory(String root) throws IOException;

    /**
     * The id of the most accurate valid variant of {@code backend} that fits {@code availableBytes} with
     * {@code headroomBytes} to spare, or null when nothing fits.
     */
    public String select(String backend, long availableBytes, long headroomBytes) throws IOException {
        if (handle == 0) {
            throw new IllegalStateException("bundle is closed");
        }
        return nativeSelect(handle, backend, availableBytes, headroomBytes);
    }

    /** Number of artifacts (all backends) the bundle lists. */
    public int artifactCount() {
        if (handle == 0) {
            throw new IllegalStateException("bundle is closed");
        }
        return nativeArtifactCount(handle);
    }

    @Override
    public void close() {
        if (handle != 0) {
            nativeClose(handle);
            handle = 0;
        }
    }

    private static native long nativeOpen(String bundleDir) throws IOException;

    private static native String nativeSelect(long handle, String backend, long available, long headroom)
            throws IOException;

    private static native int nativeArtifactCount(long handle);

    private static native void nativeClose(long handle);
}
