// Preview of a destructive operation (#16 item 1): before the GUI's confirm button, what an
// apply/delete snapshot, commit, rebase, shrink, amend, convert over an existing file or repair
// would do: which images of the library depend on the image (their backing chain includes it,
// found from the library scan's backing files, as the snapshot tree's graph model does), how many
// bytes change or move in each layer (from block status and, within a bound, reading the data),
// what becomes unreadable, and, where dependents would read different data, a `danger` with the
// safe alternative. Everything is read-only and with force-share (-U): a preview never writes,
// never takes a write lock, and works while the image is in use.

import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { BlockNode } from '../../block/node.ts';
import { blockStatusAbove } from '../../block/node.ts';
import { openSpec, type JobControl, type JobEnv } from '../../jobs/common.ts';
import { openSnapshotView } from '../../jobs/convert.ts';
import { check as checkJob } from '../../jobs/check.ts';
import { parseResizeSize } from '../../jobs/resize.ts';
import { scanLibrary, type LibraryEntry } from '../library.ts';
import type { PlatterService } from '../service.ts';
import { imageRef, optionsInput, secretInput, sizeInput } from '../schemas.ts';
import { sizeToStr } from '../../shared/sizes.ts';

/** Bytes a preview reads at most to compare data (beyond, the answer is an upper bound). */
export const PREVIEW_READ_LIMIT = 256 << 20;
/** Granularity of "bytes that change": one differing byte counts its whole grain (a cluster). */
const GRAIN = 64 << 10;
/** Bytes per block-status / read step. */
const STEP = 4 << 20;

const withLibrary = {
  /** The library's folders and files: dependents are searched among their images. */
  library: z.array(z.string().min(1)).max(1000).default([]),
  secrets: z.array(secretInput).optional(),
  objects: z.array(z.string()).optional(),
};

export const previewInput = z.object({
  op: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('snapshot-apply'), image: imageRef, snapshot: z.string().min(1) }),
    z.object({ kind: z.literal('snapshot-delete'), image: imageRef, snapshot: z.string().min(1) }),
    z.object({ kind: z.literal('commit'), image: imageRef, base: z.string().optional(), drop: z.boolean().optional() }),
    z.object({ kind: z.literal('rebase'), image: imageRef, backingFile: z.string(), unsafe: z.boolean().optional() }),
    z.object({ kind: z.literal('resize'), image: imageRef, size: sizeInput }),
    z.object({ kind: z.literal('amend'), image: imageRef, options: optionsInput }),
    z.object({ kind: z.literal('convert-overwrite'), target: z.string().min(1) }),
    z.object({ kind: z.literal('repair'), image: imageRef }),
  ]),
  ...withLibrary,
});
export type PreviewInput = z.input<typeof previewInput>;
export type PreviewOp = z.output<typeof previewInput>['op'];

/** What happens to one layer of the chain the operation works on. */
export interface PreviewLayer {
  path: string;
  name: string;
  /** 'written': receives data; 'emptied': its data leaves; 'reverted': returns to a snapshot;
   *  'discarded': data dropped for good; 'replaced': the whole file is rewritten; 'unchanged'. */
  change: 'written' | 'emptied' | 'reverted' | 'discarded' | 'replaced' | 'repaired' | 'unchanged';
  bytes: number;
  /** `bytes` is an upper bound (the data was not all read). */
  estimate?: boolean;
  words: string;
}

/** An image of the library whose backing chain includes the image the operation changes. */
export interface PreviewDependent {
  path: string;
  name: string;
  /** 1: a direct overlay; 2: an overlay of an overlay; ... */
  depth: number;
  effect: 'reads-different-data' | 'unchanged' | 'may-change';
  /** Bytes this dependent would read differently (where it has no data of its own above). */
  bytes?: number;
  words: string;
}

export interface OperationPreview {
  operation: PreviewOp['kind'];
  image: string;
  summary: string;
  layers: PreviewLayer[];
  dependents: PreviewDependent[];
  /** What can no longer be read afterwards, in words. */
  unreadable: string[];
  /** Set when the operation would corrupt (change the data of) other images or lose data. */
  danger?: { message: string; alternative: string };
  notes: string[];
}

