// A LUKS1 volume over any byte store (LUKS On-Disk Format Specification 1.2.x, sections 2-3:
// header, key slots, "Master key recovery" and "Adding a key"; layout and key-slot management
// as QEMU's crypto/block-luks.c does them). Used by the luks format driver (header at offset 0
// of the file) and by qcow2 encrypt.format=luks (header in clusters the LuksIo maps).
//
//   createLuksVolume(io, options, workers)  -> writes header + slot 0, returns the unlocked volume
//   readLuksHeader(io)                      -> validated header, without any key
//   openLuksVolume(io, passphrase, workers) -> unlocked volume (or 'Invalid password, ...')
//   volume.cipher                           -> SectorCipher for the payload
//   volume.addKeySlot / eraseKeySlots       -> qemu-img amend state=active|inactive
//
// Secrets: passphrases are read, never kept; the master key lives in the volume until close().

import { nodeCrypto } from '../host/lazy-node-modules.ts';
import { invalidArgument, invalidImage, throwIfAborted } from '../errors.ts';
import type { WorkerPool } from '../workers/pool.ts';
import { CIPHER_KEY_SIZES, HASH_DIGEST_LEN, isHashAlg, parseCipherAlg, requireSupportedFamily, type CipherMode, type HashAlg, type IvGenAlg, CIPHER_MODES, IVGEN_ALGS, HASH_ALGS } from './algorithms.ts';
import {
  decodeLuksHeader,
  encodeLuksHeader,
  keyMaterialSectors,
  LUKS_KEY_DISABLED,
  LUKS_KEY_ENABLED,
  LUKS_MAGIC,
  LUKS_NUM_KEY_SLOTS,
  LUKS_PHDR_SIZE,
  LUKS_SALT_SIZE,
  LUKS_SECTOR_SIZE,
  LUKS_STRIPES,
  LUKS_VERSION_1,
  type LuksHeader,
  type LuksKeySlot,
} from './luks-header.ts';
import { DEFAULT_ITER_TIME_MS, mkDigestIterations, slotIterations } from './pbkdf2.ts';
import { SectorCipher } from './sector-cipher.ts';
import type { SectorCipherSpec } from './sector-engine.ts';
import { LUKS_KEY_SLOT_ALIGN_SECTORS, slotAreaSectors, validateLuksHeader, type LuksParams } from './validate.ts';

/** Byte access to the region holding the LUKS header (offset 0 = the phdr). */
export interface LuksIo {
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Buffer): Promise<void>;
  /** Bytes available to the header + payload (payload offset must lie within). */
  size(): number;
  flush?(): Promise<void>;
}

/** qemu-img's luks create options, resolved (names as in qemu-block-drivers(7)). */
export interface LuksCreateOptions {
  passphrase: Uint8Array;
  cipherAlg?: string;
  cipherMode?: CipherMode;
  ivgenAlg?: IvGenAlg;
  /** When given, written into the mode string even for plain/plain64 (as QEMU does). */
  ivgenHashAlg?: HashAlg;
  hashAlg?: HashAlg;
  iterTimeMs?: number;
}

/** QEMU erases a slot's key material by overwriting it with random bytes this many times. */
const ERASE_PASSES = 16;
const MK_DIGEST_LEN = 20;

/** The message QEMU gives for a passphrase no active slot accepts. */
export const INVALID_PASSWORD = 'Invalid password, cannot unlock any keyslot';

/** Read and validate the header at offset 0 of `io`. */
export async function readLuksHeader(io: LuksIo): Promise<{ header: LuksHeader; params: LuksParams }> {
  if (io.size() < LUKS_PHDR_SIZE) throw invalidImage(`LUKS header is truncated: ${io.size()} bytes, expected at least ${LUKS_PHDR_SIZE}`);
  const header = decodeLuksHeader(await io.read(0, LUKS_PHDR_SIZE));
  return { header, params: validateLuksHeader(header, io.size()) };
}

