// The `quorum` driver (QEMU block/quorum.c) in the protocol position: one node over several
// children holding the same data. Reads ask every child and return the version at least
// vote-threshold of them agree on (read-pattern=quorum), or the first child that answers
// (read-pattern=fifo); writes go to every child and succeed when at least vote-threshold do.
// All children must have the same length. Options: children (a list of node options),
// vote-threshold, read-pattern, rewrite-corrupted and blkverify (accepted; Platter repairs
// nothing and compares only by voting).

import { BlockError, invalidArgument } from '../../errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, WriteFlags } from '../../block/types.ts';
import { optBool, optString, type OptionsTree } from '../../block/options-tree.ts';

const KNOWN = new Set(['children', 'vote-threshold', 'read-pattern', 'rewrite-corrupted', 'blkverify', 'filename']);

function eio(op: string): BlockError {
  return new BlockError('Io', 'Input/output error', { op });
}

class QuorumNode implements NodeImpl {
  readonly #children: BlockNode[];
  readonly #threshold: number;
  readonly #fifo: boolean;

  constructor(children: BlockNode[], threshold: number, fifo: boolean) {
    this.#children = children;
    this.#threshold = threshold;
    this.#fifo = fifo;
  }

  /** quorum_getlength: every child must be as long as the first. */
  get size(): number {
    const first = this.#children[0]!.size;
    return this.#children.every((c) => c.size === first) ? first : 0;
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
      throw last ?? eio('read');
    }
    const versions: { data: Buffer; votes: number }[] = [];
    const results = await Promise.allSettled(this.#children.map((c) => c.read(offset, length)));
    for (const r of results) {
      if (r.status !== 'fulfilled') continue;
      const v = versions.find((x) => x.data.equals(r.value));
      if (v) v.votes++;
      else versions.push({ data: r.value, votes: 1 });
    }
    const winner = versions.sort((a, b) => b.votes - a.votes)[0];
    if (!winner || winner.votes < this.#threshold) throw eio('read');
    return winner.data;
  }

  async write(offset: number, data: Buffer, flags: WriteFlags): Promise<void> {
    const results = await Promise.allSettled(this.#children.map((c) => c.write(offset, data, flags)));
    if (results.filter((r) => r.status === 'fulfilled').length < this.#threshold) {
      const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
      throw failed?.reason ?? eio('write');
    }
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    return { offset, length, data: true, zero: false, allocated: true };
  }

  async flush(): Promise<void> {
    for (const c of this.#children) await c.flush();
  }

  async close(): Promise<void> {
    for (const c of this.#children) await c.close();
  }
}

export const quorumDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'quorum',
  description: 'Several copies of one disk, read by vote (for tests and replication)',
  createOptions: [],
  async open(ctx) {
    for (const k of Object.keys(ctx.options)) if (!KNOWN.has(k)) throw invalidArgument(`Invalid parameter '${k}'`);
    const list = ctx.options['children'];
    if (!Array.isArray(list) || list.length === 0) throw invalidArgument('Number of provided children must be 1 or more');
    const thresholdText = optString(ctx.options, 'vote-threshold');
    if (thresholdText === undefined) throw invalidArgument("Parameter 'vote-threshold' is missing");
    const threshold = Number(thresholdText);
    if (!Number.isInteger(threshold) || threshold < 1) throw invalidArgument("Parameter 'vote-threshold' must be >= 1");
    if (threshold > list.length) throw invalidArgument('threshold may not exceed children count');
    const pattern = optString(ctx.options, 'read-pattern') ?? 'quorum';
    if (pattern !== 'quorum' && pattern !== 'fifo') throw invalidArgument(`Parameter 'read-pattern' does not accept value '${pattern}'`);
    optBool(ctx.options, 'rewrite-corrupted');
    optBool(ctx.options, 'blkverify');
    if (!ctx.openChild) throw invalidArgument('quorum needs child nodes');
    const children: BlockNode[] = [];
    try {
      for (const c of list) {
        if (typeof c !== 'object' || c === null || Array.isArray(c)) throw invalidArgument("Parameter 'children' expects a list of node options");
        children.push(await ctx.openChild(c as OptionsTree));
      }
    } catch (e) {
      for (const c of children) await c.close().catch(() => {});
      throw e;
    }
    return new QuorumNode(children, threshold, pattern === 'fifo');
  },
};