/** A byte range [start, end). */
type Range = [number, number];

const sum = (rs: readonly Range[]) => rs.reduce((a, [s, e]) => a + (e - s), 0);
const bytesText = (n: number, estimate?: boolean) => `${estimate ? 'up to ' : ''}${sizeToStr(n)}`;

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

function pushRange(out: Range[], s: number, e: number): void {
  const last = out[out.length - 1];
  if (last && last[1] === s) last[1] = e;
  else out.push([s, e]);
}

/** Library images whose backing chain includes `path`, nearest first (breadth-first). */
export function dependentsOf(entries: readonly LibraryEntry[], path: string): { entry: LibraryEntry; depth: number }[] {
  const overlays = new Map<string, LibraryEntry[]>();
  for (const e of entries) {
    if (!e.fullBackingFile) continue;
    const k = real(e.fullBackingFile);
    overlays.set(k, [...(overlays.get(k) ?? []), e]);
  }
  const out: { entry: LibraryEntry; depth: number }[] = [];
  const seen = new Set<string>([real(path)]);
  let frontier = [real(path)];
  for (let depth = 1; frontier.length && depth < 64; depth++) {
    const next: string[] = [];
    for (const p of frontier) {
      for (const e of overlays.get(p) ?? []) {
        const r = real(e.path);
        if (seen.has(r)) continue;
        seen.add(r);
        out.push({ entry: e, depth });
        next.push(r);
      }
    }
    frontier = next;
  }
  return out;
}

/** Open read-only, without locks that stop anyone (-U). */
/** The file a chain node reads (the protocol node's path). */
const pathOf = (n: BlockNode) => real(n.baseFile?.filename ?? n.filename);

function openRo(filename: string, env: JobEnv, o: { format?: string; noBacking?: boolean } = {}): Promise<BlockNode> {
  return openSpec({ filename, forceShare: true, ...(o.format ? { format: o.format } : {}) }, env, { readOnly: true, ...(o.noBacking ? { noBacking: true } : {}) });
}

async function closeAll(nodes: (BlockNode | undefined)[]): Promise<void> {
  for (const n of nodes) await n?.close().catch(() => {});
}

/**
 * Ranges (at GRAIN granularity) where `a` and `b` read differently, within `within` (default:
 * the whole of the larger). Reads at most PREVIEW_READ_LIMIT bytes of each; past that, every
 * range either has data in counts (estimate: true).
 */
export async function diffRanges(a: BlockNode, b: BlockNode, ctl: JobControl = {}, within?: readonly Range[]): Promise<{ ranges: Range[]; estimate: boolean }> {
  const size = Math.max(a.size, b.size);
  const spans = within ?? [[0, size] as Range];
  const out: Range[] = [];
  let read = 0;
  let estimate = false;
  const readOrZero = async (n: BlockNode, off: number, len: number) => {
    if (off >= n.size) return Buffer.alloc(len);
    const have = Math.min(len, n.size - off);
    const buf = await n.read(off, have);
    return have === len ? buf : Buffer.concat([buf, Buffer.alloc(len - have)]);
  };
  const zeroAt = async (n: BlockNode, off: number, len: number) => {
    if (off >= n.size) return len;
    const st = await blockStatusAbove(n, off, Math.min(len, n.size - off));
    return st.zero ? st.length : 0;
  };
  for (const [s0, e0] of spans) {
    for (let off = s0; off < e0; ) {
      if (ctl.signal?.aborted) throw new Error('cancelled');
      const len = Math.min(STEP, e0 - off);
      // Both read as zeros here: nothing differs.
      const za = await zeroAt(a, off, len);
      const zb = za ? await zeroAt(b, off, Math.min(len, za)) : 0;
      if (za && zb) {
        off += Math.min(za, zb);
        continue;
      }
      if (read >= PREVIEW_READ_LIMIT) {
        estimate = true;
        pushRange(out, off, off + len);
        off += len;
        continue;
      }
      const [x, y] = await Promise.all([readOrZero(a, off, len), readOrZero(b, off, len)]);
      read += len;
      if (!x.equals(y)) {
        for (let p = 0; p < len; p += GRAIN) {
          const q = Math.min(len, p + GRAIN);
          if (!x.subarray(p, q).equals(y.subarray(p, q))) pushRange(out, off + p, off + q);
        }
      }
      off += len;
    }
  }
  return { ranges: out, estimate };
}

