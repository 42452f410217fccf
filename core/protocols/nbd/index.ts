// The `nbd` protocol driver (QEMU block/nbd.c): an export of an NBD server as a block node.
// Filenames in all of QEMU's forms (address.ts), one connection per node (client.ts), request
// limits from the server's NBD_INFO_BLOCK_SIZE (min: alignment, max: split size), block status
// from base:allocation (holes stay holes in convert and map), and the pseudo-filename QEMU shows.
// Behaviour follows block/nbd.c: alignment 1 when the server answers base:allocation or the size
// is not sector aligned (else 512), max transfer min(32 MiB, server max), flush/trim/zeroes only
// when the export advertises them, writes with FUA when asked and offered (else write + flush),
// truncate only to the same size ("Cannot resize NBD nodes").

import { BlockError, invalidArgument } from '../../errors.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, TruncateOptions, WriteFlags, ZeroFlags } from '../../block/types.ts';
import * as C from './constants.ts';
import { NbdClient } from './client.ts';
import { nbdDisplayName, nbdTarget, parseNbdFilename } from './address.ts';
import { nbdTlsUpgrade } from './tls.ts';

/** How long a silent server may keep us waiting (connect, each handshake step, a request):
 *  QEMU waits forever; Platter gives up and says so. PLATTER_NBD_TIMEOUT_MS overrides. */