/** qemu-img info "format-specific" data of type 'luks', in qemu-img's key order. */
export function luksInfoData(header: LuksHeader, params: LuksParams): Record<string, unknown> {
  return {
    'ivgen-alg': params.ivgenAlg,
    'hash-alg': params.hashAlg,
    'cipher-alg': params.cipherAlg,
    uuid: header.uuid,
    ...(params.ivgenHashAlg ? { 'ivgen-hash-alg': params.ivgenHashAlg } : {}),
    'cipher-mode': params.cipherMode,
    slots: header.keySlots.map((s) =>
      s.active === LUKS_KEY_ENABLED
        ? { active: true, iters: s.iterations, 'key-offset': s.keyMaterialOffset * LUKS_SECTOR_SIZE, stripes: s.stripes }
        : { active: false, 'key-offset': s.keyMaterialOffset * LUKS_SECTOR_SIZE },
    ),
    'payload-offset': params.payloadOffset,
    'master-key-iters': header.mkDigestIterations,
  };
}

async function tryUnlockSlot(io: LuksIo, header: LuksHeader, params: LuksParams, index: number, passphrase: Uint8Array, workers: WorkerPool): Promise<Buffer | undefined> {
  const slot = header.keySlots[index]!;
  if (slot.active !== LUKS_KEY_ENABLED) return undefined;
  const material = await io.read(slot.keyMaterialOffset * LUKS_SECTOR_SIZE, keyMaterialSectors(header.keyBytes, slot.stripes) * LUKS_SECTOR_SIZE);
  // Secret-bearing copies are transferred (not cloned): the worker zeroes the only copy.
  const pw = new Uint8Array(passphrase);
  const mat = new Uint8Array(material);
  material.fill(0);
  const key = await workers.run(
    'luksUnlockSlot',
    {
      passphrase: pw,
      salt: new Uint8Array(slot.salt),
      iterations: slot.iterations,
      material: mat,
      keyBytes: header.keyBytes,
      stripes: slot.stripes,
      hash: params.hashAlg,
      spec: params.spec,
      mkDigest: new Uint8Array(header.mkDigest),
      mkDigestSalt: new Uint8Array(header.mkDigestSalt),
      mkDigestIterations: header.mkDigestIterations,
    },
    [pw.buffer, mat.buffer],
  );
  return key.length > 0 ? Buffer.from(key.buffer, key.byteOffset, key.length) : undefined;
}

/** Try every active slot in order; the first that opens gives the master key. */
async function findKey(io: LuksIo, header: LuksHeader, params: LuksParams, passphrase: Uint8Array, workers: WorkerPool): Promise<{ key: Buffer; slot: number }> {
  for (let i = 0; i < LUKS_NUM_KEY_SLOTS; i++) {
    const key = await tryUnlockSlot(io, header, params, i, passphrase, workers);
    if (key) return { key, slot: i };
  }
  throw invalidArgument(INVALID_PASSWORD, {}, { code: 'WrongPassphrase' });
}

/** A new LUKS payload's cipher options and their defaults (qemu-block-drivers(7), by QEMU's
 *  option names; qcow2 names them with "encrypt." in front). The GUI's passphrase dialog shows
 *  these through the service's listFormats. */
export const LUKS_CREATE_DEFAULTS: Readonly<Record<string, string | number>> = {
  'cipher-alg': 'aes-256',
  'cipher-mode': 'xts',
  'ivgen-alg': 'plain64',
  'ivgen-hash-alg': 'sha256',
  'hash-alg': 'sha256',
  'iter-time': DEFAULT_ITER_TIME_MS,
};

