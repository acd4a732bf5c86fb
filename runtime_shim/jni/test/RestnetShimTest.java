import ai.restnet.shim.RestnetShim;
import java.io.IOException;

/** Desktop-JDK test of the JNI bridge. usage: java RestnetShimTest LIBRARY BUNDLE MEMORY_ROOT EXPECTED_ID */
public final class RestnetShimTest {
    private static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        System.load(args[0]);
        long available = RestnetShim.probeMemory(args[2]);
        check(available > 0, "probeMemory: " + available);
        try (RestnetShim bundle = RestnetShim.open(args[1])) {
            check(bundle.artifactCount() > 0, "artifacts");
            String chosen = bundle.select("litert", available, 1 << 20);
            check(args[3].equals(chosen), "select chose " + chosen + ", expected " + args[3]);
            check(bundle.select("litert", 0, 0) == null, "nothing fits in 0 bytes");
        }
        try {
            RestnetShim.open(args[1] + "/no-such-bundle");
            throw new AssertionError("opening a missing bundle should fail");
        } catch (IOException expected) {
            check(expected.getMessage().contains("no-such-bundle"), expected.getMessage());
        }
        System.out.println("all JNI tests passed");
    }
}
