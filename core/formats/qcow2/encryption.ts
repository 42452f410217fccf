// qcow2 (and qcow v1) encryption glue (docs/interop/qcow2.txt "crypt_method", "Full disk
// encryption header pointer"; QEMU's qcow2_set_up_encryption / qcow2_read_extensions as
// inspiration): the LUKS header living in the clusters named by header extension 0x0537be77,
// legacy AES-CBC (crypt_method 1), and the per-sector encrypt/decrypt of guest data clusters.
// LUKS uses the HOST offset / 512 as IV sector; legacy AES the GUEST offset / 512.
// The cipher is attached to an open image through a WeakMap, so views (snapshots) share it.

import type { BlockNode } from '../../block/node.ts';
import type { OptionsTree } from '../../block/options-tree.ts';
import type { SecretStore } from '../../block/secrets.ts';
import { corrupt, invalidArgument, invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { createLuksVolume, luksInfoData, luksPayloadOffsetFor, openLuksVolume, readLuksHeader, type LuksCreateOptions, type LuksIo, type LuksVolume } from '../../crypto/luks-volume.ts';
import type { AmendContext } from '../../block/types.ts';
import type { OptionSpec, OptionValues } from '../../block/options-schema.ts';
import { LUKS_NUM_KEY_SLOTS } from '../../crypto/luks-header.ts';
import { openQcowAesCipher } from '../../crypto/qcow-aes.ts';
import type { SectorCipher } from '../../crypto/sector-cipher.ts';
import type { CipherMode, HashAlg, IvGenAlg } from '../../crypto/algorithms.ts';
import { DEFAULT_ITER_TIME_MS } from '../../crypto/pbkdf2.ts';
import { CRYPT_AES, CRYPT_LUKS, CRYPT_NONE } from './header.ts';

/** Encryption works on 512-byte sectors (QEMU: QCRYPTO_BLOCK_*_SECTOR_SIZE). */
export const CRYPT_SECTOR = 512;
/** The full disk encryption header pointer extension: u64 offset + u64 length (qcow2.txt). */
const CRYPTO_EXT_LEN = 16;

/** QEMU's message when I/O needs a key and no secret was given. */
export const KEY_SECRET_REQUIRED = "Parameter 'encrypt.key-secret' is required for cipher";
/** QEMU's refusal of compressed writes to an encrypted image. */
export const COMPRESSION_WITH_ENCRYPTION = 'Compression and encryption not supported at the same time';

export interface Qcow2Crypto {
  format: 'aes' | 'luks';
  /** Undefined when the image was opened without encrypt.key-secret (info only). */
  cipher: SectorCipher | undefined;
  /** IV sector from the host offset (luks) or the guest offset (aes). */
  ivFromHost: boolean;
  /** qemu-img info 'encrypt' data (without 'format'), as of now (key slots may change). */
  info(): Record<string, unknown>;
  /** The unlocked LUKS volume (key-slot amend); undefined for aes or without a secret. */
  volume?: LuksVolume;
  close(): void;
}

const attached = new WeakMap<object, Qcow2Crypto>();

/** The crypto state of an image (or of a view created with Object.create(image)). */
export function cryptoOf(img: object): Qcow2Crypto | undefined {
  for (let o: object | null = img; o; o = Object.getPrototypeOf(o) as object | null) {
    const c = attached.get(o);
    if (c) return c;
  }
  return undefined;
}

export function attachCrypto(img: object, c: Qcow2Crypto): void {
  attached.set(img, c);
}

/** Zero the keys of an image's own crypto state (views leave it alone). */
export function closeCrypto(img: object): void {
  attached.get(img)?.close();
  attached.delete(img);
}

/** The key-secret id of the open options: {encrypt: {'key-secret': id}} or flat 'encrypt.key-secret'. */
export function keySecretOption(options: OptionsTree | undefined): string | undefined {
  const flat = options?.['encrypt.key-secret'];
  if (typeof flat === 'string' && flat !== '') return flat;
  const enc = options?.['encrypt'];
  if (enc && typeof enc === 'object' && !Array.isArray(enc)) {
    const v = (enc as OptionsTree)['key-secret'];
    if (typeof v === 'string' && v !== '') return v;
  }
  return undefined;
}

/** Decode the FDE header pointer extension (offset, length), checked against the file. */
export function decodeCryptoExt(ext: Buffer | undefined, clusterSize: number, fileSize: number, ctx: BlockErrorContext): { offset: number; length: number } {
  if (!ext) throw invalidImage('Missing header extension for crypto header (encrypt.format=luks needs the full disk encryption header pointer)', ctx);
  if (ext.length < CRYPTO_EXT_LEN) throw invalidImage(`Invalid crypto header extension size: ${ext.length} bytes, expected ${CRYPTO_EXT_LEN}`, ctx);
  const off = ext.readBigUInt64BE(0);
  const len = ext.readBigUInt64BE(8);
  if (off > BigInt(Number.MAX_SAFE_INTEGER) || len > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidImage('Crypto header offset or length out of range', ctx);
  const offset = Number(off);
  const length = Number(len);
  if (offset % clusterSize !== 0) throw invalidImage(`Crypto header offset 0x${offset.toString(16)} is not aligned to the cluster size ${clusterSize}`, ctx);
  if (offset < clusterSize) throw invalidImage('Crypto header overlaps the qcow2 header', ctx);
  if (length === 0 || offset + length > fileSize) {
    throw invalidImage(`Crypto header (offset 0x${offset.toString(16)}, length ${length}) lies outside the image (file size ${fileSize})`, ctx);
  }
  return { offset, length };
}

/** Encode the FDE header pointer extension. */
export function encodeCryptoExt(offset: number, length: number): Buffer {
  const b = Buffer.alloc(CRYPTO_EXT_LEN);
  b.writeBigUInt64BE(BigInt(offset), 0);
  b.writeBigUInt64BE(BigInt(length), 8);
  return b;
}

/** The LUKS header region [offset, offset+length) of the image file as a LuksIo. */
function regionIo(file: BlockNode, offset: number, length: number, ctx: BlockErrorContext): LuksIo {
  const check = (o: number, n: number) => {
    if (o < 0 || n < 0 || o + n > length) throw corrupt(`LUKS header access [${o}, ${o + n}) beyond the crypto header clusters (length ${length})`, ctx);
  };
  return {
    read: async (o, n) => {
      check(o, n);
      return file.read(offset + o, n);
    },
    write: async (o, d) => {
      check(o, d.length);
      await file.write(offset + o, d);
    },
    size: () => length,
    flush: () => file.flush(),
  };
}

export interface OpenCryptoOptions {
  file: BlockNode;
  cryptMethod: number;
  cryptoExt: Buffer | undefined;
  clusterSize: number;
  options: OptionsTree | undefined;
  /** Describe only (OpenContext.noIo): no key is looked up or unlocked. */
  noIo?: boolean;
  secrets: SecretStore;
  workers: WorkerPool;
  warn: (m: string) => void;
  ctx: BlockErrorContext;
}

/** Set up decryption for an opened qcow2 image (nothing for crypt_method 0). */
export async function openCrypto(o: OpenCryptoOptions): Promise<Qcow2Crypto | undefined> {
  if (o.cryptMethod === CRYPT_NONE) return undefined;
  const id = o.noIo ? undefined : keySecretOption(o.options);
  // Legacy AES is flawed (qemu-block-drivers(7)), but qemu-img 7.2 opens and creates it without a
  // word (only system emulators refuse it): so does Platter; the GUI says it where it shows one.
  if (o.cryptMethod === CRYPT_AES) {
    const cipher = id !== undefined ? openQcowAesCipher(o.secrets.passphrase(id), o.workers) : undefined;
    return { format: 'aes', cipher, ivFromHost: false, info: () => ({}), close: () => cipher?.close() };
  }
  if (o.cryptMethod !== CRYPT_LUKS) throw unsupported(`Unsupported encryption method: ${o.cryptMethod}`, o.ctx);
  const { offset, length } = decodeCryptoExt(o.cryptoExt, o.clusterSize, o.file.size, o.ctx);
  const io = regionIo(o.file, offset, length, o.ctx);
  const { header, params } = await readLuksHeader(io);
  const volume = id !== undefined ? await openLuksVolume(io, o.secrets.passphrase(id), o.workers) : undefined;
  return { format: 'luks', cipher: volume?.cipher, ivFromHost: true, info: () => luksInfoData(volume?.header ?? header, params), ...(volume ? { volume } : {}), close: () => volume?.close() };
}

/** Set up decryption for a qcow v1 image (legacy AES only). */
export function openQcowV1Crypto(cryptMethod: number, options: OptionsTree | undefined, secrets: SecretStore, workers: WorkerPool, warn: (m: string) => void): Qcow2Crypto | undefined {
  if (cryptMethod === CRYPT_NONE) return undefined;
  const id = keySecretOption(options);
  const cipher = id !== undefined ? openQcowAesCipher(secrets.passphrase(id), workers) : undefined;
  return { format: 'aes', cipher, ivFromHost: false, info: () => ({}), close: () => cipher?.close() };
}

function needCipher(c: Qcow2Crypto): SectorCipher {
  if (!c.cipher) throw invalidArgument(KEY_SECRET_REQUIRED);
  return c.cipher;
}

function sectorOf(c: Qcow2Crypto, guest: number, host: number): number {
  const at = c.ivFromHost ? host : guest;
  if (at % CRYPT_SECTOR !== 0) throw invalidArgument(`Encrypted I/O must be aligned to ${CRYPT_SECTOR} bytes (offset ${at})`);
  return at / CRYPT_SECTOR;
}

/** Decrypt guest data read from host offset `host` (whole sectors). */
export function decryptData(c: Qcow2Crypto, guest: number, host: number, data: Buffer): Promise<Buffer> {
  return needCipher(c).decrypt(sectorOf(c, guest, host), data);
}

/** Encrypt guest data about to be written at host offset `host` (whole sectors). */
export function encryptData(c: Qcow2Crypto, guest: number, host: number, data: Buffer): Promise<Buffer> {
  return needCipher(c).encrypt(sectorOf(c, guest, host), data);
}

/** Fail early when writes are impossible (no key). */
export function requireKey(c: Qcow2Crypto): void {
  needCipher(c);
}

/** qemu-img info 'encrypt' object of format-specific data. */
export function encryptInfo(c: Qcow2Crypto): Record<string, unknown> {
  if (c.format === 'aes') return { format: 'aes' };
  // qemu-img's key order: 'format' comes right after 'uuid' (before any ivgen-hash-alg).
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.info())) {
    out[k] = v;
    if (k === 'uuid') out['format'] = 'luks';
  }
  return out;
}

