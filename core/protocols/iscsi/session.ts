// One iSCSI session over one TCP connection (RFC 7143): login (security negotiation with
// one-way CHAP MD5, section 12.1.3, then operational negotiation, section 13), SCSI commands
// with Data-In, immediate and unsolicited data and R2T-driven Data-Out (sections 11.3-11.8),
// CmdSN windowing (section 4.2.2.1), target NOPs answered, text requests (SendTargets
// discovery), NOP-Out pings, logout. A session does not reconnect: a lost connection fails what
// is in flight and every later command with one clear error (the driver, index.ts, logs in again
// with a new session). Passwords stay in Buffers owned by the caller: never put in a message.

import type { Socket } from 'node:net';
import { nodeCrypto } from '../../host/lazy-node-modules.ts';
import { BlockError } from '../../errors.ts';
import { dataSegmentLength, encodeKeys, encodePdu, newBhs, opcodeOf, ittOf, OP, parseKeys, PduFramer, RESERVED_TAG, type Pdu } from './pdu.ts';
import { parseSense, type Sense } from './scsi.ts';
import { ConnectTimeout, connectSocket } from '../../util/connect-socket.ts';

export type HeaderDigest = 'crc32c' | 'none' | 'crc32c-none' | 'none-crc32c';

export interface SessionOptions {
  host: string;
  port: number;
  initiatorName: string;
  /** Absent for a discovery session. */
  targetName?: string;
  sessionType: 'Normal' | 'Discovery';
  user?: string;
  /** CHAP secret (the caller owns and clears it). */
  password?: Buffer;
  headerDigest: HeaderDigest;
  /** Per-command timeout in ms, 0 for none (QEMU's `timeout` option, in seconds there). */
  commandTimeoutMs: number;
  /** Limit on TCP connect plus login, in ms. */
  loginTimeoutMs: number;
  /** Ping the target with a NOP-Out this often once logged in (QEMU: every 5 s); three pings
   *  unanswered end the session. 0 or absent: no pings. */
  nopIntervalMs?: number;
}

/** Values both sides agreed on (RFC 7143 13.x). */
export interface Negotiated {
  headerDigest: boolean;
  /** What the target accepts in one data segment (its declared MaxRecvDataSegmentLength). */
  targetMaxRecv: number;
  maxBurst: number;
  firstBurst: number;
  immediateData: boolean;
  initialR2T: boolean;
}

export interface ScsiResult {
  status: number;
  /** Data-In received (up to the highest byte the target sent). */
  data: Buffer;
  sense?: Sense;
}

/** What Platter offers: libiscsi's defaults, but for MaxRecvDataSegmentLength, 1 MiB rather than
 *  256 KiB: a 1 MiB read comes back as one Data-In PDU, one header read and then the segment read
 *  straight into the reader's buffer (convert from tgtd: 0.43 -> 0.35 s for 512 MiB). */
const OUR_MAX_RECV = 1048576;
/** Bytes one socket read may deliver (see open()). */
const RECV_BUFFER = 1 << 20;
const OUR_MAX_BURST = 16776192;
const OUR_FIRST_BURST = 262144;
/** What a login response's data segment may be (8192 by the RFC; slack for lax targets). */
const LOGIN_MAX_SEGMENT = 65536;

const LOGIN_STATUS: Record<number, string> = {
  0x0101: 'Target moved temporarily',
  0x0102: 'Target moved permanently',
  0x0200: 'Initiator error',
  0x0201: 'Authentication failure',
  0x0202: 'Authorization failure',
  0x0203: 'Target not found',
  0x0204: 'Target removed',
  0x0205: 'Unsupported version',
  0x0206: 'Too many connections',
  0x0207: 'Missing parameter',
  0x0208: "Can't include in session",
  0x0209: 'Session type not supported',
  0x020a: 'Session does not exist',
  0x020b: 'Invalid request during login',
  0x0300: 'Target error',
  0x0301: 'Service unavailable',
  0x0302: 'Out of resources',
};

const NET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
  EPIPE: 'Broken pipe',
};

const ioError = (m: string) => new BlockError('Io', m);

