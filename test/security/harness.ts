// Shared checks for the QEMU-CVE regression corpus (issue 8): build a crafted image (qemu-img
// output patched in place, or bytes written by the test), let Platter do what `qemu-img info`,
// `check` and `convert` do with it, and prove the answer is a typed BlockError (or correct data),
// in bounded time and memory, with the file unchanged and no file opened outside the image's
// directory.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { openImage } from '../../core/drivers/open.ts';
import { blockStatusAbove } from '../../core/block/node.ts';
import { BlockError } from '../../core/errors.ts';
import { run } from '../helpers/qemu.ts';
import { watchOpenedFiles } from './opened-files.ts';

/** CPU time (user + system) one crafted image may cost: the bound of issue 8 is 5 s per case. */
export const MAX_CASE_MS = 5000;
/** Wall-clock bound, looser: the test machine is shared, so waiting is not the image's fault;
 *  a hang or a runaway loop still trips it. */
export const MAX_CASE_WALL_MS = 3 * MAX_CASE_MS;
/** Resident memory a single hostile image may add (a 4 GiB "allocation" would blow through it). */
export const MAX_RSS_GROWTH = 256 << 20;
/** How much guest data one case reads at most (a hostile image may claim petabytes). */
const MAX_READ_BYTES = 16 << 20;
/** How many block-status extents one case walks at most. */
const MAX_EXTENTS = 5000;
/** How many snapshots one case opens as read-only views (qemu-img info opens none). */
const MAX_SNAPSHOT_VIEWS = 8;
/** Read chunk. */
const CHUNK = 1 << 20;
/** How often resident memory is sampled while a case runs. */
const RSS_SAMPLE_MS = 20;

const quiet = (): void => {};

export const sha256File = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

/** Rewrite a file through `edit`, which mutates the buffer in place or returns a new Buffer. */
export function patchFile(path: string, edit: (b: Buffer) => unknown): void {
  const b = readFileSync(path);
  const r = edit(b);
  writeFileSync(path, Buffer.isBuffer(r) ? r : b);
}

/** qemu-img's verdict on the same bytes (the reference for what is valid). */
export function qemuImgInfo(path: string, format?: string): { ok: boolean; text: string } {
  const r = run('qemu-img', ['info', '-U', ...(format ? ['-f', format] : []), path], { timeoutMs: 20_000 });
  return { ok: r.status === 0, text: (r.status === 0 ? r.stdout : r.stderr).trim() };
}

export interface HostileOutcome {
  /** The BlockError Platter answered with; undefined when everything read fine. */
  error?: BlockError;
  /** Guest bytes read (when the image opened). */
  bytesRead: number;
  /** Wall-clock and CPU milliseconds the case took. */
  ms: number;
  cpuMs: number;
  rssGrowth: number;
  opened: readonly string[];
}

export interface HostileOptions {
  format?: string;
  /** Directories the image may make Platter open (default: the image's own directory). */
  allowedDirs?: string[];
  /** Pass the image as a json:/options spec instead of a filename. */
  spec?: string;
  /** 'info': stop after what `qemu-img info` does (open, info, snapshot list); default 'full'. */
  depth?: 'info' | 'full';
}

/**
 * Do with a hostile image what the fuzz case child does (open read-only, info, snapshot list,
 * read-only check, walk block status and read the data, bounded), and assert the bounds: no
 * exception other than BlockError, time, memory, file unchanged, no file opened outside.
 */
export async function probeHostile(path: string, o: HostileOptions = {}): Promise<HostileOutcome> {
  const before = sha256File(path);
  const watch = watchOpenedFiles(o.allowedDirs ?? [dirname(path)]);
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, RSS_SAMPLE_MS);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let bytesRead = 0;
  let error: BlockError | undefined;
  try {
    const node = await openImage(o.spec ?? path, { readOnly: true, warn: quiet, ...(o.format ? { format: o.format } : {}) });
    try {
      await node.info();
      if (node.impl.snapshots) {
        const list = await node.impl.snapshots.list();
        for (const s of o.depth === 'info' ? [] : list.slice(0, MAX_SNAPSHOT_VIEWS)) {
          const view = await node.impl.snapshots.openView(s.id).catch((e: unknown) => {
            if (e instanceof BlockError) return undefined; // a broken snapshot is refused; enough
            throw e;
          });
          await view?.close();
        }
      }
      if (o.depth !== 'info' && node.impl.check) await node.impl.check(undefined);
      let extents = o.depth === 'info' ? MAX_EXTENTS : 0;
      for (let off = 0; off < node.size && extents < MAX_EXTENTS && bytesRead < MAX_READ_BYTES; extents++) {
        const st = await blockStatusAbove(node, off, node.size - off);
        assert.ok(st.length > 0, `block status made no progress at ${off}`);
        if (st.data || !st.zero) {
          const len = Math.min(st.length, MAX_READ_BYTES - bytesRead);
          for (let p = 0; p < len; p += CHUNK) {
            const n = Math.min(CHUNK, len - p);
            const buf = await node.read(off + p, n);
            assert.equal(buf.length, n, `read returned ${buf.length} bytes, asked ${n}`);
          }
          bytesRead += len;
        }
        off += st.length;
      }
    } finally {
      await node.close();
    }
  } catch (e) {
    if (!(e instanceof BlockError)) throw e; // a crash: the test fails with the real stack
    error = e;
  } finally {
    clearInterval(sampler);
    watch.stop();
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  peak = Math.max(peak, process.memoryUsage.rss());
  const rssGrowth = peak - rss0;
  assert.ok(cpuMs < MAX_CASE_MS, `used ${cpuMs.toFixed(0)} ms of CPU (bound ${MAX_CASE_MS} ms)`);
  assert.ok(ms < MAX_CASE_WALL_MS, `took ${ms.toFixed(0)} ms (bound ${MAX_CASE_WALL_MS} ms)`);
  assert.ok(rssGrowth < MAX_RSS_GROWTH, `resident memory grew by ${(rssGrowth / 2 ** 20).toFixed(0)} MiB`);
  assert.equal(sha256File(path), before, 'the image file changed');
  assert.deepEqual(watch.outside(), [], 'opened files outside the image directory');
  return { error, bytesRead, ms, cpuMs, rssGrowth, opened: [...watch.opened] };
}

/** Assert the outcome is a BlockError of `kind` (any kind if omitted) whose message matches. */
export function assertRefused(out: HostileOutcome, message: RegExp, kinds: readonly string[] = ['InvalidImage', 'Corrupt', 'Unsupported', 'Io']): BlockError {
  assert.ok(out.error, `expected a BlockError matching ${message}, but the image opened and read fine`);
  assert.ok(kinds.includes(out.error.kind), `error kind ${out.error.kind} (${out.error.message}) not one of ${kinds.join(', ')}`);
  assert.match(out.error.message, message);
  return out.error;
}
