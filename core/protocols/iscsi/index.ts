// The `iscsi` protocol (QEMU block/iscsi.c over libiscsi, here a TypeScript initiator, session.ts):
// one LUN of an iSCSI target as a fixed-size block device. Open = login, TEST UNIT READY,
// INQUIRY, MODE SENSE(6) (write protect, DPO/FUA), READ CAPACITY(16) (10 for CD-ROMs and as
// fallback), VPD pages B0h (block limits) and B2h (provisioning). I/O: READ/WRITE(10) or (16)
// (16 when the last LBA needs it), SYNCHRONIZE CACHE(10), WRITE SAME(16) for zeroes, UNMAP for
// discard where the LUN has them, GET LBA STATUS for block status when LBPME. Disk (type 0) and
// CD/DVD (type 5, read-only) LUNs. A dropped connection is logged in again and the request
// retried. Options and messages are QEMU 7.2's (options.ts).

import { BlockError, invalidArgument } from '../../errors.ts';
import type { BlockStatus, DriverInfo, NodeImpl, ProtocolDriver, TruncateOptions, WriteFlags, ZeroFlags } from '../../block/types.ts';
import type { OptionsTree } from '../../block/options-tree.ts';
import { IscsiSession } from './session.ts';
import { jsonName, parseIscsiUrl, readSettings, redactUrl, type IscsiSettings } from './options.ts';
import type { SecretStore } from '../../block/secrets.ts';
import {
  cdb,
  deviceTypeName,
  parseBlockLimits,
  parseCapacity10,
  parseCapacity16,
  parseInquiry,
  parseLbaStatus,
  parseLbp,
  parseModeSense6,
  parseSupportedPages,
  SENSE_ILLEGAL_REQUEST,
  SENSE_UNIT_ATTENTION,
  senseText,
  STATUS_BUSY,
  STATUS_CHECK_CONDITION,
  STATUS_GOOD,
  STATUS_TASK_SET_FULL,
  TYPE_DISK,
  TYPE_ROM,
  unmapParameters,
  vpdFullSize,
  type BlockLimits,
  type Capacity,
} from './scsi.ts';
import type { ScsiResult } from './session.ts';

export { discoverTargets, listTargetLuns } from './discovery.ts';
export { parseIscsiConfig, setIscsiConfig } from './config.ts';

/** QEMU's ISCSI_CMD_RETRIES: unit attentions and busy targets are retried this often. */
const CMD_RETRIES = 5;
/** Connect + login limit when no `timeout` is given (QEMU has none; Platter will not hang). */
const DEFAULT_LOGIN_TIMEOUT_MS = 30_000;
/** QEMU's NOP_INTERVAL: how often an idle or busy session pings the target. */
const NOP_INTERVAL_MS = 5000;
/** Largest request Platter sends in one command (memory bound; the generic layer splits). */
const MAX_REQUEST = 32 << 20;

const failure = (r: ScsiResult): string => (r.sense ? senseText(r.sense) : `SCSI status 0x${r.status.toString(16).padStart(2, '0')}`);

class IscsiNode implements NodeImpl {
  readonly size: number;
  readonly alignment: number;
  readonly maxTransfer: number;
  #session: IscsiSession;
  /** Logs in again after the connection is lost (QEMU's libiscsi reconnects too). */
  readonly #relogin: () => Promise<IscsiSession>;
  #reconnecting: Promise<void> | undefined;
  #closed = false;
  readonly #lun: number;
  readonly #cap: Capacity;
  readonly #bl: BlockLimits;
  readonly #lbp: { lbpu: boolean; lbpws: boolean };
  readonly #dpofua: boolean;
  readonly #clusterSize: number;
  #hasWriteSame = true;

