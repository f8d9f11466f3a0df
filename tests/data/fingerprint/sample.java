package demo;
/* a block comment */
public final class Counter {
    private static final long LIMIT = 10_000L;
    private int count = 0; // current count
    public String describe(char unit) {
        String block = """
            counted %d
            """;
        return count > LIMIT ? "too many" : block.formatted(count) + unit + '\n';
    }
}
