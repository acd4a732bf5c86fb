package ai.restnet.shim;

import java.io.Closeable;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * A restnetc bundle opened by the native runtime shim: probe the memory available, pick the variant that
 * fits and run it. The same class works on Android (load the library with System.loadLibrary("restnet_shim_jni")).
 * Closing the bundle closes its runners. Thread safe: every method is synchronized on its object, so a runner
 * may be run from one thread and refreshed from another.
 */
public final class RestnetShim implements Closeable {
    private long handle;
    private final List<Runner> runners = new ArrayList<>();

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
     * The id of the valid variant of {@code backend} first in the ship order (the index's rank, then accuracy) that
     * fits {@code availableBytes} with
     * {@code headroomBytes} to spare, or null when nothing fits.
     */
    public synchronized String select(String backend, long availableBytes, long headroomBytes) throws IOException {
        if (handle == 0) {
            throw new IllegalStateException("bundle is closed");
        }
        return nativeSelect(handle, backend, availableBytes, headroomBytes);
    }

    /** Number of artifacts (all backends) the bundle lists. */
    public synchronized int artifactCount() {
        if (handle == 0) {
            throw new IllegalStateException("bundle is closed");
        }
        return nativeArtifactCount(handle);
    }

    /**
     * Opens a runner on the variant of {@code backend} ("litert", or "executorch" when the library is built
     * with it) that fits the memory probed under {@code memoryRoot} ("/" except in tests).
     * {@code litertLibrary} is the path of libLiteRt.so, or null to let the loader find it. The rungs of a
     * ladder file share packed weights in memory exactly when the bundle's index says the compiler checked it
     * safe ({@code packing=shared}; the C API's {@code RS_PACKING_AS_INDEXED}). The runtime runs on the threads
     * the bundle's index gives it (the compiler's target), at most the CPUs the process may use.
     */
    public Runner runner(String backend, String litertLibrary, String memoryRoot, long headroomBytes)
            throws IOException {
        return runner(backend, litertLibrary, memoryRoot, headroomBytes, false);
    }

    /**
     * Like {@link #runner(String, String, String, long)}; with {@code preloadNeighbours}, after each refresh (and
     * at open) the rungs just before and after the current one in selection order (the index's rank, then accuracy)
     * that share its open program are
     * loaded too while the headroom stays free, so a step to one of them loads nothing.
     */
    public Runner runner(String backend, String litertLibrary, String memoryRoot, long headroomBytes,
            boolean preloadNeighbours) throws IOException {
        return runner(backend, litertLibrary, memoryRoot, headroomBytes, preloadNeighbours, defaultHysteresis());
    }

    /**
     * Like {@link #runner(String, String, String, long, boolean)}; a refresh moves up to a larger rung only when
     * {@code hysteresis} times its need fits on top of it (a share, at least 0; {@link #defaultHysteresis()}
     * otherwise), so memory hovering at a rung's edge does not make the runner switch back and forth.
     */
    public synchronized Runner runner(String backend, String litertLibrary, String memoryRoot, long headroomBytes,
            boolean preloadNeighbours, double hysteresis) throws IOException {
        if (handle == 0) {
            throw new IllegalStateException("bundle is closed");
        }
        Runner runner = new Runner(
                nativeRunnerOpen(handle, backend, litertLibrary, memoryRoot, headroomBytes, preloadNeighbours,
                        hysteresis),
                nativeLabelCount(handle));
        runners.add(runner);
        return runner;
    }

    /** Runs one variant at a time and switches when the memory available changes. */
    public static final class Runner implements Closeable {
        private long handle;
        private final int classes;

        private Runner(long handle, int classes) {
            this.handle = handle;
            this.classes = classes;
        }

        /** Logits, one per label, for one normalised float32 NCHW image of the bundle's input shape. */
        public synchronized float[] run(float[] input) throws IOException {
            return nativeRun(checked(), classes, input);
        }

        /** Probes memory again and switches variant if another should run; true if it switched. */
        public synchronized boolean refresh() throws IOException {
            return nativeRefresh(checked(), -1);
        }

        /** Like {@link #refresh()} with {@code availableBytes} given instead of probed. */
        public synchronized boolean refresh(long availableBytes) throws IOException {
            if (availableBytes < 0) {
                throw new IllegalArgumentException("availableBytes must be >= 0");
            }
            return nativeRefresh(checked(), availableBytes);
        }

        /**
         * Runs variant {@code variantId} from now until the next refresh, whatever the memory: loaded unless
         * resident (from its open program when it shares one), the variant it replaces staying loaded.
         */
        public synchronized void use(String variantId) throws IOException {
            nativeTake(checked(), variantId, true);
        }

        /** Loads variant {@code variantId} without running it, so a later switch to it loads nothing. */
        public synchronized void preload(String variantId) throws IOException {
            nativeTake(checked(), variantId, false);
        }

        /**
         * Whether variant {@code variantId} is loaded: the one that runs, or one kept beside it after a switch, a
         * preload or neighbour preloading. Throws for an id the runner's backend does not have.
         */
        public synchronized boolean isResident(String variantId) throws IOException {
            return nativeResident(checked(), variantId);
        }

        /** The id of the variant that runs now, or null after a failed switch and restore (refresh loads one). */
        public synchronized String currentVariant() {
            return nativeCurrent(checked());
        }

        private long checked() {
            if (handle == 0) {
                throw new IllegalStateException("runner is closed");
            }
            return handle;
        }

        @Override
        public synchronized void close() {
            if (handle != 0) {
                nativeRunnerClose(handle);
                handle = 0;
            }
        }
    }

    @Override
    public synchronized void close() {
        for (Runner runner : runners) {
            runner.close();
        }
        runners.clear();
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

    private static native int nativeLabelCount(long handle);

    private static native long nativeRunnerOpen(long bundle, String backend, String litertLibrary, String memoryRoot,
            long headroom, boolean preloadNeighbours, double hysteresis) throws IOException;

    /** The hysteresis runners take unless given one: the C library's {@code RS_DEFAULT_HYSTERESIS}. */
    public static native double defaultHysteresis();

    private static native float[] nativeRun(long runner, int classes, float[] input) throws IOException;

    private static native boolean nativeRefresh(long runner, long available) throws IOException;

    private static native void nativeTake(long runner, String id, boolean use) throws IOException;

    private static native boolean nativeResident(long runner, String id) throws IOException;

    private static native String nativeCurrent(long runner);

    private static native void nativeRunnerClose(long runner);
}
