// qemu-img's -p progress output (util/qemu-progress.c, progress_simple_print/end): a line
// "    (12.34/100%)" rewritten in place with '\r' on stdout whenever progress grew by at least one
// percent, then a newline at the end.

/** qemu-img prints when the progress moved by at least this many percent. */
const MIN_STEP_PERCENT = 1;

export class ProgressPrinter {
  #last = -Infinity;
  #enabled: boolean;
  #write: (s: string) => void;

  constructor(enabled: boolean, write: (s: string) => void) {
    this.#enabled = enabled;
    this.#write = write;
  }

  #print(percent: number): void {
    this.#write(`    (${percent.toFixed(2)}/100%)\r`);
  }

  start(): void {
    if (!this.#enabled) return;
    this.#last = 0;
    this.#print(0);
  }

  update(done: number, total: number): void {
    if (!this.#enabled) return;
    const pct = total > 0 ? Math.min(100, (done * 100) / total) : 0;
    if (pct - this.#last >= MIN_STEP_PERCENT) {
      this.#last = pct;
      this.#print(pct);
    }
  }

  end(): void {
    if (!this.#enabled) return;
    if (this.#last < 100) this.#print(100);
    this.#write('\n');
  }
}