/** Resolve and check create options against what LUKS1 and Platter support. */
function resolveCreate(o: LuksCreateOptions): { family: string; masterKeyLen: number; cipherAlg: string; mode: CipherMode; ivgen: IvGenAlg; ivgenHash: HashAlg | undefined; hash: HashAlg; iterTime: number } {
  const cipherAlg = o.cipherAlg ?? 'aes-256';
  const { family, keyBytes } = parseCipherAlg(cipherAlg);
  requireSupportedFamily(family);
  const mode = o.cipherMode ?? 'xts';
  if (!CIPHER_MODES.includes(mode)) throw invalidArgument(`Parameter 'cipher-mode' does not accept value '${mode}' (expecting one of: ${CIPHER_MODES.join(', ')})`);
  const ivgen = o.ivgenAlg ?? 'plain64';
  if (!IVGEN_ALGS.includes(ivgen)) throw invalidArgument(`Parameter 'ivgen-alg' does not accept value '${ivgen}' (expecting one of: ${IVGEN_ALGS.join(', ')})`);
  const hash = o.hashAlg ?? 'sha256';
  for (const [name, v] of [['hash-alg', hash], ['ivgen-hash-alg', o.ivgenHashAlg]] as const) {
    if (v !== undefined && !isHashAlg(v)) throw invalidArgument(`Parameter '${name}' does not accept value '${v}' (expecting one of: ${HASH_ALGS.join(', ')})`);
  }
  const ivgenHash = o.ivgenHashAlg ?? (ivgen === 'essiv' ? 'sha256' : undefined);
  if (ivgen === 'essiv' && !CIPHER_KEY_SIZES[family]!.includes(HASH_DIGEST_LEN[ivgenHash!])) {
    throw invalidArgument(`No AES cipher with key size ${HASH_DIGEST_LEN[ivgenHash!]} available`);
  }
  return { family, masterKeyLen: mode === 'xts' ? keyBytes * 2 : keyBytes, cipherAlg, mode, ivgen, ivgenHash, hash, iterTime: o.iterTimeMs ?? DEFAULT_ITER_TIME_MS };
}

/** Payload offset in bytes of a header createLuksVolume would write (qemu-img measure). */
export function luksPayloadOffsetFor(options: Omit<LuksCreateOptions, 'passphrase'>): number {
  const r = resolveCreate({ ...options, passphrase: new Uint8Array(0) });
  return (LUKS_KEY_SLOT_ALIGN_SECTORS + LUKS_NUM_KEY_SLOTS * slotAreaSectors(r.masterKeyLen, LUKS_STRIPES)) * LUKS_SECTOR_SIZE;
}

/**
 * Write a new LUKS1 header with slot 0 holding `passphrase` (QEMU's layout: key material from
 * sector 8, each slot's area rounded up to 8 sectors, payload right after slot 7). The caller
 * sizes the store (payloadOffset + payload) afterwards.
 */
export async function createLuksVolume(io: LuksIo, options: LuksCreateOptions, workers: WorkerPool): Promise<LuksVolume> {
  const r = resolveCreate(options);
  const masterKey = nodeCrypto().randomBytes(r.masterKeyLen);
  try {
    const mkDigestSalt = nodeCrypto().randomBytes(LUKS_SALT_SIZE);
    const mkIters = await mkDigestIterations(workers, r.hash, r.iterTime);
    const mkCopy = new Uint8Array(masterKey);
    const mkDigest = Buffer.from(await workers.run('pbkdf2', { password: mkCopy, salt: new Uint8Array(mkDigestSalt), iterations: mkIters, keyLen: MK_DIGEST_LEN, hash: r.hash }, [mkCopy.buffer]));
    const stride = slotAreaSectors(r.masterKeyLen, LUKS_STRIPES);
    const keySlots: LuksKeySlot[] = Array.from({ length: LUKS_NUM_KEY_SLOTS }, (_, i) => ({
      active: LUKS_KEY_DISABLED,
      iterations: 0,
      salt: Buffer.alloc(LUKS_SALT_SIZE),
      keyMaterialOffset: LUKS_KEY_SLOT_ALIGN_SECTORS + i * stride,
      stripes: LUKS_STRIPES,
    }));
    const modeSpec = `${r.mode}-${r.ivgen}${r.ivgenHash ? `:${r.ivgenHash}` : ''}`;
    const header: LuksHeader = {
      magic: Buffer.from(LUKS_MAGIC),
      version: LUKS_VERSION_1,
      cipherName: r.family,
      cipherMode: modeSpec,
      hashSpec: r.hash,
      payloadOffset: LUKS_KEY_SLOT_ALIGN_SECTORS + LUKS_NUM_KEY_SLOTS * stride,
      keyBytes: r.masterKeyLen,
      mkDigest,
      mkDigestSalt,
      mkDigestIterations: mkIters,
      uuid: nodeCrypto().randomUUID(),
      keySlots,
    };
    encodeLuksHeader(header); // refuses names too long for the header before anything is written
    const spec: SectorCipherSpec = { family: r.family, mode: r.mode, ivgen: r.ivgen, ...(r.ivgenHash ? { ivgenHash: r.ivgenHash } : {}) };
    const params: LuksParams = {
      cipherAlg: r.cipherAlg,
      cipherMode: r.mode,
      ivgenAlg: r.ivgen,
      ...(r.ivgen === 'essiv' ? { ivgenHashAlg: r.ivgenHash! } : {}),
      hashAlg: r.hash,
      spec,
      payloadOffset: header.payloadOffset * LUKS_SECTOR_SIZE,
    };
    const volume = new LuksVolume(io, header, params, masterKey, workers);
    await volume.storeKey(0, options.passphrase, r.iterTime);
    return volume;
  } finally {
    masterKey.fill(0);
  }
}

