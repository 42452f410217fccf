// The `ssh` protocol (QEMU 7.2 block/ssh.c; qemu-block-drivers(7) "Secure Shell (ssh) disk
// images"): a remote file over sftp as a growable byte array. Options and names: options.ts;
// connection, authentication and host key checks: session.ts and hostkey.ts.
// As QEMU's driver: reads past the end read zeros, writes past it grow the file, truncate only
// grows (by writing one zero byte at the new end), preallocation is refused, flush is
// fsync@openssh.com where the server offers it and a warning once where it does not, a regular
// remote file reads as zeros where unwritten, and create opens the path with O_CREAT|O_TRUNC,
// mode 0644, then grows it to the size rounded up to 512 bytes.
// Unlike QEMU, which sends one 16 KiB read or 128 KiB write at a time, requests are split into
// chunks kept in flight together (sftp matches answers by request id).

import { BlockError, unsupported } from '../../errors.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, TruncateOptions, WriteFlags } from '../../block/types.ts';
import type { OptionsTree } from '../../block/options-tree.ts';
import { parseSshUri, refreshedFilename, sshLocation, type SshLocation } from './options.ts';
import { closeSsh, connectSsh, sftpError, type SshSession } from './session.ts';
import { settleAll } from '../../util/settle-all.ts';

/** One sftp read or write (OpenSSH takes up to 256 KiB per packet; 64 KiB keeps many in flight). */
const CHUNK = 64 << 10;
/** Chunks one request keeps in flight. */
const IN_FLIGHT = 16;
/** S_IFMT / S_IFREG of the file's mode. */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** A failed transfer as QEMU's driver reports it (-EIO), with what the server said as its cause. */
function ioError(op: string, loc: SshLocation, session: SshSession, cause: unknown, offset: number, writable: boolean): BlockError {
  if (!session.closed()) return new BlockError('Io', 'Input/output error', { op, offset }, { cause });
  // The server went away: say so, and, for a file opened for writing (whichever request met the
  // loss: a format reads its own tables while it writes), that the file may be incomplete.
  const lost = `the ssh connection to ${loc.host}:${loc.port} was lost`;
  const text = !writable ? `Input/output error (${lost})` : `Input/output error (${lost}; the remote file '${loc.path}' may be left half-written)`;
  return new BlockError('Io', text, { op, offset }, { cause });
}

/** Run `work` over [offset, offset+length) in CHUNK pieces, IN_FLIGHT at a time. */
async function chunked(offset: number, length: number, work: (pos: number, len: number, at: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < length) {
      const at = next;
      const len = Math.min(CHUNK, length - at);
      next += len;
      await work(offset + at, len, at);
    }
  };
  const lanes: Promise<void>[] = [];
  for (let i = 0; i < IN_FLIGHT && i * CHUNK < length; i++) lanes.push(lane());
  await settleAll(lanes);
}

export class SshNode implements NodeImpl {
  readonly growable = true;
  /** QEMU's driver moves whole sectors (bdrv_co_readv/writev), so a file grows in 512s. */
  readonly alignment = 512;
  readonly maxTransfer = 8 << 20;
  readonly exactFilename: string;
  #size: number;
  readonly #s: SshSession;
  readonly #loc: SshLocation;
  /** Opened for writing: a lost connection may leave the remote file half-written. */
  readonly #writable: boolean;
  readonly #warn: (m: string) => void;
  #warnedFlush = false;

  constructor(s: SshSession, loc: SshLocation, warn: (m: string) => void, writable: boolean) {
    this.#s = s;
    this.#loc = loc;
    this.#writable = writable;
    this.#warn = warn;
    this.#size = Number(s.attrs.size ?? 0);
    this.exactFilename = refreshedFilename(loc, s.user);
  }