  constructor(init: { session: IscsiSession; relogin: () => Promise<IscsiSession>; lun: number; cap: Capacity; bl: BlockLimits; lbp: { lbpu: boolean; lbpws: boolean }; dpofua: boolean }) {
    this.#session = init.session;
    this.#relogin = init.relogin;
    this.#lun = init.lun;
    this.#cap = init.cap;
    this.#bl = init.bl;
    this.#lbp = init.lbp;
    this.#dpofua = init.dpofua;
    const bs = init.cap.blockSize;
    this.size = init.cap.blocks * bs;
    this.alignment = bs;
    // QEMU's iscsi_refresh_limits: the CDB's length field, then the LUN's MAXIMUM TRANSFER LENGTH.
    let maxBlocks = init.cap.use16 ? 0xffffffff : 0xffff;
    if (init.bl.maxXferLen) maxBlocks = Math.min(maxBlocks, init.bl.maxXferLen);
    this.maxTransfer = Math.max(bs, Math.min(maxBlocks * bs, Math.floor(MAX_REQUEST / bs) * bs));
    // The target's page size guessed from OPTIMAL UNMAP GRANULARITY, when reasonable (QEMU).
    const gran = init.bl.optUnmapGran * bs;
    this.#clusterSize = gran >= 4096 && gran <= 16 << 20 ? gran : 0;
  }