/** Ranges of `top` whose data comes from a layer above depth `depth` (0 = top's own layer). */
async function allocatedAbove(top: BlockNode, depth: number, start = 0, end = top.size): Promise<Range[]> {
  const out: Range[] = [];
  for (let off = start; off < end; ) {
    const st = await blockStatusAbove(top, off, Math.min(STEP, end - off));
    if (st.allocated && st.depth < depth) pushRange(out, off, off + st.length);
    off += st.length;
  }
  return out;
}

/** Bytes per layer of `top`'s chain (index = depth) that its reads take from that layer. */
async function bytesPerLayer(top: BlockNode): Promise<number[]> {
  const out: number[] = [];
  for (let off = 0; off < top.size; ) {
    const st = await blockStatusAbove(top, off, Math.min(STEP, top.size - off));
    if (st.allocated) out[st.depth] = (out[st.depth] ?? 0) + st.length;
    off += st.length;
  }
  return out;
}

/** How many bytes of `ranges` (changes in `image`) a dependent reads through to `image`:
 *  those its own layers above `image` do not cover. */
async function exposure(dep: LibraryEntry, depth: number, ranges: readonly Range[], env: JobEnv): Promise<number> {
  const node = await openRo(dep.path, env);
  try {
    let n = 0;
    for (const [s, e] of ranges) {
      const end = Math.min(e, node.size);
      const covered = s < end ? sum(await allocatedAbove(node, depth, s, end)) : 0;
      n += Math.max(0, end - s - covered);
    }
    return n;
  } finally {
    await node.close();
  }
}

/** Fill in each dependent's effect when `image` changes in `ranges`. */
async function dependentEffects(deps: { entry: LibraryEntry; depth: number }[], ranges: readonly Range[], env: JobEnv, words: (n: number) => string): Promise<PreviewDependent[]> {
  const out: PreviewDependent[] = [];
  for (const { entry, depth } of deps) {
    const base = { path: entry.path, name: entry.name, depth };
    if (!ranges.length) {
      out.push({ ...base, effect: 'unchanged', bytes: 0, words: 'reads the same data as before' });
      continue;
    }
    try {
      const n = await exposure(entry, depth, ranges, env);
      out.push({ ...base, effect: n ? 'reads-different-data' : 'unchanged', bytes: n, words: n ? words(n) : 'has its own data wherever the image changes: reads the same as before' });
    } catch (e) {
      out.push({ ...base, effect: 'may-change', words: `could not be read to tell (${(e as Error).message})` });
    }
  }
  return out;
}

const names = (ds: readonly PreviewDependent[]) => ds.map((d) => d.name).join(', ');