// ---------------------------------------------------------------- create

export interface CryptoCreateParams {
  method: number;
  luks?: Omit<LuksCreateOptions, 'passphrase'>;
  secretId?: string;
}

const LUKS_SUBOPTS = ['cipher-alg', 'cipher-mode', 'ivgen-alg', 'ivgen-hash-alg', 'hash-alg', 'iter-time'];

/** Check the encrypt.* create options as qemu-img does; method CRYPT_NONE when unencrypted. */
export function cryptoCreateParams(o: Record<string, unknown>, format: 'qcow2' | 'qcow'): CryptoCreateParams {
  let fmt = o['encrypt.format'] as string | undefined;
  if (o['encryption'] === true) {
    if (fmt !== undefined && fmt !== 'aes') throw invalidArgument("Options 'encryption' and 'encrypt.format' are incompatible");
    fmt = 'aes';
  }
  const luksGiven = LUKS_SUBOPTS.filter((k) => o[`encrypt.${k}`] !== undefined);
  if (fmt === undefined) {
    if (o['encrypt.key-secret'] !== undefined || luksGiven.length > 0) throw invalidArgument('Encryption options given without encrypt.format');
    return { method: CRYPT_NONE };
  }
  if (fmt !== 'aes' && (fmt !== 'luks' || format === 'qcow')) throw invalidArgument(`Parameter 'encrypt.format' does not accept value '${fmt}'`);
  const secretId = o['encrypt.key-secret'];
  if (secretId === undefined || secretId === '') throw invalidArgument(KEY_SECRET_REQUIRED);
  if (fmt === 'aes') {
    if (luksGiven.length > 0) throw invalidArgument(`Invalid parameter 'encrypt.${luksGiven[0]}' for encrypt.format=aes`);
    return { method: CRYPT_AES, secretId: String(secretId) };
  }
  const iter = o['encrypt.iter-time'];
  const luks: Omit<LuksCreateOptions, 'passphrase'> = {
    cipherAlg: String(o['encrypt.cipher-alg'] ?? 'aes-256'),
    cipherMode: (o['encrypt.cipher-mode'] ?? 'xts') as CipherMode,
    ivgenAlg: (o['encrypt.ivgen-alg'] ?? 'plain64') as IvGenAlg,
    ...(o['encrypt.ivgen-hash-alg'] !== undefined ? { ivgenHashAlg: o['encrypt.ivgen-hash-alg'] as HashAlg } : {}),
    hashAlg: (o['encrypt.hash-alg'] ?? 'sha256') as HashAlg,
    iterTimeMs: iter !== undefined ? Number(iter) : DEFAULT_ITER_TIME_MS,
  };
  if (!Number.isInteger(luks.iterTimeMs) || luks.iterTimeMs! < 1) throw invalidArgument(`Parameter 'encrypt.iter-time' expects a positive number of milliseconds`);
  luksPayloadOffsetFor(luks); // validates algorithm names before anything is written
  return { method: CRYPT_LUKS, luks, secretId: String(secretId) };
}

