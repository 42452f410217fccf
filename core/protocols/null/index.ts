// The `null-co` / `null-aio` protocols (QEMU block/null.c): a device of a given size that stores
// nothing. Reads return zeros (QEMU leaves the buffer as it is unless read-zeroes=on; Platter
// never hands out memory it did not fill), writes are dropped, and block status reports zeros
// only with read-zeroes=on, as QEMU does (otherwise: neither data nor zero, not allocated).
// Options: size (bytes, default 1 GiB), read-zeroes (default off), latency-ns (accepted; no delay).

import { invalidArgument } from '../../errors.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver } from '../../block/types.ts';
import { optBool, type OptionsTree } from '../../block/options-tree.ts';

/** QEMU's default size of a null device (NULL_OPT_SIZE default: 1 << 30). */
const DEFAULT_SIZE = 1 << 30;
/** The options null.c takes (besides the generic ones the layers above strip). */
const KNOWN = new Set(['size', 'read-zeroes', 'latency-ns', 'filename']);

function sizeOption(options: OptionsTree): number {
  const v = options['size'];
  if (v === undefined) return DEFAULT_SIZE;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument("Parameter 'size' expects a non-negative number below 2^64");
  return n;
}

class NullNode implements NodeImpl {
  readonly size: number;
  readonly #readZeroes: boolean;

  constructor(size: number, readZeroes: boolean) {
    this.size = size;
    this.#readZeroes = readZeroes;
  }

  async read(_offset: number, length: number): Promise<Buffer> {
    return Buffer.alloc(length);
  }

  async write(): Promise<void> {}

  async writeZeroes(): Promise<void> {}

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    return this.#readZeroes
      ? { offset, length, data: false, zero: true, allocated: true, hostOffset: offset }
      : { offset, length, data: false, zero: false, allocated: false, hostOffset: offset };
  }

  async close(): Promise<void> {}
}

function nullDriver(name: string): ProtocolDriver {
  return {
    kind: 'protocol',
    name,
    description: 'A device that stores nothing (for tests and benchmarks)',
    prefixes: [name],
    parseFilename: () => ({}),
    createOptions: [],
    async open(ctx) {
      for (const k of Object.keys(ctx.options)) {
        if (!KNOWN.has(k) && k !== 'cache' && k !== 'locking' && k !== 'aio') throw invalidArgument(`Invalid parameter '${k}'`);
      }
      return new NullNode(sizeOption(ctx.options), optBool(ctx.options, 'read-zeroes') ?? false);
    },
  };
}

export const nullCoDriver = nullDriver('null-co');
export const nullAioDriver = nullDriver('null-aio');
