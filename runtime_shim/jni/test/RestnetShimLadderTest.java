import ai.restnet.shim.RestnetShim;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Test of the JNI bridge on a ladder bundle: one program of BACKEND ("litert", the default, or "executorch" when the
 * bridge is built with it), an entry point per rung.
 * usage: java RestnetShimLadderTest LIBRARY BUNDLE MEMORY_ROOT LIBLITERT INPUT_F32 EXPECTED PROGRAM_FILE [BACKEND]
 * (EXPECTED: one line per rung, "ID LOGIT,LOGIT,...", what the Python runtime gives for INPUT_F32, from the least
 * to the most accurate rung, whose memory needs in BUNDLE's index are 100, 200, ... MiB; PROGRAM_FILE: the ladder
 * file, relative to BUNDLE; it is spoiled once the runners have opened it; MEMORY_ROOT/proc/meminfo is rewritten)
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

    private static void setAvailable(String root, long mebibytes) throws IOException {
        Files.writeString(Paths.get(root, "proc", "meminfo"), "MemAvailable: " + mebibytes * 1024 + " kB\n");
    }

    public static void main(String[] args) throws Exception {
        System.load(args[0]);
        String backend = args.length > 7 ? args[7] : "litert";
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
                RestnetShim.Runner fresh = bundle.runner(backend, args[3], args[2], 1 << 20, preload);
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
            RestnetShim.Runner runner = bundle.runner(backend, args[3], args[2], 1 << 20);
            RestnetShim.Runner walker = bundle.runner(backend, args[3], args[2], 1 << 20);
            // A runner told a hysteresis of 100 (a larger rung must fit 101 times its need) stays where it is put
            // when the walker, with the default, steps up; a negative one is refused.
            RestnetShim.Runner sticky = bundle.runner(backend, args[3], args[2], 1 << 20, false, 100.0);
            try {
                bundle.runner(backend, args[3], args[2], 1 << 20, false, -0.5);
                check(false, "a negative hysteresis was taken");
            } catch (IOException expected) {
                check(expected.getMessage().contains("hysteresis must be >= 0"), expected.getMessage());
            }
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
            // The other runner walks down and up as the probed memory changes (needs 100 MiB apart, 1 MiB
            // headroom): with nothing free beside the rung in use, each refresh steps one rung down. With 200 MiB
            // free, each steps one rung up: the next rung's need with the default hysteresis (10% of it) and the
            // headroom fits in 200 MiB plus the need of the rung in use up to the ninth rung, two rungs up never
            // do, and loading the next one must release the one in use (200 < its 100 MiB more + the headroom),
            // so no rung stays resident beside it to count as room at the next refresh.
            List<String> ladder = new ArrayList<>(rungs.keySet());
            check(top.equals(walker.currentVariant()), "the walker started on " + walker.currentVariant());
            setAvailable(args[2], 0);
            for (int k = ladder.size() - 2; k >= 0; k--) {
                check(walker.refresh(), "no step down to " + ladder.get(k));
                check(ladder.get(k).equals(walker.currentVariant()), "down: on " + walker.currentVariant());
                checkLogits(ladder.get(k), walker.run(input), rungs.get(ladder.get(k)));
            }
            sticky.use(ladder.get(0));
            setAvailable(args[2], 200);
            check(!sticky.refresh(), "the sticky runner moved to " + sticky.currentVariant());
            check(ladder.get(0).equals(sticky.currentVariant()), "sticky: on " + sticky.currentVariant());
            for (int k = 1; k < ladder.size(); k++) {
                check(walker.refresh(), "no step up to " + ladder.get(k));
                check(ladder.get(k).equals(walker.currentVariant()), "up: on " + walker.currentVariant());
                checkLogits(ladder.get(k), walker.run(input), rungs.get(ladder.get(k)));
            }
        }
        System.out.println("all JNI ladder tests passed");
    }
}
