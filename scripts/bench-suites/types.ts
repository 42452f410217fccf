// The contract between `npm run bench` (scripts/bench.ts) and a bench suite: one module per
// subject in scripts/bench-suites/ (cloop, dmg, nbd, ssh, iscsi, host-device, gluster, ...), each
// exporting `suite: BenchSuite`. A suite sets up its inputs and servers once, hands the runner
// pairs of commands (the reference tool and Platter doing the same job), and stops what it
// started. The runner times each pair back to back N times (the machine is shared: only such pairs
// are comparable), takes medians of the times and of the per-run ratios, and writes one table
// per suite to docs/benchmarks.md beside the convert table.

/** One timed command: wall seconds and peak RSS (from /usr/bin/time -v when present). */
export interface RunResult {
  wall: number;
  rssKiB?: number;
  status: number | null;
  stderr: string;
}

export interface BenchContext {
  /** Scratch directory for this suite; the runner removes it after teardown. */
  readonly dir: string;
  /** The shipped CLI (one esbuild bundle, as users run it): run it as [process.execPath, platter, ...args]. */
  readonly platter: string;
  /** Time one command (environment: the bench's, minus NODE_EXTRA_CA_CERTS). */
  timed(cmd: string, args: string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<RunResult>;
  /** Progress lines for the console (not the doc). */
  log(line: string): void;
}

/** One side of a pair: how it runs, and what to undo after each run (e.g. delete the output). */
export interface BenchSide {
  run(): Promise<RunResult>;
  after?(): Promise<void> | void;
}

export interface BenchPair {
  /** Row name, e.g. "cloop -> raw (256 MiB)". */
  readonly name: string;
  /** What the reference side is, e.g. "qemu-img convert", "nbdcopy from qemu-nbd". */
  readonly referenceLabel: string;
  /** The goal for the median ratio platter/reference (e.g. 1.0 or 1.2); none for a pair
   *  timed only to compare (another mode of the same job). */
  readonly target: number | undefined;
  readonly reference: BenchSide;
  readonly platter: BenchSide;
  /** Cap on runs for slow pairs. */
  readonly maxRuns?: number;
  /** Floor on runs in a full bench, for pairs of sub-second runs whose times swing from run to
   *  run (a shared 2-core machine, a server or a device in the loop): five ratios give an
   *  unsteady median there. */
  readonly minRuns?: number;
}

export interface BenchSuite {
  /** Section name in docs/benchmarks.md, e.g. "NBD". */
  readonly name: string;
  /** Why this suite cannot run on this machine (missing tool, privilege, server), or undefined. */
  unavailable(): Promise<string | undefined>;
  /** Make inputs and start servers (untimed); answer the pairs to time. */
  setup(ctx: BenchContext): Promise<BenchPair[]>;
  /** Stop every process setup started (only those) and release what it holds. */
  teardown(): Promise<void>;
}