/** Open the LUKS header of `io` and unlock it with `passphrase`. */
export async function openLuksVolume(io: LuksIo, passphrase: Uint8Array, workers: WorkerPool): Promise<LuksVolume> {
  const { header, params } = await readLuksHeader(io);
  const { key } = await findKey(io, header, params, passphrase, workers);
  try {
    return new LuksVolume(io, header, params, key, workers);
  } finally {
    key.fill(0);
  }
}

/** An unlocked LUKS1 volume: payload cipher, info, key-slot management. */
export class LuksVolume {
  readonly header: LuksHeader;
  readonly params: LuksParams;
  readonly cipher: SectorCipher;
  readonly #io: LuksIo;
  readonly #masterKey: Buffer;
  readonly #workers: WorkerPool;

  /** Keeps its own copy of `masterKey`. */
  constructor(io: LuksIo, header: LuksHeader, params: LuksParams, masterKey: Uint8Array, workers: WorkerPool) {
    this.#io = io;
    this.header = header;
    this.params = params;
    this.#masterKey = Buffer.alloc(masterKey.length);
    this.#masterKey.set(masterKey);
    this.#workers = workers;
    this.cipher = new SectorCipher(params.spec, masterKey, workers);
  }

  /** Payload start in bytes from the header. */
  get payloadOffset(): number {
    return this.params.payloadOffset;
  }

  info(): Record<string, unknown> {
    return luksInfoData(this.header, this.params);
  }

