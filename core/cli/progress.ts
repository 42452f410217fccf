// qemu-img's -p progress output (util/qemu-progress.c, progress_simple_print/end): a line
// "    (12.34/100%)" rewritten in place with '\r' on stdout whenever progress moved by more than
// the command's step (min_skip), or reached 100%; on success most commands print 100% once more
// (qemu_progress_print(100, 0)), then a newline.

/** qemu-img's min_skip for convert, commit and amend: print when progress moved by more than this. */
const MIN_STEP_PERCENT = 1;

/** How a command shows its progress, where it differs from convert's. */
export interface ProgressDisplay {
  /** min_skip in percent (rebase and compare: 2). */
  minStep?: number;
  /** Print 100% once more at the end (all but compare). */
  repeatFinal?: boolean;
  /** Print every report of 0% too, as qemu_progress_print does (amend's status reports). */
  printZero?: boolean;
}

/** printf("%.2f") of a value: C rounds the exact binary value, ties to even (3.125 -> 3.12),
 *  where toFixed rounds ties up. */
export function cFixed2(x: number): string {
  const exact = x.toFixed(40);
  const dot = exact.indexOf('.');
  const rest = exact.slice(dot + 3);
  const tie = /^50*$/.test(rest);
  if (!tie) return x.toFixed(2);
  const kept = exact.slice(0, dot + 3);
  const last = Number(kept[kept.length - 1]);
  return last % 2 === 0 ? kept : x.toFixed(2);
}

export class ProgressPrinter {
  #last = 0;
  #enabled: boolean;
  #write: (s: string) => void;
  readonly #step: number;
  readonly #repeatFinal: boolean;
  readonly #printZero: boolean;

  constructor(enabled: boolean, write: (s: string) => void, display: ProgressDisplay = {}) {
    this.#enabled = enabled;
    this.#write = write;
    this.#step = display.minStep ?? MIN_STEP_PERCENT;
    this.#repeatFinal = display.repeatFinal ?? true;
    this.#printZero = display.printZero ?? false;
  }

  #print(percent: number): void {
    this.#last = percent;
    this.#write(`    (${cFixed2(percent)}/100%)\r`);
  }

  start(): void {
    if (!this.#enabled) return;
    this.#print(0);
  }

  update(done: number, total: number): void {
    if (!this.#enabled) return;
    // In single precision, as QEMU's progress state (a float).
    const pct = Math.fround(total > 0 ? Math.min(100, (done * 100) / total) : 0);
    if (pct > this.#last + this.#step || pct < this.#last - this.#step || pct === 100 || (pct === 0 && this.#printZero)) this.#print(pct);
  }

  end(): void {
    if (!this.#enabled) return;
    if (this.#repeatFinal || this.#last < 100) this.#print(100);
    this.#write('\n');
  }
}
