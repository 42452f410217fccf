// The `quorum` driver (QEMU block/quorum.c): several children that should hold the same bytes.
// A read asks every child and returns the version at least `vote-threshold` of them agree on
// (read-pattern=quorum), or the first child that answers (read-pattern=fifo); a write goes to
// every child and succeeds when `vote-threshold` of them took it. Options: children (a list of
// child options), vote-threshold, read-pattern, rewrite-corrupted (write the winning version
// back over the children that disagreed), blkverify (two children that must always agree).
// There is no single file below a quorum, so names relative to it cannot be resolved
// (BlockNode.baseFile: "cannot determine actual path").

import { BlockError, invalidArgument, unsupported } from '../../errors.ts';
import { blockStatusAbove, type BlockNode } from '../../block/node.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, WriteFlags, ZeroFlags } from '../../block/types.ts';
import { PERM_RESIZE, PERM_WRITE } from '../../block/types.ts';
import { listItems, optBool, optString, type OptionsTree } from '../../block/options-tree.ts';

/** Options quorum itself reads. */
const OWN_OPTIONS = new Set(['children', 'vote-threshold', 'read-pattern', 'rewrite-corrupted', 'blkverify', 'cache']);

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

async function settle<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The error most children failed with (QEMU's quorum_vote_error; first seen wins a tie). */
function votedError(outcomes: Outcome<unknown>[]): unknown {
  const counts = new Map<string, { error: unknown; n: number }>();
  for (const o of outcomes) {
    if (o.ok) continue;
    const key = o.error instanceof Error ? o.error.message : String(o.error);
    const c = counts.get(key);
    if (c) c.n++;
    else counts.set(key, { error: o.error, n: 1 });
  }
  let best: { error: unknown; n: number } | undefined;
  for (const c of counts.values()) if (!best || c.n > best.n) best = c;
  return best?.error ?? new BlockError('Io', 'Input/output error');
}

class QuorumNode implements NodeImpl {
  readonly #children: BlockNode[];
  readonly #threshold: number;
  readonly #fifo: boolean;
  readonly #rewrite: boolean;
  readonly #blkverify: boolean;

  constructor(children: BlockNode[], threshold: number, fifo: boolean, rewrite: boolean, blkverify: boolean) {
    this.#children = children;
    this.#threshold = threshold;
    this.#fifo = fifo;
    this.#rewrite = rewrite;
    this.#blkverify = blkverify;
  }

  get size(): number {
    return this.#children[0]!.size;
  }
  get alignment(): number {
    return Math.max(...this.#children.map((c) => c.alignment));
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (this.#fifo) {
      let last: unknown;
      for (const c of this.#children) {
        try {
          return await c.read(offset, length);
        } catch (e) {
          last = e;
        }
      }
      throw last;
    }
    const outcomes = await Promise.all(this.#children.map((c) => settle(c.read(offset, length))));
    const good = outcomes.filter((o): o is { ok: true; value: Buffer } => o.ok).length;
    if (good < this.#threshold) throw votedError(outcomes);
    // Versions by content, in child order; the one with most votes wins.
    const versions: { data: Buffer; children: number[] }[] = [];
    outcomes.forEach((o, i) => {
      if (!o.ok) return;
      const v = versions.find((x) => x.data.equals(o.value));
      if (v) v.children.push(i);
      else versions.push({ data: o.value, children: [i] });
    });
    if (versions.length > 1 && this.#blkverify) {
      const a = versions[0]!.data;
      const b = versions[1]!.data;
      let at = 0;
      while (a[at] === b[at]) at++;
      throw new BlockError('Io', `quorum: offset=${offset} bytes=${length} contents mismatch at offset ${offset + at}`, { offset: offset + at });
    }
    let winner = versions[0]!;
    for (const v of versions) if (v.children.length > winner.children.length) winner = v;
    if (winner.children.length < this.#threshold) throw new BlockError('Io', 'Input/output error', { offset });
    if (this.#rewrite && versions.length > 1) {
      // A correction attempt: failures change nothing about this read (QEMU ignores them too).
      const bad = versions.filter((v) => v !== winner).flatMap((v) => v.children);
      await Promise.all(bad.map((i) => this.#children[i]!.write(offset, winner.data).catch(() => {})));
    }
    return winner.data;
  }

  /** Run `op` on every child; enough successes (vote-threshold) make it succeed. */
  async #onAll(op: (c: BlockNode) => Promise<void>): Promise<void> {
    const outcomes = await Promise.all(this.#children.map((c) => settle(op(c))));
    if (outcomes.filter((o) => o.ok).length < this.#threshold) throw votedError(outcomes);
  }

  write(offset: number, data: Buffer, flags: WriteFlags): Promise<void> {
    return this.#onAll((c) => c.write(offset, data, flags));
  }

  writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    return this.#onAll((c) => c.writeZeroes(offset, length, flags));
  }

  flush(): Promise<void> {
    return this.#onAll((c) => c.flush());
  }

  /** Zero where every child says zero (the shortest such run), else data (the longest run):
   *  the children may store the same bytes differently (QEMU's quorum_co_block_status). */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    let zeroLen = length;
    let dataLen = 0;
    for (const c of this.#children) {
      let st;
      try {
        st = await blockStatusAbove(c, offset, length);
      } catch {
        dataLen = length;
        break;
      }
      if (st.zero) zeroLen = Math.min(zeroLen, st.length);
      else dataLen = Math.max(dataLen, st.length);
    }
    return dataLen ? { offset, length: dataLen, data: true, zero: false, allocated: true } : { offset, length: zeroLen, data: false, zero: true, allocated: true };
  }

  async close(): Promise<void> {}
}

/** The children option: a list, or numbered keys from dotted options (children.0.driver=...). */
function childList(v: unknown): (OptionsTree | string)[] {
  if (v === undefined) return [];
  const items = listItems(v);
  if (!items) throw invalidArgument('Option children is not a valid array');
  return items as (OptionsTree | string)[];
}

export const quorumDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'quorum',
  description: 'Several copies of one disk, read by majority vote (QEMU quorum)',
  createOptions: [],
  async open(ctx) {
    const options = ctx.options;
    for (const k of Object.keys(options)) {
      if (!OWN_OPTIONS.has(k)) throw invalidArgument(`Block format 'quorum' does not support the option '${k}'`);
    }
    if (!ctx.openChild) throw unsupported('quorum needs the generic layer to open its children');
    const specs = childList(options['children']);
    if (specs.length < 1) throw invalidArgument('Number of provided children must be 1 or more');
    const thresholdText = optString(options, 'vote-threshold') ?? '0';
    const threshold = /^\d+$/.test(thresholdText) ? Number(thresholdText) : NaN;
    if (!(threshold >= 1)) throw invalidArgument("Parameter 'vote-threshold' expects a value >= 1");
    if (threshold > specs.length) throw invalidArgument('threshold may not exceed children count');
    const pattern = optString(options, 'read-pattern') ?? 'quorum';
    if (pattern !== 'quorum' && pattern !== 'fifo') throw invalidArgument('Please set read-pattern as fifo or quorum');
    const fifo = pattern === 'fifo';
    const blkverify = !fifo && (optBool(options, 'blkverify') ?? false);
    if (blkverify && (specs.length !== 2 || threshold !== 2)) throw invalidArgument('blkverify=on can only be set if there are exactly two files and vote-threshold is 2');
    const rewrite = !fifo && (optBool(options, 'rewrite-corrupted') ?? false);
    if (rewrite && blkverify) throw invalidArgument('rewrite-corrupted=on cannot be used with blkverify=on');
    const children: BlockNode[] = [];
    for (const spec of specs) {
      if (typeof spec === 'string') throw unsupported(`quorum: child '${spec}' names a node; Platter takes children as options (children.0.driver=..., children.0.filename=...)`);
      // Children may not change under the quorum's feet: nobody else writes or resizes them.
      children.push(await ctx.openChild(spec, 'child', { perm: rewrite && !ctx.readOnly ? PERM_WRITE : 0, unshare: PERM_WRITE | PERM_RESIZE }));
    }
    // All children hold one disk: they must be the same size (QEMU's quorum_getlength).
    if (children.some((c) => c.size !== children[0]!.size)) throw new BlockError('Io', 'Could not refresh total sector count: Input/output error', {}, { code: 'Worded' });
    return new QuorumNode(children, threshold, fifo, rewrite && !ctx.readOnly, blkverify);
  },
};