/** Serial-number comparison (RFC 1982, 32 bits): a < b. */
const snLess = (a: number, b: number): boolean => a !== b && ((b - a) >>> 0) < 0x80000000;

/** How the socket's reads reach the session's framer (set up before the session exists). */
interface Receiver {
  /** Bytes read into the receive buffer. */
  deliver(chunk: Buffer): void;
  /** Bytes read straight into the segment under way (a buffer readBuffer gave). */
  inPlace(n: number): void;
  /** Where the next read goes: the segment under way, else (part of) the receive buffer. */
  readBuffer(recv: Buffer): Buffer;
}

interface Task {
  onPdu(p: Pdu): void;
  fail(e: Error): void;
  /** For a read: where a Data-In segment at `off` of `len` bytes goes, received in place. */
  dataDest?(off: number, len: number): Buffer | undefined;
}

export class IscsiSession {
  readonly #socket: Socket;
  readonly #framer: PduFramer;
  readonly #opts: SessionOptions;
  readonly #tasks = new Map<number, Task>();
  #itt = 1;
  #cmdSN = 0;
  #expCmdSN = 0;
  #maxCmdSN = 0;
  #expStatSN = 0;
  #headerDigest = false;
  #dead: Error | undefined;
  /** Commands waiting for the CmdSN window to open. */
  #windowWaiters: (() => void)[] = [];
  #nopTimer: NodeJS.Timeout | undefined;
  #nopsInFlight = 0;
  negotiated: Negotiated = { headerDigest: false, targetMaxRecv: 8192, maxBurst: 262144, firstBurst: 65536, immediateData: true, initialR2T: true };

  private constructor(socket: Socket, opts: SessionOptions, receive: Receiver) {
    this.#socket = socket;
    this.#opts = opts;
    this.#framer = new PduFramer((p) => this.#onPdu(p));
    this.#framer.sink = (bhs) => (opcodeOf(bhs) === OP.DATA_IN ? this.#tasks.get(ittOf(bhs))?.dataDest?.(bhs.readUInt32BE(40), dataSegmentLength(bhs)) : undefined);
    // Login PDUs carry a few keys (RFC 7143 6.1: at most 8192 bytes per segment then).
    this.#framer.maxSegment = LOGIN_MAX_SEGMENT;
    this.#framer.borrowed = true;
    const fed = (feed: () => void) => {
      if (this.#dead) return;
      try {
        feed();
      } catch (e) {
        this.#kill(e instanceof Error ? e : ioError(String(e)));
      }
    };
    receive.deliver = (chunk) => fed(() => this.#framer.push(chunk));
    receive.inPlace = (n) => fed(() => this.#framer.receivedInPlace(n));
    receive.readBuffer = (recv) => {
      const target = this.#dead ? undefined : this.#framer.readTarget();
      if (target) return target;
      const n = this.#framer.nextReadSize();
      return n === undefined || n >= recv.length ? recv : recv.subarray(0, n);
    };
    socket.on('error', (e: NodeJS.ErrnoException) => this.#kill(ioError(`iSCSI: connection to ${this.#where()} failed: ${NET_ERRORS[e.code ?? ''] ?? e.message}`)));
    socket.on('close', () => this.#kill(ioError(`iSCSI: the target at ${this.#where()} closed the connection`)));
  }

  #where(): string {
    return this.#opts.host.includes(':') ? `[${this.#opts.host}]:${this.#opts.port}` : `${this.#opts.host}:${this.#opts.port}`;
  }

  /** Connect and log in; the result is in full feature phase. */
  static async open(opts: SessionOptions): Promise<IscsiSession> {
    // The socket reads as libiscsi does: a header, then a Data-In segment straight into the
    // reader's buffer (PduFramer.readTarget, .sink), so the kernel's copy is the only one. Other
    // bytes land in one 1 MiB buffer of this session's (not 64 KiB per read, Node's default: a
    // 512 MiB read took 8,700 socket reads and 'data' events), each read stopping where the
    // header or PDU under way ends (PduFramer.nextReadSize); the framer copies out what it keeps
    // (PduFramer.borrowed). Reading segments through the receive buffer cost 67 ms of copying
    // on the main thread for 512 MiB.
    const receive: Receiver = { deliver: () => {}, inPlace: () => {}, readBuffer: (b) => b };
    // An ArrayBuffer of its own (never Node's pool): a read into any other memory was in place.
    const recv = Buffer.allocUnsafeSlow(RECV_BUFFER);
    const where = opts.host.includes(':') ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
    let socket: Socket;
    try {
      socket = await connectSocket({ host: opts.host, port: opts.port, onread: { buffer: () => receive.readBuffer(recv), callback: (n: number, buf: Uint8Array) => {
            if (buf.buffer === recv.buffer) receive.deliver(Buffer.from(buf.buffer, buf.byteOffset, n));
            else receive.inPlace(n);
            return true;
          } } }, opts.loginTimeoutMs);
    } catch (e) {
      throw ioError(`Failed to connect to ${where}: ${e instanceof ConnectTimeout ? 'Connection timed out' : (NET_ERRORS[(e as NodeJS.ErrnoException).code ?? ''] ?? (e as Error).message)}`);
    }
    socket.setNoDelay(true);
    const session = new IscsiSession(socket, opts, receive);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        session.#login(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(ioError(`Failed to log in to target: no answer from ${session.#where()}`)), opts.loginTimeoutMs);
        }),
      ]);
    } catch (e) {
      session.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    if (opts.nopIntervalMs) session.#startNops(opts.nopIntervalMs);
    return session;
  }

