// A describe-level scratch directory holding a source image, for the CLI interop suites that run
// every test against the same source file.

import { before, after } from 'node:test';
import { tempDir } from './qemu.ts';

export interface ScratchWithSource {
  /** The scratch directory (set before the first test). */
  readonly t: ReturnType<typeof tempDir>;
  /** Its `src.raw`, made by the `make` given (set before the first test). */
  readonly src: string;
}

/** Call in a describe: before its tests, a fresh temporary directory with `src.raw` made by `make`;
 *  after them, the directory removed. */
export function scratchWithSource(make: (path: string) => void): ScratchWithSource {
  const fx = {} as { t: ReturnType<typeof tempDir>; src: string };
  before(() => {
    fx.t = tempDir();
    fx.src = fx.t.path('src.raw');
    make(fx.src);
  });
  after(() => fx.t.cleanup());
  return fx;
}
