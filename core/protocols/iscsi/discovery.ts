// SendTargets discovery (RFC 7143 section 12.3 and appendix C): a Discovery session's text
// request "SendTargets=All", answered by TargetName keys each followed by its TargetAddress
// keys ("host:port,portal-group-tag"). For the GUI's "browse a portal" and for tests.

import { BlockError } from '../../errors.ts';
import { IscsiSession, type HeaderDigest } from './session.ts';
import { DEFAULT_INITIATOR_NAME, parsePortal } from './options.ts';
import { cdb, deviceTypeName, parseCapacity10, parseCapacity16, parseInquiry, SENSE_UNIT_ATTENTION, STATUS_CHECK_CONDITION, STATUS_GOOD, TYPE_DISK, TYPE_ROM } from './scsi.ts';

export interface DiscoveredTarget {
  /** The target's IQN (or EUI/NAA name). */
  name: string;
  /** Its portals as the target reports them ("10.0.0.1:3260,1"). */
  addresses: string[];
}

export interface DiscoveryOptions {
  initiatorName?: string;
  user?: string;
  /** CHAP secret; the caller owns it (and clears it). */
  password?: Buffer;
  headerDigest?: HeaderDigest;
  /** Connect + login + answer limit in ms (default 30 s). */
  timeoutMs?: number;
}

/** One logical unit of a target (REPORT LUNS, then INQUIRY and READ CAPACITY of each). */
export interface TargetLun {
  lun: number;
  /** SCSI peripheral device type in words ("disk", "cd/dvd", ...). */
  type: string;
  vendor: string;
  product: string;
  /** Bytes (blocks x block size); absent where READ CAPACITY failed or the type has none. */
  size?: number;
  blockSize?: number;
}

/** REPORT LUNS (SPC-4 6.33): select report 0, `alloc` bytes. */
function reportLunsCdb(alloc: number): Buffer {
  const c = Buffer.alloc(12);
  c[0] = 0xa0;
  c.writeUInt32BE(alloc, 6);
  return c;
}

/** A LUN from an 8-byte entry of REPORT LUNS (SAM-5 4.7: peripheral and flat addressing). */
function decodeLun(e: Buffer): number | undefined {
  const method = e[0]! >> 6;
  if (method === 0) return e[1]!;
  if (method === 1) return ((e[0]! & 0x3f) << 8) | e[1]!;
  return undefined;
}

/** The logical units of `target` at `portal`, with their type and size (for the GUI's browse). */
export async function listTargetLuns(portal: string, target: string, options: DiscoveryOptions = {}): Promise<TargetLun[]> {
  const { host, port } = parsePortal(portal);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const session = await IscsiSession.open({
    host,
    port,
    initiatorName: options.initiatorName ?? DEFAULT_INITIATOR_NAME,
    targetName: target,
    sessionType: 'Normal',
    ...(options.user !== undefined ? { user: options.user } : {}),
    ...(options.password ? { password: options.password } : {}),
    headerDigest: options.headerDigest ?? 'none-crc32c',
    commandTimeoutMs: timeoutMs,
    loginTimeoutMs: timeoutMs,
  });
  // A first command may meet a UNIT ATTENTION (power on, reset): asked again.
  const ask = async (lun: number, c: Buffer, read: number) => {
    for (let i = 0; ; i++) {
      const r = await session.scsi(lun, c, { read });
      if (r.status === STATUS_CHECK_CONDITION && r.sense?.key === SENSE_UNIT_ATTENTION && i < 5) continue;
      return r;
    }
  };
  try {
    const rep = await ask(0, reportLunsCdb(4096), 4096);
    if (rep.status !== STATUS_GOOD || rep.data.length < 8) throw new BlockError('Io', `iSCSI: REPORT LUNS failed at ${portal} for ${target}`);
    const listLen = Math.min(rep.data.readUInt32BE(0), rep.data.length - 8);
    const luns: number[] = [];
    for (let off = 8; off + 8 <= 8 + listLen; off += 8) {
      const lun = decodeLun(rep.data.subarray(off, off + 8));
      if (lun !== undefined && !luns.includes(lun)) luns.push(lun);
    }
    const out: TargetLun[] = [];
    for (const lun of luns.sort((a, b) => a - b)) {
      const inq = await ask(lun, cdb.inquiry(false, 0, 96), 96);
      if (inq.status !== STATUS_GOOD) continue;
      const d = parseInquiry(inq.data);
      if (d.qualifier !== 0) continue;
      const one: TargetLun = { lun, type: deviceTypeName(d.type), vendor: d.vendor, product: d.product };
      if (d.type === TYPE_DISK || d.type === TYPE_ROM) {
        const c16 = await ask(lun, cdb.readCapacity16(32), 32);
        let cap = c16.status === STATUS_GOOD ? parseCapacity16(c16.data) : undefined;
        if (!cap) {
          const c10 = await ask(lun, cdb.readCapacity10(), 8);
          if (c10.status === STATUS_GOOD) cap = parseCapacity10(c10.data);
        }
        if (cap) {
          one.size = cap.blocks * cap.blockSize;
          one.blockSize = cap.blockSize;
        }
      }
      out.push(one);
    }
    return out;
  } finally {
    await session.logout().catch(() => {});
  }
}

/** Ask the portal ("host[:port]") which targets it offers. */
export async function discoverTargets(portal: string, options: DiscoveryOptions = {}): Promise<DiscoveredTarget[]> {
  const { host, port } = parsePortal(portal);
  const timeoutMs = options.timeoutMs ?? 30_000;
  let session: IscsiSession;
  try {
    session = await IscsiSession.open({
      host,
      port,
      initiatorName: options.initiatorName ?? DEFAULT_INITIATOR_NAME,
      sessionType: 'Discovery',
      ...(options.user !== undefined ? { user: options.user } : {}),
      ...(options.password ? { password: options.password } : {}),
      headerDigest: options.headerDigest ?? 'none-crc32c',
      commandTimeoutMs: timeoutMs,
      loginTimeoutMs: timeoutMs,
    });
  } catch (e) {
    throw e instanceof BlockError ? new BlockError(e.kind, `iSCSI: discovery at ${portal} failed: ${e.message}`) : e;
  }
  try {
    const keys = await session.text([['SendTargets', 'All']]);
    const out: DiscoveredTarget[] = [];
    for (const [k, v] of keys) {
      if (k === 'TargetName') out.push({ name: v, addresses: [] });
      else if (k === 'TargetAddress' && out.length) out[out.length - 1]!.addresses.push(v);
    }
    return out;
  } finally {
    await session.logout();
  }
}