function timeoutMs(): number {
  const v = Number(process.env.PLATTER_NBD_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 60_000;
}

class NbdNode implements NodeImpl {
  /** BDRV_REQ_NO_FALLBACK is sent as NBD_CMD_FLAG_FAST_ZERO where the server offers it. */
  readonly zeroNoFallback = true;
  readonly size: number;
  readonly alignment: number;
  readonly maxTransfer: number;
  readonly #c: NbdClient;
  readonly #flags: number;
  readonly #statusId: number | undefined;

  constructor(c: NbdClient, statusContext: string) {
    this.#c = c;
    const i = c.info;
    this.#flags = i.flags;
    this.size = i.size;
    this.#statusId = i.contexts.get(statusContext);
    const baseAllocation = this.#statusId !== undefined;
    this.alignment = i.minBlock || (i.size % 512 !== 0 || baseAllocation ? 1 : 512);
    this.maxTransfer = Math.min(C.NBD_MAX_BUFFER_SIZE, i.maxBlock || C.NBD_MAX_BUFFER_SIZE);
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.#c.read(offset, length);
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    await this.#c.read(offset, length, into.subarray(0, length));
  }

  async write(offset: number, data: Buffer, flags: WriteFlags): Promise<void> {
    const fua = flags.fua === true && (this.#flags & C.NBD_FLAG_SEND_FUA) !== 0;
    await this.#c.write(offset, data, fua);
    if (flags.fua && !fua) await this.flush();
  }

  async writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    // QEMU 7.2 nbd_client_co_pwrite_zeroes: BDRV_REQ_NO_FALLBACK becomes NBD_CMD_FLAG_FAST_ZERO,
    // which it may ask only of a server that offers both WRITE_ZEROES and FAST_ZERO (otherwise
    // the block layer refuses with ENOTSUP before sending: no slow fallback).
    if (flags.noFallback && (!(this.#flags & C.NBD_FLAG_SEND_WRITE_ZEROES) || !(this.#flags & C.NBD_FLAG_SEND_FAST_ZERO))) {
      throw new BlockError('Unsupported', 'Operation not supported', { op: 'write-zeroes', offset });
    }
    if (!(this.#flags & C.NBD_FLAG_SEND_WRITE_ZEROES)) {
      // No WRITE_ZEROES: write zeros, a transfer at a time.
      for (let o = offset; o < offset + length; o += this.maxTransfer) {
        const n = Math.min(this.maxTransfer, offset + length - o);
        await this.#c.write(o, Buffer.alloc(n), false);
      }
      return;
    }
    const f = (flags.mayUnmap ? 0 : C.NBD_CMD_FLAG_NO_HOLE) | (flags.noFallback ? C.NBD_CMD_FLAG_FAST_ZERO : 0);
    const jobs: Promise<void>[] = [];
    // The server's maximum applies to WRITE_ZEROES too (QEMU: max_pwrite_zeroes = max block).
    const step = Math.floor(this.maxTransfer / this.alignment) * this.alignment;
    for (let o = offset; o < offset + length; o += step) jobs.push(this.#c.writeZeroes(o, Math.min(step, offset + length - o), f));
    await Promise.all(jobs);
  }

  async discard(offset: number, length: number): Promise<void> {
    if (!(this.#flags & C.NBD_FLAG_SEND_TRIM)) return;
    const step = Math.floor(0x7fffffff / this.alignment) * this.alignment;
    for (let o = offset; o < offset + length; o += step) await this.#c.trim(o, Math.min(step, offset + length - o));
  }

  async flush(): Promise<void> {
    if (!(this.#flags & C.NBD_FLAG_SEND_FLUSH)) return;
    await this.#c.flush();
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const id = this.#statusId;
    if (id === undefined) return { offset, length, data: true, zero: false, allocated: true, hostOffset: offset };
    // QEMU asks for at most the server's max block, or 2 GiB less one alignment unit.
    const ask = Math.min(length, this.maxTransfer < C.NBD_MAX_BUFFER_SIZE ? this.maxTransfer : Math.floor(0x7fffffff / this.alignment) * this.alignment);
    const ext = (await this.#c.blockStatus(offset, ask)).get(id)!;
    const first = ext[0]!;
    let n = Math.min(first.length, ask);
    // An extent that does not end on the alignment is cut back to it (or taken to it, if shorter).
    if (this.alignment > 1 && offset + n < this.size) {
      const cut = Math.floor(n / this.alignment) * this.alignment;
      n = cut > 0 ? cut : Math.min(this.alignment, length);
    }
    // x-dirty-bitmap: QEMU reads any other context's values as base:allocation flags (a bitmap's
    // "dirty" bit is the hole bit; qemu:allocation-depth's 2 is the zero bit), so map shows them.
    const hole = (first.flags & C.NBD_STATE_HOLE) !== 0;
    const zero = (first.flags & C.NBD_STATE_ZERO) !== 0;
    // Neither data nor zero: QEMU's block layer calls it unallocated, at no offset.
    if (hole && !zero) return { offset, length: n, data: false, zero: false, allocated: false };
    return { offset, length: n, data: !hole, zero, allocated: true, hostOffset: offset };
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    if (size !== this.size && options.exact) throw new BlockError('Unsupported', 'Cannot resize NBD nodes');
    if (size > this.size) throw invalidArgument('Cannot grow NBD nodes');
    // Smaller and not exact: nothing to do (QEMU's nbd_co_truncate).
  }

  hasZeroInit(): boolean {
    return false;
  }

  async close(): Promise<void> {
    await this.#c.close();
  }
}

export const nbdDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'nbd',
  description: 'A Network Block Device export (NBD client)',
  prefixes: ['nbd', 'nbd+tcp', 'nbd+unix'],
  parseFilename: (filename) => ({ filename }),
  createOptions: [],
  createSimple: true,
  noDriverInfo: true,
  displayName: (options) => nbdDisplayName(nbdTarget(options)),
  async open(ctx) {
    const t = nbdTarget(ctx.options);
    const label = nbdDisplayName(t);
    const statusContext = t.dirtyBitmap ?? 'base:allocation';
    const tls = t.tlsCreds !== undefined ? nbdTlsUpgrade(t.tlsCreds, 'client', t.tlsHostname) : undefined;
    const c = await NbdClient.connect({
      server: t.server,
      exportName: t.exportName ?? '',
      metaContexts: [statusContext],
      timeoutMs: timeoutMs(),
      label,
      ...(tls ? { tls } : {}),
    });
    let warned = false;
    c.onDisconnect = (why) => {
      if (warned) return;
      warned = true;
      ctx.warn(`warning: NBD server '${label}' connection lost: ${why}`);
    };
    if (t.dirtyBitmap !== undefined && !c.info.contexts.has(t.dirtyBitmap)) {
      await c.close();
      // (QEMU 7.2 words it so: its "requested x-dirty-bitmap ... not found" is lost on the way.)
      throw invalidArgument('Could not open image: Invalid argument');
    }
    if (!ctx.readOnly && (c.info.flags & C.NBD_FLAG_READ_ONLY)) {
      await c.close();
      throw new BlockError('Permission', 'NBD export is read-only');
    }
    return new NbdNode(c, statusContext);
  },
};

export { parseNbdFilename, nbdTarget, nbdDisplayName };
