// The open blkdebug node (QEMU block/blkdebug.c blkdebug_co_*): every request asks the rules
// first (rules.ts) and, unless one fails it with an errno, goes to the child unchanged; block
// status and flushes too. Its limits shape the requests it sees: align and max-transfer through
// the generic layer (alignment, maxTransfer), write-zeroes below opt-write-zero become writes,
// max-write-zero and max-discard split requests, discards below the alignment are dropped.
// opt-discard is checked as QEMU checks it but changes nothing (Platter's generic layer does
// not align discards).

import { fromSystemError, invalidArgument, type BlockErrorContext } from '../../errors.ts';
import { errnoError } from '../../host/errno.ts';
import { blockStatusAbove, type BlockNode } from '../../block/node.ts';
import type { BlockStatus, NodeImpl, TruncateOptions, WriteFlags, ZeroFlags } from '../../block/types.ts';
import type { DebugEvent, DebugIoType } from '../../block/debug-events.ts';
import type { OptionsTree } from '../../block/options-tree.ts';
import { parseSizeText } from '../../block/options-schema.ts';
import { isPowerOfTwo } from '../../util/checked.ts';
import type { BlkdebugRules } from './rules.ts';

/** QEMU caps every limit below INT_MAX (they are ints in BlockLimits). */
const LIMIT_MAX = 2 ** 31 - 1;
/** Largest zero buffer written when a write-zeroes request is below opt-write-zero. */
const ZERO_FALLBACK_CHUNK = 1 << 20;

/** A size option (QEMU_OPT_SIZE), 0 when absent. */
function sizeOption(options: OptionsTree, key: string): number {
  const v = options[key];
  if (v === undefined) return 0;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? parseSizeText(v) : undefined;
  if (n === undefined || !Number.isSafeInteger(n) || n < 0) throw invalidArgument(`Parameter '${key}' expects a non-negative number below 2^64`);
  return n;
}

/** blkdebug's request limits (QEMU blkdebug_open's checks and messages). */
export interface Limits {
  align: number;
  maxTransfer: number;
  optWriteZero: number;
  maxWriteZero: number;
  optDiscard: number;
  maxDiscard: number;
}

export function readLimits(options: OptionsTree, childAlign: number): Limits {
  const l: Limits = {
    align: sizeOption(options, 'align'),
    maxTransfer: sizeOption(options, 'max-transfer'),
    optWriteZero: sizeOption(options, 'opt-write-zero'),
    maxWriteZero: sizeOption(options, 'max-write-zero'),
    optDiscard: sizeOption(options, 'opt-discard'),
    maxDiscard: sizeOption(options, 'max-discard'),
  };
  const fail = (key: string, v: number) => invalidArgument(`Cannot meet constraints with ${key} ${v}`);
  if (l.align && (l.align >= LIMIT_MAX || !isPowerOfTwo(l.align))) throw fail('align', l.align);
  const align = Math.max(l.align, childAlign);
  const check = (key: string, v: number, unit: number) => {
    if (v && (v >= LIMIT_MAX || v % unit !== 0)) throw fail(key, v);
  };
  check('max-transfer', l.maxTransfer, align);
  check('opt-write-zero', l.optWriteZero, align);
  check('max-write-zero', l.maxWriteZero, Math.max(l.optWriteZero, align));
  check('opt-discard', l.optDiscard, align);
  check('max-discard', l.maxDiscard, Math.max(l.optDiscard, align));
  return l;
}

export class BlkdebugNode implements NodeImpl {
  readonly #child: BlockNode;
  readonly #rules: BlkdebugRules;
  readonly #limits: Limits;
  readonly #name: string;

  constructor(child: BlockNode, rules: BlkdebugRules, limits: Limits, name: string) {
    this.#child = child;
    this.#rules = rules;
    this.#limits = limits;
    this.#name = name;
  }

  get size(): number {
    return this.#child.size;
  }
  get alignment(): number {
    return Math.max(this.#limits.align, this.#child.alignment);
  }
  get maxTransfer(): number | undefined {
    return this.#limits.maxTransfer || undefined;
  }
  get growable(): boolean {
    return this.#child.growable;
  }
  get noFlush(): boolean {
    return this.#child.noFlush;
  }
  hasZeroInit(): boolean {
    return this.#child.hasZeroInit;
  }

  debugEvent(event: DebugEvent): void {
    this.#rules.event(event);
  }

  /** Fail the request if an active rule hits it (QEMU's rule_check), with that errno's text. */
  #check(offset: number, bytes: number, ioType: DebugIoType): void {
    const errno = this.#rules.check(offset, bytes, ioType);
    if (errno === 0) return;
    const ctx: BlockErrorContext = { path: this.#name, op: ioType, ...(bytes > 0 ? { offset } : {}), node: 'blkdebug' };
    throw fromSystemError(errnoError(errno, 'blkdebug'), ctx);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.#check(offset, length, 'read');
    return this.#child.read(offset, length);
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    this.#check(offset, length, 'read');
    await this.#child.readInto(offset, into.subarray(0, length));
  }

  async write(offset: number, data: Buffer, flags: WriteFlags): Promise<void> {
    this.#check(offset, data.length, 'write');
    await this.#child.write(offset, data, flags);
  }

  async writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    const l = this.#limits;
    // Below the preferred alignment QEMU's blkdebug declines (ENOTSUP), so the block layer
    // writes zeros instead: those are writes, and write rules hit them.
    if (length < Math.max(this.alignment, l.optWriteZero)) {
      for (let p = offset; p < offset + length; p += ZERO_FALLBACK_CHUNK) await this.write(p, Buffer.alloc(Math.min(ZERO_FALLBACK_CHUNK, offset + length - p)), {});
      return;
    }
    const max = l.maxWriteZero || length;
    for (let p = offset; p < offset + length; p += max) {
      const n = Math.min(max, offset + length - p);
      this.#check(p, n, 'write-zeroes');
      await this.#child.writeZeroes(p, n, flags);
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    // Discard is advisory: a request smaller than the alignment is dropped (QEMU's ENOTSUP).
    if (length < this.alignment) return;
    const max = this.#limits.maxDiscard || length;
    for (let p = offset; p < offset + length; p += max) {
      const n = Math.min(max, offset + length - p);
      this.#check(p, n, 'discard');
      await this.#child.discard(p, n);
    }
  }

  /** The child's status, after the block-status rules had their say (QEMU answers
   *  BDRV_BLOCK_RAW: ask the child). Never a short cut past this node for the data
   *  (BlockStatus.hostNode), so reads of it meet the read rules. */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    this.#check(offset, length, 'block-status');
    // Through the child's backing chain, as QEMU's block status descends through a filter.
    const { hostNode: _past, depth: _d, node: _n, ...through } = await blockStatusAbove(this.#child, offset, length);
    return through;
  }

  /** Flush rules fire before the generic layer flushes the child. */
  async flush(): Promise<void> {
    this.#check(0, 0, 'flush');
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    await this.#child.truncate(size, { ...options, shrink: true });
  }

  async close(): Promise<void> {}
}