  async #writeHeader(): Promise<void> {
    await this.#io.write(0, encodeLuksHeader(this.header));
    await this.#io.flush?.();
  }

  /** Seal the master key into slot `index` with `passphrase`: material first, then header. */
  async storeKey(index: number, passphrase: Uint8Array, iterTimeMs: number): Promise<void> {
    const slot = this.header.keySlots[index]!;
    const salt = nodeCrypto().randomBytes(LUKS_SALT_SIZE);
    const iterations = await slotIterations(this.#workers, this.params.hashAlg, this.header.keyBytes, iterTimeMs);
    const pw = new Uint8Array(passphrase);
    const mk = new Uint8Array(this.#masterKey);
    const material = await this.#workers.run(
      'luksSealSlot',
      { passphrase: pw, salt: new Uint8Array(salt), iterations, masterKey: mk, stripes: slot.stripes, hash: this.params.hashAlg, spec: this.params.spec },
      [pw.buffer, mk.buffer],
    );
    await this.#io.write(slot.keyMaterialOffset * LUKS_SECTOR_SIZE, Buffer.from(material.buffer, material.byteOffset, material.length));
    await this.#io.flush?.();
    slot.salt = salt;
    slot.iterations = iterations;
    slot.active = LUKS_KEY_ENABLED;
    await this.#writeHeader();
  }

  activeSlots(): number[] {
    return this.header.keySlots.flatMap((s, i) => (s.active === LUKS_KEY_ENABLED ? [i] : []));
  }

  /** Does `passphrase` open slot `index`? (PBKDF2 cost of that slot.) */
  async slotMatches(index: number, passphrase: Uint8Array): Promise<boolean> {
    const key = await tryUnlockSlot(this.#io, this.header, this.params, index, passphrase, this.#workers);
    key?.fill(0);
    return key !== undefined;
  }

  /** qemu-img amend state=active: put `newPassphrase` in `keyslot` (or the first free one). */
  async addKeySlot(o: { newPassphrase: Uint8Array; keyslot?: number; iterTimeMs?: number; force?: boolean }): Promise<number> {
    let index: number;
    if (o.keyslot !== undefined) {
      index = o.keyslot;
      checkSlotIndex(index);
    } else {
      index = this.header.keySlots.findIndex((s) => s.active !== LUKS_KEY_ENABLED);
      if (index < 0) throw invalidArgument("Can't add a keyslot - all keyslots are in use");
    }
    if (!o.force && this.header.keySlots[index]!.active === LUKS_KEY_ENABLED) {
      throw invalidArgument(`Refusing to overwrite active keyslot ${index} - please erase it first`);
    }
    await this.storeKey(index, o.newPassphrase, o.iterTimeMs ?? DEFAULT_ITER_TIME_MS);
    return index;
  }

  /** qemu-img amend state=inactive: erase `keyslot`, or every slot `oldPassphrase` opens. */
  async eraseKeySlots(o: { keyslot?: number; oldPassphrase?: Uint8Array; force?: boolean; signal?: AbortSignal }): Promise<number[]> {
    let targets: number[];
    if (o.keyslot !== undefined) {
      const index = o.keyslot;
      checkSlotIndex(index);
      if (o.oldPassphrase && !(await this.slotMatches(index, o.oldPassphrase))) {
        throw invalidArgument(`Given keyslot ${index} doesn't contain the given old password for erase operation`);
      }
      if (!o.force && this.header.keySlots[index]!.active !== LUKS_KEY_ENABLED) {
        throw invalidArgument(`Given keyslot ${index} is already erased (inactive) `);
      }
      if (!o.force && this.activeSlots().length === 1) {
        throw invalidArgument(`Attempt to erase the only active keyslot ${index} which will erase all the data in the image irreversibly - refusing operation`);
      }
      targets = [index];
    } else if (o.oldPassphrase) {
      targets = [];
      for (const i of this.activeSlots()) {
        throwIfAborted(o.signal);
        if (await this.slotMatches(i, o.oldPassphrase)) targets.push(i);
      }
      if (targets.length === 0) throw invalidArgument('No keyslots match given (old) password for erase operation');
      if (!o.force && targets.length === this.activeSlots().length) {
        throw invalidArgument('All the active keyslots match the (old) password that was given and erasing them will erase all the data in the image irreversibly - refusing operation');
      }
    } else {
      throw invalidArgument('To erase keyslot(s), either explicit keyslot index or the password currently contained in them must be given');
    }
    throwIfAborted(o.signal);
    for (const i of targets) await this.#eraseSlot(i);
    return targets;
  }

  /** Mark the slot disabled in the header, then overwrite its key material with random bytes. */
  async #eraseSlot(index: number): Promise<void> {
    const slot = this.header.keySlots[index]!;
    slot.active = LUKS_KEY_DISABLED;
    slot.iterations = 0;
    slot.salt = Buffer.alloc(LUKS_SALT_SIZE);
    await this.#writeHeader();
    const len = keyMaterialSectors(this.header.keyBytes, slot.stripes) * LUKS_SECTOR_SIZE;
    for (let pass = 0; pass < ERASE_PASSES; pass++) {
      await this.#io.write(slot.keyMaterialOffset * LUKS_SECTOR_SIZE, nodeCrypto().randomBytes(len));
    }
    await this.#io.flush?.();
  }

  /** Zero the master key and the payload cipher's key. */
  close(): void {
    this.#masterKey.fill(0);
    this.cipher.close();
  }
}

function checkSlotIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= LUKS_NUM_KEY_SLOTS) {
    throw invalidArgument(`Invalid keyslot ${index} specified, must be between 0 and ${LUKS_NUM_KEY_SLOTS - 1}`);
  }
}