/** Bytes of the LUKS header clusters for qemu-img measure (0 for aes/none). */
export function cryptoHeaderBytes(p: CryptoCreateParams, clusterSize: number): number {
  if (p.method !== CRYPT_LUKS || !p.luks) return 0;
  return Math.ceil(luksPayloadOffsetFor(p.luks) / clusterSize) * clusterSize;
}

/**
 * Write a new LUKS header for qcow2 create: `allocate(bytes)` returns the host offset of fresh
 * clusters; returns the extension to put in the header.
 */
export async function createLuksHeader(
  file: BlockNode,
  p: CryptoCreateParams,
  secrets: SecretStore,
  workers: WorkerPool,
  clusterSize: number,
  allocate: (clusters: number) => Promise<number>,
): Promise<Buffer> {
  const bytes = cryptoHeaderBytes(p, clusterSize);
  const offset = await allocate(bytes / clusterSize);
  const length = luksPayloadOffsetFor(p.luks!);
  // Fresh clusters may be past the end of the file: make them exist (zeros) first.
  if (file.size < offset + bytes) await file.write(offset, Buffer.alloc(bytes));
  const io = regionIo(file, offset, length, {});
  const volume = await createLuksVolume(io, { passphrase: secrets.passphrase(p.secretId!), ...p.luks! }, workers);
  volume.close();
  return encodeCryptoExt(offset, length);
}

