// The "files opened" guard (issue 8): records every path the file protocol opens or creates
// (through core/protocols/file's fileOpenObserver) and tells which ones lie outside the
// directories a case is allowed to touch (the image, its backing files and extents all live in
// one work directory). Used by the fuzz case child and by the security regression tests.
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, basename, join } from 'node:path';
import { fileOpenObserver } from '../../core/protocols/file/index.ts';

/** Canonical form of a path that may not exist (yet): the real path of its nearest existing
 *  ancestor plus the rest, so a symlink anywhere on the way is followed. */
export function canonical(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(canonical(parent), basename(abs));
  }
}

/** True when `path` (canonicalised) is `dir` itself or below it. */
export function isInside(path: string, dir: string): boolean {
  const rel = relative(canonical(dir), canonical(path));
  return rel !== '' && rel !== '..' && !rel.startsWith('../') && !isAbsolute(rel);
}

export interface OpenedFilesWatch {
  /** Every path opened since the watch started, as the driver was given it. */
  readonly opened: readonly string[];
  /** The opened paths outside every allowed directory. */
  outside(): string[];
  /** Detach the observer (restores whatever observer was there before). */
  stop(): void;
}

/** Start recording opened paths; only one watch is active at a time (cases run one by one). */
export function watchOpenedFiles(allowedDirs: readonly string[]): OpenedFilesWatch {
  const opened: string[] = [];
  const previous = fileOpenObserver.onOpen;
  fileOpenObserver.onOpen = (p) => {
    opened.push(p);
    previous?.(p);
  };
  return {
    opened,
    outside: () => opened.filter((p) => !allowedDirs.some((d) => isInside(p, d))),
    stop: () => {
      fileOpenObserver.onOpen = previous;
    },
  };
}
