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
}

export class ProgressPrinter {
  #last = 0;
  #enabled: boolean;
  #write: (s: string) => void;
  readonly #step: number;
  readonly #repeatFinal: boolean;

  constructor(enabled: boolean, write: (s: string) => void, display: ProgressDisplay = {}) {
    this.#enabled = enabled;
    this.#write = write;
    this.#step = display.minStep ?? MIN_STEP_PERCENT;
    this.#repeatFinal = display.repeatFinal ?? true;
  }

  #print(percent: number): void {
    this.#last = percent;
    this.#write(`    (${percent.toFixed(2)}/100%)\r`);
  }

  start(): void {
    if (!this.#enabled) return;
    this.#print(0);
  }

  update(done: number, total: number): void {
    if (!this.#enabled) return;
    // In single precision, as QEMU's progress state (a float).
    const pct = Math.fround(total > 0 ? Math.min(100, (done * 100) / total) : 0);
    if (pct > this.#last + this.#step || pct < this.#last - this.#step || pct === 100) this.#print(pct);
  }

  end(): void {
    if (!this.#enabled) return;
    if (this.#repeatFinal || this.#last < 100) this.#print(100);
    this.#write('\n');
  }
}