// ---------------------------------------------------------------- amend (key slots)

/** qemu-img amend -o encrypt.* for qcow2 + luks (QEMU's qcow2 amend options, luks key slots). */
export const CRYPTO_AMEND_OPTIONS: readonly OptionSpec[] = [
  { name: 'encrypt.state', type: 'enum', values: ['active', 'inactive'], help: 'Select new state of affected keyslots (active/inactive)' },
  { name: 'encrypt.keyslot', type: 'number', min: 0, max: LUKS_NUM_KEY_SLOTS - 1, help: 'Select a single keyslot to modify explicitly' },
  { name: 'encrypt.old-secret', type: 'secret-id', help: 'Select all keyslots that match this password' },
  { name: 'encrypt.new-secret', type: 'secret-id', help: 'New secret to set in the matching keyslots. Empty string to erase' },
];

/** Apply encrypt.* amend options (nothing when none is given). Caller holds the image exclusively. */
export async function amendCrypto(img: object, o: OptionValues, ctx: AmendContext): Promise<void> {
  const given = (k: string) => o[`encrypt.${k}`] !== undefined;
  if (!['state', 'keyslot', 'old-secret', 'new-secret', 'iter-time'].some(given)) return;
  if (given('format')) throw invalidArgument("Changing the encryption format is not supported");
  const c = cryptoOf(img);
  if (!c) throw invalidArgument('Amending encryption options is not supported for an unencrypted image');
  if (c.format !== 'luks') throw unsupported('Amending encryption options is only supported for encrypt.format=luks');
  const v = c.volume;
  if (!v) throw invalidArgument(KEY_SECRET_REQUIRED);
  const state = o['encrypt.state'];
  if (state === undefined) throw invalidArgument("Parameter 'encrypt.state' is missing");
  const keyslot = o['encrypt.keyslot'] as number | undefined;
  const secret = (name: string) => {
    const id = o[`encrypt.${name}`];
    return id === undefined ? undefined : ctx.secrets.passphrase(String(id));
  };
  if (state === 'active') {
    if (!given('new-secret')) throw invalidArgument("'new-secret' is required to activate a keyslot");
    if (given('old-secret')) throw invalidArgument("'old-secret' must not be given when activating keyslots");
    const iterTime = o['encrypt.iter-time'] as number | undefined;
    await v.addKeySlot({ newPassphrase: secret('new-secret')!, ...(keyslot !== undefined ? { keyslot } : {}), ...(iterTime !== undefined ? { iterTimeMs: Number(iterTime) } : {}), force: ctx.force });
  } else {
    if (given('new-secret')) throw invalidArgument("'new-secret' must not be given when erasing keyslots");
    if (given('iter-time')) throw invalidArgument("'iter-time' must not be given when erasing keyslots");
    const old = secret('old-secret');
    await v.eraseKeySlots({ ...(keyslot !== undefined ? { keyslot } : {}), ...(old ? { oldPassphrase: old } : {}), force: ctx.force, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  }
}
