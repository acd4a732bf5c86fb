import ai.restnet.shim.RestnetShim;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Desktop-JDK test of the JNI bridge on a ladder bundle: one LiteRT program, a signature per rung.
 * usage: java RestnetShimLadderTest LIBRARY BUNDLE MEMORY_ROOT LIBLITERT INPUT_F32 EXPECTED PROGRAM_FILE
 * (EXPECTED: one line per rung, "ID LOGIT,LOGIT,...", what the Python runtime gives for INPUT_F32; PROGRAM_FILE:
 * the ladder file, relative to BUNDLE; it is spoiled once the runner has opened it)
 */
public final class RestnetShimLadderTest {
    private static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    private static void checkLogits(String id, float[] logits, String expected) {
        String[] want = expected.split(",");
        check(logits.length == want.length, id + ": " + logits.length + " logits");
        for (int i = 0; i < logits.length; i++) {
            float value = Float.parseFloat(want[i]);
            check(Math.abs(logits[i] - value) <= 1e-5f, id + " logit " + i + ": " + logits[i] + " vs " + value);
        }
    }

    public static void main(String[] args) throws Exception {
        System.load(args[0]);
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(Paths.get(args[4]))).order(ByteOrder.LITTLE_ENDIAN);
        float[] input = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(input);
        Map<String, String> rungs = new LinkedHashMap<>();
        for (String line : Files.readAllLines(Paths.get(args[5]))) {
            String[] fields = line.split(" ");
            rungs.put(fields[0], fields[1]);
        }
        try (RestnetShim bundle = RestnetShim.open(args[1])) {
            // Opened with neighbour preloading, the rung just below the chosen one is loaded too (the top rung has
            // none above), and it is the only other one; without it, none is.
            for (boolean preload : new boolean[] {false, true}) {
                RestnetShim.Runner fresh = bundle.runner("litert", args[3], args[2], 1 << 20, preload);
                String chosen = fresh.currentVariant();
                int others = 0;
                for (String id : rungs.keySet()) {
                    others += !id.equals(chosen) && fresh.isResident(id) ? 1 : 0;
                }
                check(fresh.isResident(chosen), chosen + " is not resident");
                check(others == (preload ? 1 : 0), "preload " + preload + ": " + others + " other rungs resident");
                fresh.close();
                try {
                    fresh.isResident(chosen);
                    check(false, "a closed runner answered");
                } catch (IllegalStateException expected) {
                    // a closed runner refuses every call
                }
            }
            RestnetShim.Runner runner = bundle.runner("litert", args[3], args[2], 1 << 20);
            String top = runner.currentVariant();
            check(rungs.containsKey(top), "runner chose " + top);
            Path program = Paths.get(args[1], args[6]);
            Files.write(program, new byte[] {'s', 'p', 'o', 'i', 'l', 't'});
            // Every rung comes from the open program (the file on disk no longer verifies), twice: loaded, then
            // resident; each gives its own logits.
            for (int pass = 0; pass < 2; pass++) {
                for (Map.Entry<String, String> rung : rungs.entrySet()) {
                    runner.use(rung.getKey());
                    check(rung.getKey().equals(runner.currentVariant()), "use " + rung.getKey() + ": on "
                            + runner.currentVariant());
                    checkLogits(rung.getKey(), runner.run(input), rung.getValue());
                }
            }
            runner.refresh(Long.MAX_VALUE / 2);
            check(top.equals(runner.currentVariant()), "refresh chose " + runner.currentVariant() + ", not " + top);
            checkLogits(top, runner.run(input), rungs.get(top));
            for (String id : rungs.keySet()) {
                check(runner.isResident(id), id + " is not resident after use");
            }
        }
        System.out.println("all JNI ladder tests passed");
    }
}
