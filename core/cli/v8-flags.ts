// V8 flags of the `platter` command line, set by core/cli/main.ts, and by the shipped launcher
// (scripts/cli-launcher.ts) before it compiles the CLI: V8 accepts a code cache only under the
// flags it was made with.

/**
 * A CLI run lives seconds. With V8's default interrupt budget dozens of functions reach the
 * optimising compiler within the first second, and its threads then compete with the copy for the
 * cores (measured: a third of a 1.25 GiB convert's user CPU on 2 cores). A larger budget optimises
 * only what stays hot: 0.3-0.5 s less CPU and 10-15% less wall time per convert. Applies to
 * functions first run after it is set, which is every function of the data path.
 */
export const CLI_V8_FLAGS = '--interrupt-budget=400000';