  /** QEMU's ssh_bdrv_dirname: the node's name up to its last '/', refused with a query string. */
  dirname(): string {
    if (this.#loc.legacyHostKeyCheck !== undefined) throw new BlockError('InvalidArgument', 'Cannot generate a base directory with host_key_check set', { op: 'dirname' });
    return this.exactFilename.slice(0, this.exactFilename.lastIndexOf('/') + 1);
  }

  get size(): number {
    return this.#size;
  }

  /** A regular remote file reads as zeros where unwritten; anything else may not (ssh_has_zero_init). */
  hasZeroInit(): boolean {
    return ((this.#s.attrs.mode ?? 0) & S_IFMT) === S_IFREG;
  }

  /** No allocation map over sftp: all data, at its own offset (QEMU's answer for a protocol
   *  driver without a block-status callback). */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    return { offset, length, data: true, zero: false, allocated: true, hostOffset: offset };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    await this.readInto(offset, length, buf);
    return buf;
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    const { sftp, handle } = this.#s;
    await chunked(offset, length, async (pos, len, at) => {
      let got = 0;
      while (got < len) {
        const n = await this.#s.request<number>((done) => sftp.read(handle, into, at + got, len - got, pos + got, done)).catch((e) => {
          throw ioError('read', this.#loc, this.#s, e, pos + got, this.#writable);
        });
        // End of file: zeros for the rest, as QEMU pads a short read.
        if (n === 0) {
          into.fill(0, at + got, at + len);
          return;
        }
        got += n;
      }
    });
  }

  async write(offset: number, data: Buffer, flags: WriteFlags = {}): Promise<void> {
    const { sftp, handle } = this.#s;
    await chunked(offset, data.length, async (pos, len, at) => {
      await this.#s.request<void>((done) => sftp.write(handle, data, at, len, pos, done)).catch((e) => {
        throw ioError('write', this.#loc, this.#s, e, pos, this.#writable);
      });
    });
    if (offset + data.length > this.#size) this.#size = offset + data.length;
    if (flags.fua) await this.flush();
  }

  async flush(): Promise<void> {
    if (!this.#s.fsync) {
      if (!this.#warnedFlush) {
        this.#warnedFlush = true;
        this.#warn(`warning: ssh server ${this.#loc.host} does not support fsync`);
        // QEMU 7.2 block/ssh.c unsafe_flush_warning: a warn_report, then an error_report line
        // (so both carry the program's name).
        this.#warn('error_report: to support fsync, you need OpenSSH >= 6.3');
      }
      return;
    }
    const { sftp, handle } = this.#s;
    await this.#s.request<void>((done) => sftp.ext_openssh_fsync(handle, done)).catch((e) => {
      throw ioError('flush', this.#loc, this.#s, e, 0, this.#writable);
    });
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    const prealloc = options.preallocation ?? 'off';
    if (prealloc !== 'off') throw unsupported(`Unsupported preallocation mode '${prealloc}'`);
    if (size < this.#size) throw unsupported('ssh driver does not support shrinking files');
    if (size === this.#size) return;
    await growFile(this.#s, size);
    this.#size = size;
  }

  async close(): Promise<void> {
    await closeSsh(this.#s);
  }
}

/** Grow the remote file to `size` by writing one zero byte at its last offset (ssh_grow_file). */
async function growFile(s: SshSession, size: number): Promise<void> {
  await s.request<void>((done) => s.sftp.write(s.handle, Buffer.alloc(1), 0, 1, size - 1, done)).catch((e) => {
    throw sftpError('Failed to grow file', e);
  });
}

export const sshDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'ssh',
  description: 'A remote image over ssh (sftp)',
  prefixes: ['ssh'],
  parseFilename: (filename: string): OptionsTree => parseSshUri(filename),
  createOptions: [],
  async create(filename, size, _options, _ctx) {
    const loc = sshLocation(parseSshUri(filename));
    try {
      const s = await connectSsh(loc, { flags: 'w+', mode: 0o644 });
      try {
        const rounded = Math.ceil(size / 512) * 512;
        if (rounded > 0) await growFile(s, rounded);
      } finally {
        await closeSsh(s);
      }
    } catch (e) {
      // QEMU's ssh create fails with EINVAL and its own words: no "Could not create" in front,
      // which qemu-img puts only before a local file's errors.
      if (e instanceof BlockError && (e.kind === 'NotFound' || e.kind === 'Permission' || e.kind === 'Io')) throw new BlockError('InvalidArgument', e.message, e.context, { cause: e });
      throw e;
    }
  },
  async open(ctx) {
    const { filename: _f, ...options } = ctx.options;
    const loc = sshLocation(options);
    const s = await connectSsh(loc, { flags: ctx.readOnly ? 'r' : 'r+' });
    return new SshNode(s, loc, ctx.warn, !ctx.readOnly);
  },
};