  /** QEMU's NOP timer (MAX_NOP_FAILURES = 3): a target that stops answering (host gone, process
   *  stopped) fails the session instead of leaving requests waiting forever. */
  #startNops(intervalMs: number): void {
    this.#nopTimer = setInterval(() => {
      if (this.#dead) return;
      if (this.#nopsInFlight >= 3) {
        this.#kill(ioError(`iSCSI: NOP timeout: the target at ${this.#where()} stopped answering`));
        return;
      }
      const b = newBhs(OP.NOP_OUT, true);
      b[1] = 0x80;
      const itt = this.#nextItt();
      b.writeUInt32BE(itt, 16);
      b.writeUInt32BE(RESERVED_TAG, 20);
      b.writeUInt32BE(this.#cmdSN, 24);
      b.writeUInt32BE(this.#expStatSN, 28);
      this.#nopsInFlight++;
      this.#tasks.set(itt, {
        onPdu: () => {
          this.#tasks.delete(itt);
          this.#nopsInFlight = 0;
        },
        fail: () => {},
      });
      try {
        this.#send(b);
      } catch {
        /* connection gone: already reported */
      }
    }, intervalMs);
    this.#nopTimer.unref();
  }

  #kill(e: Error): void {
    if (this.#dead) return;
    this.#dead = e;
    clearInterval(this.#nopTimer);
    this.#socket.destroy();
    const tasks = [...this.#tasks.values()];
    this.#tasks.clear();
    for (const t of tasks) t.fail(e);
    for (const w of this.#windowWaiters.splice(0)) w();
  }

  /** Drop the connection at once (no logout). */
  close(): void {
    this.#kill(ioError('iSCSI: the session is closed'));
  }

  get alive(): boolean {
    return !this.#dead;
  }

  #send(bhs: Buffer, data?: Buffer): void {
    if (this.#dead) throw this.#dead;
    const parts = encodePdu(bhs, data, this.#headerDigest);
    this.#socket.cork();
    for (const p of parts) this.#socket.write(p);
    this.#socket.uncork();
  }

  #nextItt(): number {
    let itt = this.#itt;
    while (itt === RESERVED_TAG || this.#tasks.has(itt)) itt = (itt + 1) >>> 0;
    this.#itt = (itt + 1) >>> 0;
    return itt;
  }

  /** Take ExpCmdSN/MaxCmdSN (bytes 28, 32) and StatSN (24) from a target PDU. */
  #sequence(p: Pdu, hasStatus: boolean): void {
    const exp = p.bhs.readUInt32BE(28);
    const max = p.bhs.readUInt32BE(32);
    // RFC 7143 4.2.2.1: ignore a window whose MaxCmdSN < ExpCmdSN - 1.
    if (!snLess(max, (exp - 1) >>> 0)) {
      if (snLess(this.#expCmdSN, exp)) this.#expCmdSN = exp;
      if (snLess(this.#maxCmdSN, max)) this.#maxCmdSN = max;
    }
    if (hasStatus) this.#expStatSN = (p.bhs.readUInt32BE(24) + 1) >>> 0;
    if (this.#windowWaiters.length) for (const w of this.#windowWaiters.splice(0)) w();
  }

  #onPdu(p: Pdu): void {
    const op = opcodeOf(p.bhs);
    switch (op) {
      case OP.NOP_IN: {
        this.#sequence(p, false);
        const ttt = p.bhs.readUInt32BE(20);
        const itt = ittOf(p.bhs);
        if (itt !== RESERVED_TAG) this.#tasks.get(itt)?.onPdu(p); // the answer to our ping
        if (ttt !== RESERVED_TAG) {
          // The target pings: answer with an immediate NOP-Out carrying its tag (11.18).
          const b = newBhs(OP.NOP_OUT, true);
          b[1] = 0x80;
          p.bhs.copy(b, 8, 8, 16);
          b.writeUInt32BE(RESERVED_TAG, 16);
          b.writeUInt32BE(ttt, 20);
          b.writeUInt32BE(this.#cmdSN, 24);
          b.writeUInt32BE(this.#expStatSN, 28);
          try {
            this.#send(b);
          } catch {
            /* connection gone: already reported */
          }
        }
        return;
      }
      case OP.ASYNC:
        this.#sequence(p, false);
        // Event 1-3: the target asks for logout or will drop the connection; the connection's
        // close then fails what is in flight. Other events need nothing here.
        return;
      case OP.REJECT: {
        this.#sequence(p, true);
        const rejected = p.data.length >= 48 ? ittOf(p.data) : RESERVED_TAG;
        const t = this.#tasks.get(rejected);
        const e = ioError(`iSCSI: the target rejected a request (reason 0x${p.bhs[2]!.toString(16).padStart(2, '0')})`);
        if (t) {
          this.#tasks.delete(rejected);
          t.fail(e);
        } else this.#kill(e);
        return;
      }
      default: {
        const itt = ittOf(p.bhs);
        const t = this.#tasks.get(itt);
        const hasStatus = op === OP.SCSI_RSP || op === OP.TEXT_RSP || op === OP.LOGOUT_RSP || op === OP.LOGIN_RSP || op === OP.TMF_RSP || (op === OP.DATA_IN && (p.bhs[1]! & 0x01) !== 0);
        if (op !== OP.LOGIN_RSP) this.#sequence(p, hasStatus);
        if (!t) {
          this.#kill(ioError(`iSCSI: the target answered an unknown task (opcode 0x${op.toString(16)})`));
          return;
        }
        t.onPdu(p);
      }
    }
  }

  /** Send a PDU expecting answers on its ITT; resolves with the first answer. */
  #request(bhs: Buffer, data: Buffer | undefined): Promise<Pdu> {
    return new Promise<Pdu>((resolve, reject) => {
      if (this.#dead) return reject(this.#dead);
      const itt = bhs.readUInt32BE(16);
      this.#tasks.set(itt, {
        onPdu: (p) => {
          this.#tasks.delete(itt);
          resolve(p);
        },
        fail: reject,
      });
      this.#send(bhs, data);
    });
  }

  // ---- Login (RFC 7143 6, 11.12, 11.13) ----

  async #login(): Promise<void> {
    const o = this.#opts;
    // A random ISID (10.12.5) and first CmdSN: they only need to differ between sessions, as
    // libiscsi's rand() gives them, so Math.random (node:crypto alone is 5-9 ms of every start).
    const isid = Buffer.from([0x80, ...Array.from({ length: 5 }, () => Math.floor(Math.random() * 256))]);
    const itt = this.#nextItt();
    this.#cmdSN = Math.floor(Math.random() * 0x7fffffff) || 1;
    let stage = 0; // 0 security, 1 operational, 3 full feature
    const leading: [string, string][] = [['InitiatorName', o.initiatorName]];
    if (o.targetName !== undefined) leading.push(['TargetName', o.targetName]);
    leading.push(['SessionType', o.sessionType]);
    const chap = o.user !== undefined;
    if (chap && !o.password) throw new BlockError('InvalidArgument', 'CHAP username specified but no password was given', {}, { code: 'Worded' });
    let keys: [string, string][] = [...leading, ['AuthMethod', chap ? 'CHAP,None' : 'None']];
    let chapStep: 'method' | 'algorithm' | 'response' | 'done' = chap ? 'method' : 'done';
    let transit = !chap;
    let operationalSent = false;
    for (let round = 0; round < 16; round++) {
      const nsg = stage === 0 ? 1 : 3;
      const b = newBhs(OP.LOGIN_REQ, true);
      b[1] = (transit ? 0x80 : 0) | (stage << 2) | (transit ? nsg : 0);
      isid.copy(b, 8);
      b.writeUInt32BE(itt, 16);
      b.writeUInt32BE(this.#cmdSN, 24);
      b.writeUInt32BE(this.#expStatSN, 28);
      const rsp = await this.#request(b, encodeKeys(keys));
      if (opcodeOf(rsp.bhs) !== OP.LOGIN_RSP) throw ioError('Failed to log in to target: unexpected answer');
      const status = (rsp.bhs[36]! << 8) | rsp.bhs[37]!;
      if (status !== 0) throw new BlockError(status === 0x0201 || status === 0x0202 ? 'Permission' : status === 0x0203 || status === 0x0204 ? 'NotFound' : 'Io', `Failed to log in to target. Status: ${LOGIN_STATUS[status] ?? 'Unknown'}(${status})`);
      this.#expStatSN = (rsp.bhs.readUInt32BE(24) + 1) >>> 0;
      this.#expCmdSN = rsp.bhs.readUInt32BE(28);
      this.#maxCmdSN = rsp.bhs.readUInt32BE(32);
      const flags = rsp.bhs[1]!;
      if (flags & 0x40) throw ioError('Failed to log in to target: continued login text is not supported');
      const got = new Map(parseKeys(rsp.data));
      const rspT = (flags & 0x80) !== 0;
      const rspCsg = (flags >> 2) & 3;
      const rspNsg = flags & 3;
      if (rspCsg !== stage) throw ioError('Failed to log in to target: the target answered for another stage');
      if (stage === 1 || (stage === 0 && got.size > 0)) this.#applyKeys(got);
      keys = [];
      if (stage === 0) {
        if (chapStep === 'method') {
          const method = got.get('AuthMethod');
          if (method === 'CHAP') {
            keys = [['CHAP_A', '5']];
            chapStep = 'algorithm';
          } else if (method === 'None') {
            chapStep = 'done';
            transit = true;
          } else throw new BlockError('Permission', `Failed to log in to target: unsupported authentication method '${method ?? ''}'`);
          if (chapStep !== 'done') continue;
        } else if (chapStep === 'algorithm') {
          if (got.get('CHAP_A') !== '5') throw new BlockError('Permission', 'Failed to log in to target: the target offers no CHAP algorithm Platter supports (MD5)');
          const id = Number(got.get('CHAP_I'));
          const challenge = decodeChapBinary(got.get('CHAP_C'));
          if (!Number.isInteger(id) || id < 0 || id > 255 || !challenge) throw ioError('Failed to log in to target: malformed CHAP challenge');
          const h = nodeCrypto().createHash('md5');
          h.update(Buffer.from([id]));
          h.update(o.password!);
          h.update(challenge);
          keys = [
            ['CHAP_N', o.user!],
            ['CHAP_R', `0x${h.digest('hex')}`],
          ];
          chapStep = 'response';
          transit = true;
          continue;
        } else if (chapStep === 'response') chapStep = 'done';
        if (rspT && rspNsg === 1) {
          stage = 1;
          transit = true;
        }
        if (stage === 0) continue;
      }
      if (stage === 1) {
        if (!operationalSent) {
          keys = this.#operationalKeys();
          operationalSent = true;
          transit = true;
          if (!(rspT && rspCsg === 1)) {
            // The security stage just ended: first operational request.
            continue;
          }
        }
        if (rspT && rspCsg === 1 && rspNsg === 3) {
          this.#finishLogin(got);
          return;
        }
        continue;
      }
    }
    throw ioError('Failed to log in to target: the negotiation did not finish');
  }

  #digestOffer(): string {
    switch (this.#opts.headerDigest) {
      case 'crc32c':
        return 'CRC32C';
      case 'none':
        return 'None';
      case 'crc32c-none':
        return 'CRC32C,None';
      default:
        return 'None,CRC32C';
    }
  }

  #operationalKeys(): [string, string][] {
    const k: [string, string][] = [['HeaderDigest', this.#digestOffer()], ['DataDigest', 'None']];
    if (this.#opts.sessionType === 'Normal') {
      k.push(
        ['DefaultTime2Wait', '2'],
        ['DefaultTime2Retain', '0'],
        ['IFMarker', 'No'],
        ['OFMarker', 'No'],
        ['ErrorRecoveryLevel', '0'],
        ['InitialR2T', 'No'],
        ['ImmediateData', 'Yes'],
        ['MaxBurstLength', String(OUR_MAX_BURST)],
        ['FirstBurstLength', String(OUR_FIRST_BURST)],
        ['MaxOutstandingR2T', '1'],
        ['MaxConnections', '1'],
        ['DataPDUInOrder', 'Yes'],
        ['DataSequenceInOrder', 'Yes'],
      );
    }
    k.push(['MaxRecvDataSegmentLength', String(OUR_MAX_RECV)]);
    return k;
  }

  /** Operational values from a login response (RFC 7143 13: results of each key's function). */
  #applyKeys(got: Map<string, string>): void {
    const n = this.negotiated;
    const num = (k: string): number | undefined => {
      const v = got.get(k);
      if (v === undefined) return undefined;
      const x = Number(v);
      if (!Number.isInteger(x) || x < 512 || x > 16777215) throw ioError(`Failed to log in to target: invalid ${k} '${v}'`);
      return x;
    };
    const mrdsl = num('MaxRecvDataSegmentLength');
    if (mrdsl !== undefined) n.targetMaxRecv = mrdsl;
    const mb = num('MaxBurstLength');
    if (mb !== undefined) n.maxBurst = Math.min(mb, OUR_MAX_BURST);
    const fb = num('FirstBurstLength');
    if (fb !== undefined) n.firstBurst = Math.min(fb, OUR_FIRST_BURST);
    const im = got.get('ImmediateData');
    if (im !== undefined) n.immediateData = im === 'Yes';
    const ir = got.get('InitialR2T');
    if (ir !== undefined) n.initialR2T = ir !== 'No';
    const hd = got.get('HeaderDigest');
    if (hd !== undefined) {
      if (hd !== 'CRC32C' && hd !== 'None') throw ioError(`Failed to log in to target: the target refused header digest ${this.#digestOffer()}`);
      n.headerDigest = hd === 'CRC32C';
    }
    const dd = got.get('DataDigest');
    if (dd !== undefined && dd !== 'None') throw ioError('Failed to log in to target: the target insists on data digests');
  }

  #finishLogin(got: Map<string, string>): void {
    this.#applyKeys(got);
    const n = this.negotiated;
    if (n.firstBurst > n.maxBurst) n.firstBurst = n.maxBurst;
    this.#headerDigest = n.headerDigest;
    this.#framer.headerDigest = n.headerDigest;
    this.#cmdSN = this.#expCmdSN;
    this.#framer.maxSegment = OUR_MAX_RECV;
  }

  // ---- Full feature phase ----

  async #windowOpen(): Promise<void> {
    while (!this.#dead && snLess(this.#maxCmdSN, this.#cmdSN)) {
      await new Promise<void>((r) => this.#windowWaiters.push(r));
    }
    if (this.#dead) throw this.#dead;
  }

  /**
   * One SCSI command. `read` bytes of Data-In are expected, or `write` is the Data-Out buffer
   * (sent as immediate data, unsolicited Data-Out and on R2T, each PDU within the target's
   * MaxRecvDataSegmentLength and each burst within MaxBurstLength/FirstBurstLength).
   */
  async scsi(lun: number, cdbBytes: Buffer, io: { read?: number; readInto?: Buffer; write?: Buffer }): Promise<ScsiResult> {
    await this.#windowOpen();
    const n = this.negotiated;
    const itt = this.#nextItt();
    const cmdSN = this.#cmdSN;
    this.#cmdSN = (this.#cmdSN + 1) >>> 0;
    const out = io.write;
    const readLen = io.readInto ? io.readInto.length : (io.read ?? 0);
    const expected = out ? out.length : readLen;
    const b = newBhs(OP.SCSI_CMD);
    b[1] = 0x01 | (out ? 0x20 : 0) | (readLen > 0 ? 0x40 : 0); // simple task attribute
    encodeLun(lun).copy(b, 8);
    b.writeUInt32BE(itt, 16);
    b.writeUInt32BE(expected, 20);
    b.writeUInt32BE(cmdSN, 24);
    b.writeUInt32BE(this.#expStatSN, 28);
    cdbBytes.copy(b, 32);
    let immediate: Buffer | undefined;
    let unsolicitedEnd = 0;
    if (out && out.length > 0) {
      const burst = Math.min(out.length, n.firstBurst);
      if (n.immediateData) immediate = out.subarray(0, Math.min(burst, n.targetMaxRecv));
      unsolicitedEnd = n.initialR2T ? (immediate?.length ?? 0) : burst;
    }
    const moreUnsolicited = unsolicitedEnd > (immediate?.length ?? 0);
    if (!moreUnsolicited) b[1]! |= 0x80;
    const readBuf = readLen > 0 ? (io.readInto ?? Buffer.alloc(readLen)) : Buffer.alloc(0);
    let received = 0;
    const timeoutMs = this.#opts.commandTimeoutMs;
    return new Promise<ScsiResult>((resolve, reject) => {
      if (this.#dead) return reject(this.#dead);
      let timer: NodeJS.Timeout | undefined;
      const finish = (r: ScsiResult | Error) => {
        clearTimeout(timer);
        this.#tasks.delete(itt);
        // A segment under way that the socket reads into readBuf: no read may land there any more.
        if (readLen > 0 && this.#framer.release(readBuf)) this.#kill(r instanceof Error ? r : ioError('iSCSI: a command ended while its data was arriving'));
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      const sendData = (ttt: number, from: number, to: number) => {
        let dataSN = 0;
        for (let off = from; off < to; ) {
          const len = Math.min(n.targetMaxRecv, to - off);
          const d = newBhs(OP.DATA_OUT);
          if (off + len >= to) d[1] = 0x80;
          encodeLun(lun).copy(d, 8);
          d.writeUInt32BE(itt, 16);
          d.writeUInt32BE(ttt, 20);
          d.writeUInt32BE(this.#expStatSN, 28);
          d.writeUInt32BE(dataSN++, 36);
          d.writeUInt32BE(off, 40);
          this.#send(d, out!.subarray(off, off + len));
          off += len;
        }
      };
      this.#tasks.set(itt, {
        fail: (e) => finish(e),
        // The next segment in order, inside the buffer: straight into it (checked again below).
        ...(readLen > 0 ? { dataDest: (off: number, len: number) => (off === received && off + len <= readBuf.length ? readBuf.subarray(off, off + len) : undefined) } : {}),
        onPdu: (p) => {
          const op = opcodeOf(p.bhs);
          try {
            if (op === OP.DATA_IN) {
              const off = p.bhs.readUInt32BE(40);
              if (off + p.data.length > readBuf.length) throw ioError('iSCSI: the target sent more data than asked for');
              // DataPDUInOrder=Yes, DataSequenceInOrder=Yes: each PDU continues the last, so no
              // byte of the buffer is left unwritten below `received`.
              if (off !== received) throw ioError('iSCSI: the target sent data out of order');
              // Received in place already (PduFramer.sink), or copied now.
              if (p.data.buffer !== readBuf.buffer || p.data.byteOffset !== readBuf.byteOffset + off) p.data.copy(readBuf, off);
              received = off + p.data.length;
              if (p.bhs[1]! & 0x01) finish({ status: p.bhs[3]!, data: readBuf.subarray(0, received) });
            } else if (op === OP.R2T) {
              if (!out) throw ioError('iSCSI: the target asked for data of a command that sends none');
              const off = p.bhs.readUInt32BE(40);
              const len = p.bhs.readUInt32BE(44);
              if (len === 0 || off + len > out.length || len > n.maxBurst) throw ioError('iSCSI: the target asked for data outside the command');
              sendData(p.bhs.readUInt32BE(20), off, off + len);
            } else if (op === OP.SCSI_RSP) {
              if (p.bhs[2] !== 0) throw ioError(`iSCSI: the target failed the command (response 0x${p.bhs[2]!.toString(16)})`);
              const status = p.bhs[3]!;
              let sense: Sense | undefined;
              if (p.data.length >= 2) {
                const sl = p.data.readUInt16BE(0);
                sense = parseSense(p.data.subarray(2, 2 + sl));
              }
              finish({ status, data: readBuf.subarray(0, received), ...(sense ? { sense } : {}) });
            } else throw ioError(`iSCSI: unexpected PDU (opcode 0x${op.toString(16)}) for a SCSI command`);
          } catch (e) {
            finish(e as Error);
            this.#kill(e as Error);
          }
        },
      });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          const e = ioError(`iSCSI: command timed out after ${Math.round(timeoutMs / 1000)} s`);
          finish(e);
          this.#kill(e);
        }, timeoutMs);
      }
      try {
        this.#send(b, immediate);
        if (moreUnsolicited) sendData(RESERVED_TAG, immediate?.length ?? 0, unsolicitedEnd);
      } catch (e) {
        finish(e as Error);
      }
    });
  }

  /** A Text Request (SendTargets discovery); continued responses are gathered (11.10, 11.11). */
  async text(keys: [string, string][]): Promise<[string, string][]> {
    await this.#windowOpen();
    const itt = this.#nextItt();
    const cmdSN = this.#cmdSN;
    this.#cmdSN = (this.#cmdSN + 1) >>> 0;
    const parts: Buffer[] = [];
    let data = encodeKeys(keys);
    let ttt = RESERVED_TAG;
    for (let round = 0; round < 1024; round++) {
      const b = newBhs(OP.TEXT_REQ);
      b[1] = 0x80;
      b.writeUInt32BE(itt, 16);
      b.writeUInt32BE(ttt, 20);
      b.writeUInt32BE(cmdSN, 24);
      b.writeUInt32BE(this.#expStatSN, 28);
      const rsp = await this.#request(b, data);
      if (opcodeOf(rsp.bhs) !== OP.TEXT_RSP) throw ioError('iSCSI: unexpected answer to a text request');
      parts.push(rsp.data);
      if (!(rsp.bhs[1]! & 0x40)) return parseKeys(Buffer.concat(parts));
      ttt = rsp.bhs.readUInt32BE(20);
      data = Buffer.alloc(0);
    }
    throw ioError('iSCSI: the text response did not end');
  }

  /** Log out (close the session) and close the connection; never throws. */
  async logout(): Promise<void> {
    if (this.#dead) return;
    const b = newBhs(OP.LOGOUT_REQ, true);
    b[1] = 0x80; // reason 0: close the session
    const itt = this.#nextItt();
    b.writeUInt32BE(itt, 16);
    b.writeUInt32BE(this.#cmdSN, 24);
    b.writeUInt32BE(this.#expStatSN, 28);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([this.#request(b, undefined), new Promise((r) => (timer = setTimeout(r, 2000)))]);
    } catch {
      /* gone already */
    } finally {
      clearTimeout(timer);
      this.#tasks.delete(itt);
      this.close();
    }
  }
}

/** An 8-byte LUN field (SAM-5 4.7): peripheral addressing below 256, flat space up to 16383. */
export function encodeLun(lun: number): Buffer {
  const b = Buffer.alloc(8);
  if (lun < 256) b[1] = lun;
  else {
    b[0] = 0x40 | ((lun >> 8) & 0x3f);
    b[1] = lun & 0xff;
  }
  return b;
}

/** A CHAP binary value: "0x" hex or "0b" base64 (RFC 7143 6.1). */
export function decodeChapBinary(v: string | undefined): Buffer | undefined {
  if (!v) return undefined;
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) {
    const hex = v.slice(2);
    return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  }
  if (/^0[bB][A-Za-z0-9+/]+=*$/.test(v)) return Buffer.from(v.slice(2), 'base64');
  return undefined;
}