export async function previewOperation(service: PlatterService, input: z.output<typeof previewInput>, env: JobEnv, ctl: JobControl = {}): Promise<OperationPreview> {
  const op = input.op;
  const imagePath = resolve(op.kind === 'convert-overwrite' ? op.target : op.image.filename);
  const entries = input.library.length ? await scanLibrary(service, { paths: input.library, recursive: false }) : [];
  // The image's own directory too: overlays next to it are dependents even if not added.
  const extra = entries.some((e) => e.dir === dirname(imagePath)) ? [] : await scanLibrary(service, { paths: [dirname(imagePath)] }).catch(() => []);
  const deps = dependentsOf([...entries, ...extra], imagePath);
  const name = basename(imagePath);
  const format = op.kind === 'convert-overwrite' ? undefined : op.image.format;
  const p: OperationPreview = { operation: op.kind, image: imagePath, summary: '', layers: [], dependents: [], unreadable: [], notes: [] };

  switch (op.kind) {
    case 'snapshot-apply':
    case 'snapshot-delete': {
      const node = await openRo(imagePath, env, { ...(format ? { format } : {}), noBacking: true });
      let view: BlockNode | undefined;
      try {
        view = await openSnapshotView(node, op.snapshot);
        const listed = (await node.snapshots?.list())?.find((x) => x.id === op.snapshot) ?? (await node.snapshots?.list())?.find((x) => x.name === op.snapshot);
        const snap = listed?.name || op.snapshot;
        const d = await diffRanges(node, view, ctl);
        const n = sum(d.ranges);
        if (op.kind === 'snapshot-apply') {
          p.summary = `${name} returns to snapshot "${snap}": ${bytesText(n, d.estimate)} of its data change.`;
          p.layers.push({ path: imagePath, name, change: 'reverted', bytes: n, ...(d.estimate ? { estimate: true } : {}), words: `${bytesText(n, d.estimate)} differ between the snapshot and the current state and are reverted` });
          if (n) p.unreadable.push(`the current state of ${name} (${bytesText(n, d.estimate)} written since the snapshot), unless another snapshot holds it`);
          p.dependents = await dependentEffects(deps, d.ranges, env, (b) => `reads different data in ${sizeToStr(b)} that it takes from ${name}: its contents change under it`);
          const hit = p.dependents.filter((x) => x.effect !== 'unchanged');
          if (hit.length) {
            p.danger = {
              message: `${hit.length} image${hit.length > 1 ? 's' : ''} built on the current state of ${name} (${names(hit)}) would read different data afterwards: their file systems would be corrupted.`,
              alternative: `Keep ${name} as it is: copy the snapshot into a new image (Convert with snapshot "${snap}") and create a new overlay on that instead, or commit the overlays first.`,
            };
          }
        } else {
          p.summary = `Snapshot "${snap}" of ${name} is deleted; the current state is kept.`;
          p.layers.push({ path: imagePath, name, change: 'discarded', bytes: n, ...(d.estimate ? { estimate: true } : {}), words: `${bytesText(n, d.estimate)} exist only in the snapshot and are freed` });
          p.unreadable.push(`snapshot "${snap}" (${bytesText(n, d.estimate)} of data only it holds)`);
          p.dependents = deps.map(({ entry, depth }) => ({ path: entry.path, name: entry.name, depth, effect: 'unchanged', bytes: 0, words: 'reads the current state, which stays as it is' }));
          p.notes.push('Deleting a snapshot leaves the current state unchanged, so images built on it keep reading the same data.');
        }
      } finally {
        await closeAll([view, node]);
      }
      break;
    }

    case 'commit': {
      const top = await openRo(imagePath, env, format ? { format } : {});
      try {
        const chain = [...top.chain()];
        if (chain.length < 2) throw new Error('Image does not have a backing file');
        let baseDepth = 1;
        if (op.base) {
          const want = real(resolve(dirname(imagePath), op.base));
          const i = chain.findIndex((n, k) => k > 0 && pathOf(n) === want);
          if (i > 0) baseDepth = i;
        }
        const baseNode = chain[baseDepth]!;
        const basePath = pathOf(baseNode);
        const moved = await allocatedAbove(top, baseDepth);
        const perLayer = await bytesPerLayer(top);
        const n = sum(moved);
        const emptied = !op.drop && !op.base;
        p.summary = `${sizeToStr(n)} move from ${chain.slice(0, baseDepth).map((c) => basename(pathOf(c))).join(' + ')} into ${basename(basePath)}.`;
        for (let k = 0; k < baseDepth; k++) {
          const c = chain[k]!;
          const cp = pathOf(c);
          const b = perLayer[k] ?? 0;
          p.layers.push({ path: cp, name: basename(cp), change: k === 0 && emptied ? 'emptied' : 'unchanged', bytes: b, words: k === 0 && emptied ? `its ${sizeToStr(b)} of data move into ${basename(basePath)} and it is emptied` : `${sizeToStr(b)} of its data are copied into ${basename(basePath)}` });
        }
        p.layers.push({ path: basePath, name: basename(basePath), change: 'written', bytes: n, words: `receives ${sizeToStr(n)}, overwriting what it held there` });
        if (n) p.unreadable.push(`what ${basename(basePath)} held in the ${sizeToStr(n)} it receives (the base's old data there is overwritten)`);
        // Dependents of the base outside the committed chain read its new data.
        const inChain = new Set(chain.slice(0, baseDepth).map(pathOf));
        const baseDeps = dependentsOf([...entries, ...extra], basePath);
        const topDeps = new Set(dependentsOf([...entries, ...extra], imagePath).map((d) => real(d.entry.path)));
        const others = baseDeps.filter((d) => !inChain.has(real(d.entry.path)) && !topDeps.has(real(d.entry.path)));
        const hitOthers = await dependentEffects(others, moved, env, (b) => `also uses ${basename(basePath)} and reads ${sizeToStr(b)} of ${name}'s data in place of its own base's`);
        p.dependents = [
          ...deps.map(({ entry, depth }) => ({ path: entry.path, name: entry.name, depth, effect: 'unchanged' as const, bytes: 0, words: `built on ${name}: reads the same data after the commit` })),
          ...hitOthers,
        ];
        const hit = hitOthers.filter((x) => x.effect !== 'unchanged');
        if (hit.length) {
          p.danger = {
            message: `${basename(basePath)} is shared: ${names(hit)} also use${hit.length > 1 ? '' : 's'} it and would read ${name}'s changes in place of the data they were built on.`,
            alternative: `Commit those overlays first, or leave ${basename(basePath)} untouched and convert ${name} into a standalone image instead.`,
          };
        }
      } finally {
        await top.close();
      }
      break;
    }

    case 'rebase': {
      const img = await openRo(imagePath, env, format ? { format } : {});
      let nb: BlockNode | undefined;
      try {
        const newPath = op.backingFile ? resolve(dirname(imagePath), op.backingFile) : '';
        nb = newPath ? await openRo(newPath, env) : undefined;
        const own = await allocatedAbove(img, 1);
        // Ranges the image takes from its backing chain (it has no data of its own there).
        const through: Range[] = [];
        let at = 0;
        for (const [s, e] of own) {
          if (s > at) through.push([at, s]);
          at = e;
        }
        if (at < img.size) through.push([at, img.size]);
        const other = nb ?? (await openRo(imagePath, env, { ...(format ? { format } : {}), noBacking: true }));
        let d: { ranges: Range[]; estimate: boolean };
        try {
          d = await diffRanges(img, other, ctl, through);
        } finally {
          if (!nb) await other.close();
        }
        const n = sum(d.ranges);
        const target = op.backingFile ? basename(op.backingFile) : 'no backing file';
        if (op.unsafe) {
          p.summary = `Only the backing file name changes (to ${target}); ${bytesText(n, d.estimate)} then read differently.`;
          p.layers.push({ path: imagePath, name, change: n ? 'replaced' : 'unchanged', bytes: n, ...(d.estimate ? { estimate: true } : {}), words: `reads ${bytesText(n, d.estimate)} differently: the new backing holds other data where ${name} has none of its own` });
          p.dependents = await dependentEffects(deps, d.ranges, env, (b) => `reads ${sizeToStr(b)} differently through ${name}`);
          if (n) {
            p.unreadable.push(`what ${name} read from its old backing file in ${bytesText(n, d.estimate)}`);
            p.danger = {
              message: `The new backing file differs from the old one where ${name} has no data of its own: ${name}${deps.length ? ` and ${deps.length} image(s) built on it` : ''} would read different data (corruption).`,
              alternative: 'Use a safe rebase (without -u): it copies the differing ranges into the image first, so nothing reads differently.',
            };
          }
        } else {
          p.summary = `${bytesText(n, d.estimate)} are copied into ${name} so it reads the same on ${target}.`;
          p.layers.push({ path: imagePath, name, change: 'written', bytes: n, ...(d.estimate ? { estimate: true } : {}), words: `receives ${bytesText(n, d.estimate)} where the old and new backing files differ` });
          p.dependents = deps.map(({ entry, depth }) => ({ path: entry.path, name: entry.name, depth, effect: 'unchanged', bytes: 0, words: `reads ${name}, whose contents a safe rebase keeps` }));
        }
        const old = img.backing ? pathOf(img.backing) : undefined;
        if (old) p.notes.push(`${basename(old)} is no longer used by ${name} (it is not changed).`);
      } finally {
        await closeAll([nb, img]);
      }
      break;
    }

    case 'resize': {
      const img = await openRo(imagePath, env, format ? { format } : {});
      try {
        const r = parseResizeSize(op.size);
        const newSize = r.relative === 0 ? r.bytes : img.size + r.relative * r.bytes;
        if (newSize >= img.size) {
          p.summary = `${name} grows from ${sizeToStr(img.size)} to ${sizeToStr(newSize)}; no data changes.`;
          p.layers.push({ path: imagePath, name, change: 'unchanged', bytes: 0, words: 'keeps all its data; the new space reads as zeros' });
          p.dependents = deps.map(({ entry, depth }) => ({ path: entry.path, name: entry.name, depth, effect: 'unchanged', bytes: 0, words: 'reads the same data' }));
          break;
        }
        const own = await allocatedAbove(img, 1, newSize, img.size);
        const all = await allocatedAbove(img, 1 << 20, newSize, img.size);
        const lost = sum(own);
        p.summary = `${name} shrinks from ${sizeToStr(img.size)} to ${sizeToStr(newSize)}: ${sizeToStr(lost)} of its data past the new end are discarded.`;
        p.layers.push({ path: imagePath, name, change: 'discarded', bytes: lost, words: `${sizeToStr(lost)} of data beyond ${sizeToStr(newSize)} are discarded` });
        p.unreadable.push(`everything past ${sizeToStr(newSize)} (${sizeToStr(sum(all))} of data there, with what the backing chain supplies)`);
        p.dependents = await dependentEffects(deps, [[newSize, img.size]], env, (b) => `reads zeros in ${sizeToStr(b)} past the new end of ${name}, where it read data`);
        const hit = p.dependents.filter((x) => x.effect !== 'unchanged');
        if (lost || hit.length) {
          p.danger = {
            message: `Shrinking discards data${hit.length ? ` and changes what ${names(hit)} read${hit.length > 1 ? '' : 's'}` : ''}; a partition or file system that reaches past ${sizeToStr(newSize)} is cut off.`,
            alternative: 'Shrink the partitions and file systems inside the guest first (or convert the data into a new, smaller image) and keep a copy.',
          };
        }
      } finally {
        await img.close();
      }
      break;
    }

    case 'amend': {
      const opts = typeof op.options === 'string' ? Object.fromEntries(op.options.split(',').filter(Boolean).map((kv) => [kv.split('=')[0]!, kv.slice(kv.indexOf('=') + 1)])) : op.options;
      const keys = Object.keys(opts);
      const secret = (k: string) => /secret|key/.test(k);
      p.summary = `${name}'s metadata is rewritten in place: ${keys.map((k) => (secret(k) ? k : `${k}=${String(opts[k])}`)).join(', ') || '(no options)'}.`;
      p.layers.push({ path: imagePath, name, change: 'unchanged', bytes: 0, words: 'the guest data stays; headers and tables are rewritten' });
      const risky = keys.filter((k) => k === 'size' || k === 'backing_file' || k === 'backing_fmt' || k === 'data_file');
      p.dependents = deps.map(({ entry, depth }) => ({ path: entry.path, name: entry.name, depth, effect: risky.length ? 'may-change' : 'unchanged', words: risky.length ? `may read differently: ${risky.join(', ')} change what ${name} reads` : 'reads the same data (amend keeps the guest data)' }));
      if (keys.some((k) => k.startsWith('encrypt.') || ['state', 'keyslot', 'new-secret', 'old-secret'].includes(k))) p.notes.push('Key slot changes alter which passphrases open the image; the data stays the same.');
      if (opts.compat !== undefined) p.notes.push('Changing compat rewrites the header and refcounts; an interrupted amend can leave the image unreadable, so keep a copy.');
      if (risky.length) {
        p.danger = {
          message: `${risky.join(', ')} change what ${name} reads${deps.length ? `, and so what ${deps.length} image(s) built on it read` : ''}.`,
          alternative: risky.includes('size') ? 'Use Resize (it previews what a shrink discards).' : 'Use a safe rebase to change the backing file: it keeps the data the same.',
        };
      }
      break;
    }

    case 'convert-overwrite': {
      const entry = [...entries, ...extra].find((e) => real(e.path) === real(imagePath));
      if (!existsSync(imagePath)) {
        p.summary = `${name} is a new file: nothing is replaced.`;
        break;
      }
      const held = entry?.actualSize ?? 0;
      p.summary = `${name} exists: converting over it replaces its whole contents.`;
      p.layers.push({ path: imagePath, name, change: 'replaced', bytes: held, words: `its ${sizeToStr(held)} on disk are replaced by the converted data` });
      p.unreadable.push(`everything ${name} holds now${entry?.snapshots.length ? ` (and its ${entry.snapshots.length} snapshot(s))` : ''}`);
      p.dependents = deps.map(({ entry: e, depth }) => ({ path: e.path, name: e.name, depth, effect: 'reads-different-data', words: `built on ${name}: would read the new data as its base (corrupted)` }));
      if (deps.length) {
        p.danger = {
          message: `${names(p.dependents)} ${deps.length > 1 ? 'are' : 'is'} built on ${name}: after it is replaced they read a different disk under their own data.`,
          alternative: 'Choose a new file name for the target, or commit or convert those overlays first.',
        };
      } else if (held) {
        p.notes.push('Nothing in the library depends on it; its current contents are lost.');
      }
      break;
    }

    case 'repair': {
      const r = await checkJob({ image: { filename: imagePath, forceShare: true, ...(format ? { format } : {}) } }, env, ctl);
      const cluster = (entries.find((e) => real(e.path) === real(imagePath)) ?? extra.find((e) => real(e.path) === real(imagePath)))?.clusterSize ?? 65536;
      const corruptions = r.corruptions ?? 0;
      const leaks = r.leaks ?? 0;
      p.summary = r.failed ? `The check cannot complete (${r.failed}): repair may not be able to fix ${name}.` : `${corruptions} corruption(s) and ${leaks} leaked cluster(s) to repair in ${name}.`;
      p.layers.push({ path: imagePath, name, change: corruptions || leaks ? 'repaired' : 'unchanged', bytes: (corruptions + leaks) * cluster, estimate: true, words: `metadata of up to ${corruptions + leaks} cluster(s) is rewritten; leaked clusters are freed` });
      if (corruptions) p.unreadable.push('data in clusters the repair finds referenced wrongly may read as zeros afterwards');
      p.dependents = deps.map(({ entry, depth }) => ({ path: entry.path, name: entry.name, depth, effect: corruptions ? 'may-change' : 'unchanged', words: corruptions ? `reads through ${name}: data the repair changes changes for it too` : 'reads the same data (freeing leaks does not change data)' }));
      if (corruptions || r.failed) {
        p.danger = {
          message: `Repairing corruptions rewrites ${name}'s tables; what cannot be fixed is lost${deps.length ? `, also for ${deps.length} image(s) built on it` : ''}.`,
          alternative: 'Repair with a backup (the default here): the file is copied first; if the repair cannot fix it, salvage the readable data into a new image.',
        };
      }
      p.notes.push(`Check (read-only) found: ${r['check-errors']} check error(s), ${corruptions} corruption(s), ${leaks} leak(s).`);
      break;
    }
  }
  return p;
}
