// Shared by the *-malformed unit suites: make a valid image, damage it byte by byte, and check
// that opening it is refused with the expected BlockError in every open mode while the file on
// disk stays exactly as it was.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from './qemu.ts';

type OpenedNode = Awaited<ReturnType<typeof openImage>>;

/** The sha256 of a file's current contents, in hex. */
export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Create a `format` image at `path` with Platter's own create, then apply `patch` to its bytes in place. */
export async function createPatched(opts: { path: string; format: string; size: number; options?: string; patch: (b: Buffer) => void }): Promise<string> {
  await createImage({ format: opts.format, filename: opts.path, size: opts.size, options: opts.options });
  const bytes = readFileSync(opts.path);
  opts.patch(bytes);
  writeFileSync(opts.path, bytes);
  return opts.path;
}

export interface RefusalExpectation {
  path: string;
  format: string;
  /** The BlockError kind every attempt must fail with (not checked when omitted). */
  kind?: BlockError['kind'];
  /** A pattern the error message must match, or a string it must contain. */
  message: RegExp | string;
  /** The open modes tried, each in turn (default: read-only, then read-write). */
  readOnlyModes?: readonly boolean[];
  /** Something to do with the node when opening succeeds; the refusal may come from here instead. */
  use?: (node: OpenedNode) => Promise<unknown>;
}

/** Every attempt to open (and use) the image is refused with a BlockError of the expected kind and message, and the file is unchanged. */
export async function assertRefusedUnchanged({ path, format, kind, message, readOnlyModes = [true, false], use }: RefusalExpectation): Promise<void> {
  const before = sha256File(path);
  for (const readOnly of readOnlyModes) {
    const attempt = async (): Promise<void> => {
      const node = await openImage(path, { format, readOnly });
      try {
        if (use) await use(node);
      } finally {
        await node.close();
      }
    };
    await assert.rejects(attempt(), (e: unknown) => {
      assert.ok(e instanceof BlockError, `expected a BlockError, got ${String(e)}`);
      if (kind !== undefined) assert.equal(e.kind, kind, e.message);
      if (typeof message === 'string') assert.ok(e.message.includes(message), `'${e.message}' should include '${message}'`);
      else assert.match(e.message, message);
      return true;
    });
  }
  assert.equal(sha256File(path), before, 'the file is unchanged');
}

/** In a fresh temporary directory: an image `name` made by `createPatched`, then `assertRefusedUnchanged`. */
export async function assertPatchedImageRefused(opts: { name: string; format: string; size: number; options?: string; patch: (b: Buffer) => void } & Omit<RefusalExpectation, 'path' | 'format'>): Promise<void> {
  const t = tempDir();
  try {
    const path = await createPatched({ path: t.path(opts.name), format: opts.format, size: opts.size, options: opts.options, patch: opts.patch });
    await assertRefusedUnchanged({ ...opts, path });
  } finally {
    t.cleanup();
  }
}