  /** One new session for every request that met the lost one (single flight). */
  #reconnect(): Promise<void> {
    this.#reconnecting ??= this.#relogin()
      .then((s) => {
        if (this.#closed) s.close();
        else this.#session = s;
      })
      .finally(() => (this.#reconnecting = undefined));
    return this.#reconnecting;
  }

  /** A command, retried on unit attention and busy targets as QEMU does, and once more on a new
   *  session when the connection was lost (READ, WRITE and the others here are idempotent). */
  async #command(c: Buffer, io: { read?: number; readInto?: Buffer; write?: Buffer }): Promise<ScsiResult> {
    for (let attempt = 0, reconnects = 0; ; attempt++) {
      if (this.#reconnecting) await this.#reconnecting;
      const session = this.#session;
      let r: ScsiResult;
      try {
        r = await session.scsi(this.#lun, c, io);
      } catch (e) {
        if (this.#closed || session.alive || reconnects >= 2) throw e;
        reconnects++;
        if (this.#session === session) await this.#reconnect();
        continue;
      }
      if (attempt < CMD_RETRIES) {
        if (r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_UNIT_ATTENTION) continue;
        if (r.status === STATUS_BUSY || r.status === STATUS_TASK_SET_FULL) {
          await new Promise((res) => setTimeout(res, 50 << attempt));
          continue;
        }
      }
      return r;
    }
  }

  #lba(offset: number): number {
    return offset / this.#cap.blockSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, buf);
    return buf;
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    const lba = this.#lba(offset);
    const dst = into.length === length ? into : into.subarray(0, length);
    const r = await this.#command(cdb.rw(false, this.#cap.use16, lba, length / this.#cap.blockSize), { readInto: dst });
    if (r.status !== STATUS_GOOD) throw new BlockError('Io', `iSCSI READ10/16 failed at lba ${lba}: ${failure(r)}`, { offset });
    if (r.data.length < length) dst.fill(0, r.data.length);
  }

  async write(offset: number, data: Buffer, flags: WriteFlags = {}): Promise<void> {
    const lba = this.#lba(offset);
    const fua = !!flags.fua && this.#dpofua;
    const r = await this.#command(cdb.rw(true, this.#cap.use16, lba, data.length / this.#cap.blockSize, fua), { write: data });
    if (r.status !== STATUS_GOOD) throw new BlockError('Io', `iSCSI WRITE10/16 failed at lba ${lba}: ${failure(r)}`, { offset });
    if (flags.fua && !fua) await this.flush();
  }

  /** WRITE SAME(16) of a zero block where the LUN takes it (with UNMAP when it may deallocate
   *  and says so in page B2h), else zero buffers (QEMU's fallback after -ENOTSUP). */
  async writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    const bs = this.#cap.blockSize;
    const unmap = !!flags.mayUnmap && this.#lbp.lbpws;
    if (this.#hasWriteSame) {
      let maxBlocks = this.maxTransfer / bs;
      if (this.#bl.maxWsLen) maxBlocks = Math.min(maxBlocks, this.#bl.maxWsLen);
      const zero = Buffer.alloc(bs);
      let done = 0;
      while (done < length) {
        const blocks = Math.min(maxBlocks, (length - done) / bs);
        const lba = this.#lba(offset + done);
        const r = await this.#command(cdb.writeSame16(lba, blocks, unmap), { write: zero });
        if (r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_ILLEGAL_REQUEST && (r.sense.asc === 0x20 || r.sense.asc === 0x24)) {
          this.#hasWriteSame = false; // not supported: write zeros from here on
          break;
        }
        if (r.status !== STATUS_GOOD) throw new BlockError('Io', `iSCSI WRITESAME10/16 failed at lba ${lba}: ${failure(r)}`, { offset: offset + done });
        done += blocks * bs;
      }
      if (done >= length) return;
      offset += done;
      length -= done;
    }
    const chunk = Math.max(bs, Math.floor(Math.min(this.maxTransfer, 1 << 20) / bs) * bs);
    const zeros = Buffer.alloc(Math.min(chunk, length));
    for (let done = 0; done < length; done += zeros.length) {
      const n = Math.min(zeros.length, length - done);
      await this.write(offset + done, n === zeros.length ? zeros : zeros.subarray(0, n));
    }
  }

  /** UNMAP of the whole blocks in the range where the LUN supports it (QEMU: advisory, a
   *  no-op otherwise). */
  async discard(offset: number, length: number): Promise<void> {
    if (!this.#lbp.lbpu) return;
    const bs = this.#cap.blockSize;
    const first = Math.ceil(offset / bs);
    const end = Math.floor((offset + length) / bs);
    let maxBlocks = 0xffffffff;
    if (this.#bl.maxUnmap) maxBlocks = Math.min(maxBlocks, this.#bl.maxUnmap);
    for (let lba = first; lba < end; ) {
      const blocks = Math.min(maxBlocks, end - lba);
      const params = unmapParameters([{ lba, blocks }]);
      const r = await this.#command(cdb.unmap(params.length), { write: params });
      if (r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_ILLEGAL_REQUEST) return; // QEMU ignores these
      if (r.status !== STATUS_GOOD) throw new BlockError('Io', `iSCSI UNMAP failed at lba ${lba}: ${failure(r)}`, { offset: lba * bs });
      lba += blocks;
    }
  }

  /** GET LBA STATUS when the LUN has logical block provisioning (LBPME); else all data, as QEMU. */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const all: BlockStatus = { offset, length, data: true, zero: false, allocated: true, hostOffset: offset };
    if (!this.#cap.lbpme) return all;
    const bs = this.#cap.blockSize;
    const lba = this.#lba(offset);
    const r = await this.#command(cdb.getLbaStatus(lba, 8 + 16), { read: 8 + 16 });
    // A failing GET LBA STATUS reads as allocated (QEMU, for targets without the command).
    if (r.status !== STATUS_GOOD) return all;
    const d = parseLbaStatus(r.data);
    if (!d || d.lba !== lba || d.blocks === 0) throw new BlockError('Io', `iSCSI GET_LBA_STATUS returned a bad descriptor at lba ${lba}`, { offset });
    const len = Math.min(d.blocks * bs, length);
    const unmapped = d.provisioning === 1 || d.provisioning === 2;
    return { offset, length: len, data: !unmapped, zero: unmapped && this.#cap.lbprz, allocated: true, hostOffset: offset };
  }

  async flush(): Promise<void> {
    const r = await this.#command(cdb.synchronizeCache10(), {});
    if (r.status !== STATUS_GOOD) throw new BlockError('Io', `iSCSI SYNCHRONIZECACHE10 failed: ${failure(r)}`);
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    if (options.preallocation && options.preallocation !== 'off') throw new BlockError('Unsupported', `Unsupported preallocation mode '${options.preallocation}'`);
    if (size !== this.size && options.exact) throw new BlockError('Unsupported', 'Cannot resize iSCSI devices');
    if (size > this.size) throw invalidArgument('Cannot grow iSCSI devices');
  }

  hasZeroInit(): boolean {
    return false;
  }

  async info(): Promise<DriverInfo> {
    return this.#clusterSize ? { clusterSize: this.#clusterSize } : {};
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#reconnecting?.catch(() => {});
    await this.#session.logout();
  }
}

/** A VPD page, asked with 255 bytes and again with its full size when longer. */
async function vpd(session: IscsiSession, lun: number, page: number): Promise<Buffer> {
  let r = await session.scsi(lun, cdb.inquiry(true, page, 255), { read: 255 });
  if (r.status === STATUS_GOOD && vpdFullSize(r.data) > 255) {
    const full = Math.min(vpdFullSize(r.data), 0xffff);
    r = await session.scsi(lun, cdb.inquiry(true, page, full), { read: full });
  }
  if (r.status !== STATUS_GOOD) throw new BlockError('Io', `iSCSI: Inquiry command failed : ${failure(r)}`);
  return r.data;
}

async function openLun(session: IscsiSession, lun: number, readOnly: boolean, relogin: () => Promise<IscsiSession>): Promise<IscsiNode> {
  const connectFailed = (m: string) => new BlockError('Io', `iSCSI: Failed to connect to LUN : ${m}`);
  // libiscsi's full connect ends with TEST UNIT READY until the unit attentions are consumed.
  for (let i = 0; ; i++) {
    const r = await session.scsi(lun, cdb.testUnitReady(), {});
    if (r.status === STATUS_GOOD) break;
    if (r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_UNIT_ATTENTION && i < 10) continue;
    // A CD-ROM without a medium is still a device (QEMU opens it with size 0).
    if (r.status === STATUS_CHECK_CONDITION && r.sense?.key === 0x02) break;
    const e = connectFailed(failure(r));
    throw r.sense?.key === SENSE_ILLEGAL_REQUEST && r.sense.asc === 0x25 ? new BlockError('NotFound', e.message) : e;
  }
  const inqR = await session.scsi(lun, cdb.inquiry(false, 0, 255), { read: 255 });
  if (inqR.status !== STATUS_GOOD) throw new BlockError('Io', `iSCSI: Inquiry command failed : ${failure(inqR)}`);
  const inq = parseInquiry(inqR.data);
  if (inq.qualifier !== 0) throw new BlockError('NotFound', `iSCSI: Failed to connect to LUN : LUN ${lun} is not connected`);
  if (inq.type !== TYPE_DISK && inq.type !== TYPE_ROM) {
    throw new BlockError('Unsupported', `iSCSI: LUN ${lun} is a ${deviceTypeName(inq.type)} device; Platter opens disk and CD/DVD LUNs only (QEMU passes others through as SCSI generic devices)`);
  }
  let writeProtected = false;
  let dpofua = false;
  const ms = await session.scsi(lun, cdb.modeSense6(255), { read: 255 });
  if (ms.status === STATUS_GOOD) ({ writeProtected, dpofua } = parseModeSense6(ms.data));
  if (!readOnly) {
    if (inq.type === TYPE_ROM) throw new BlockError('Permission', `iSCSI: LUN ${lun} is a CD/DVD device, which is read-only`);
    if (writeProtected) throw new BlockError('Permission', 'LUN is write protected');
  }
  let cap: Capacity | undefined;
  for (let i = 0; i <= CMD_RETRIES && !cap; i++) {
    if (inq.type === TYPE_DISK) {
      const r = await session.scsi(lun, cdb.readCapacity16(32), { read: 32 });
      if (r.status === STATUS_GOOD) {
        cap = parseCapacity16(r.data);
        break;
      }
      if (r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_UNIT_ATTENTION) continue;
    }
    const r = await session.scsi(lun, cdb.readCapacity10(), { read: 8 });
    if (r.status === STATUS_GOOD) cap = parseCapacity10(r.data);
    else if (!(r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_UNIT_ATTENTION)) break;
  }
  if (!cap) throw new BlockError('Io', 'iSCSI: failed to send readcapacity10/16 command');
  if (!cap.blockSize || cap.blockSize % 512 || cap.blockSize > 1 << 20) throw new BlockError('InvalidImage', `iSCSI: the target returned an invalid block size of ${cap.blockSize}.`);
  if (!Number.isSafeInteger(cap.blocks * cap.blockSize)) throw new BlockError('Unsupported', `iSCSI: LUN ${lun} is larger than Platter handles (2^53 bytes)`);
  let bl: BlockLimits = { maxXferLen: 0, optXferLen: 0, maxUnmap: 0, maxUnmapBdCount: 0, optUnmapGran: 0, maxWsLen: 0 };
  let lbp = { lbpu: false, lbpws: false };
  const pages = parseSupportedPages(await vpd(session, lun, 0x00));
  if (pages.includes(0xb0)) bl = parseBlockLimits(await vpd(session, lun, 0xb0));
  if (pages.includes(0xb2)) lbp = parseLbp(await vpd(session, lun, 0xb2));
  return new IscsiNode({ session, relogin, lun, cap, bl, lbp, dpofua });
}

export const iscsiDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'iscsi',
  description: 'iSCSI LUN (built-in initiator; TCP transport)',
  prefixes: ['iscsi', 'iser'],
  parseFilename: (filename) => parseIscsiUrl(filename),
  redactFilename: redactUrl,
  refreshFilename: (options: OptionsTree) => jsonName(options),
  createOptions: [],
  /** QEMU's bdrv_co_create_opts_simple: the LUN exists; it must hold `size` bytes ("Cannot grow
   *  iSCSI devices") and its first sector is zeroed, so no old image header is probed. */
  async create(filename, size) {
    const s = readSettings(parseIscsiUrl(filename));
    const node = await connect(s, undefined, false);
    try {
      if (size > node.size) throw invalidArgument('Cannot grow iSCSI devices');
      if (node.size > 0) {
        const first = await node.read(0, node.alignment);
        first.fill(0, 0, 512);
        await node.write(0, first);
      }
    } finally {
      await node.close();
    }
  },
  async open(ctx) {
    return connect(readSettings(ctx.options), ctx.secrets, ctx.readOnly);
  },
};

/** Log in and open the LUN the settings name. */
async function connect(s: IscsiSettings, secrets: SecretStore | undefined, readOnly: boolean): Promise<IscsiNode> {
  const session = await login(s, secrets);
  try {
    return await openLun(session, s.lun, readOnly, async () => {
      const again = await login(s, secrets);
      // The new I_T nexus starts with a unit attention (power on/reset): take it now.
      for (let i = 0; i < 10; i++) {
        const r = await again.scsi(s.lun, cdb.testUnitReady(), {}).catch((e) => {
          again.close();
          throw e;
        });
        if (!(r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_UNIT_ATTENTION)) break;
      }
      return again;
    });
  } catch (e) {
    await session.logout();
    throw e;
  }
}

/** A logged-in session (the password looked up, used, and cleared). */
async function login(s: IscsiSettings, secrets: SecretStore | undefined): Promise<IscsiSession> {
  let password: Buffer | undefined;
  if (s.password && 'secret' in s.password) {
    if (!secrets) throw invalidArgument(`No secret with id '${s.password.secret}'`);
    password = Buffer.from(secrets.passphrase(s.password.secret));
  } else if (s.password) password = Buffer.from(s.password.value, 'utf8');
  try {
    return await IscsiSession.open({
      host: s.host,
      port: s.port,
      initiatorName: s.initiatorName,
      targetName: s.target,
      sessionType: 'Normal',
      ...(s.user !== undefined ? { user: s.user } : {}),
      ...(password ? { password } : {}),
      headerDigest: s.headerDigest,
      commandTimeoutMs: s.timeout * 1000,
      loginTimeoutMs: s.timeout ? s.timeout * 1000 : DEFAULT_LOGIN_TIMEOUT_MS,
      nopIntervalMs: NOP_INTERVAL_MS,
    });
  } catch (e) {
    if (e instanceof BlockError && e.code !== 'Worded') throw new BlockError(e.kind, `iSCSI: Failed to connect to LUN : ${e.message.replace(/^iSCSI: /, '')}`);
    throw e;
  } finally {
    password?.fill(0);
  }
}
