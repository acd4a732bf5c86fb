import ai.restnet.shim.RestnetShim;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Desktop-JDK test of the JNI bridge.
 * usage: java RestnetShimTest LIBRARY BUNDLE MEMORY_ROOT EXPECTED_ID LIBLITERT INPUT_F32 EXPECTED_LOGITS
 *                             COPY TOP_FILE OTHER_FILE TOP_ID
 * (EXPECTED_LOGITS: comma-separated, what the Python runtime gives for INPUT_F32 with EXPECTED_ID; COPY: a
 * LiteRT-only copy of a bundle whose most accurate variant TOP_ID, in TOP_FILE, also needs the most memory;
 * it is modified: TOP_FILE is replaced by a copy of OTHER_FILE while it runs)
 */
public final class RestnetShimTest {
    private static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    private static float[] readFloats(String path) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(Paths.get(path))).order(ByteOrder.LITTLE_ENDIAN);
        float[] values = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(values);
        return values;
    }

    /** The top variant keeps running its verified bytes after its file is replaced; coming back is refused. */
    private static void replacedFileNeverRuns(String[] args, float[] input) throws IOException {
        try (RestnetShim bundle = RestnetShim.open(args[7])) {
            RestnetShim.Runner runner = bundle.runner("litert", args[4], args[2], 1 << 20);
            check(args[10].equals(runner.currentVariant()), "copy: runner chose " + runner.currentVariant());
            float[] before = runner.run(input);
            Path top = Paths.get(args[7], args[8]);
            Path staged = Paths.get(args[7], args[8] + ".new");
            Files.copy(Paths.get(args[7], args[9]), staged);
            Files.move(staged, top, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            check(Arrays.equals(before, runner.run(input)), "the verified bytes keep running");
            check(runner.refresh(0), "steps down with no memory left");
            try {
                runner.refresh(Long.MAX_VALUE / 2);
                throw new AssertionError("the replaced variant should be refused");
            } catch (IOException refused) {
                check(refused.getMessage().contains(args[10]) && refused.getMessage().contains("the index says"),
                        refused.getMessage());
            }
            check(!args[10].equals(runner.currentVariant()), "still on a verified variant");
        }
    }

    /**
     * run from a second thread while this one refreshes down and up (the copy's variants are 100 MiB apart, so
     * refreshing with nothing left steps down one rung): the wrapper's locks serialise them.
     */
    private static void twoThreads(String[] args, float[] input) throws Exception {
        try (RestnetShim bundle = RestnetShim.open(args[7])) {
            RestnetShim.Runner runner = bundle.runner("litert", args[4], args[2], 1 << 20);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread runs = new Thread(() -> {
                try {
                    for (int i = 0; i < 200; i++) {
                        check(runner.run(input).length > 0, "logits");
                    }
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            runs.start();
            for (int i = 0; i < 100; i++) {
                runner.refresh(i % 2 == 0 ? 0 : Long.MAX_VALUE / 2);
            }
            runs.join();
            check(failure.get() == null, "run thread: " + failure.get());
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
        float[] input = readFloats(args[5]);
        String[] expected = args[6].split(",");
        try (RestnetShim bundle = RestnetShim.open(args[1])) {
            RestnetShim.Runner runner = bundle.runner("litert", args[4], args[2], 1 << 20);
            check(args[3].equals(runner.currentVariant()), "runner chose " + runner.currentVariant());
            float[] logits = runner.run(input);
            check(logits.length == expected.length, "logits: " + logits.length);
            for (int i = 0; i < logits.length; i++) {
                float want = Float.parseFloat(expected[i]);
                check(Math.abs(logits[i] - want) <= 1e-5f, "logit " + i + ": " + logits[i] + " vs " + want);
            }
            check(!runner.refresh(Long.MAX_VALUE / 2), "the most accurate variant already runs");
            runner.preload(args[3]);
            runner.use(args[3]);
            check(args[3].equals(runner.currentVariant()), "use keeps " + runner.currentVariant());
            try {
                runner.use("no-such-variant");
                throw new AssertionError("an unknown variant should fail");
            } catch (IOException unknown) {
                check(unknown.getMessage().contains("no variant 'no-such-variant'"), unknown.getMessage());
            }
            try {
                runner.run(new float[3]);
                throw new AssertionError("a wrong-sized input should fail");
            } catch (IOException wrongSize) {
                check(wrongSize.getMessage().contains("input values"), wrongSize.getMessage());
            }
            try {
                bundle.runner("litert", args[1] + "/no-libLiteRt.so", args[2], 0);
                throw new AssertionError("a missing libLiteRt.so should fail");
            } catch (IOException missing) {
                check(missing.getMessage().contains("no-libLiteRt.so"), missing.getMessage());
            }
            bundle.close();
            try {
                runner.currentVariant();
                throw new AssertionError("closing the bundle should close its runners");
            } catch (IllegalStateException closed) {
                check(closed.getMessage().contains("closed"), closed.getMessage());
            }
        }
        replacedFileNeverRuns(args, input);
        twoThreads(args, input);
        System.out.println("all JNI tests passed");
    }
}
