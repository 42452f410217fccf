// The luks format (QEMU block/crypto.c over crypto/block-luks.c): a LUKS1 header at offset 0 of
// the file, then the payload; the guest sees the decrypted payload, sector n encrypted with the
// IV of guest sector n (512-byte sectors). Create/amend options use qemu-img's names; the
// passphrase comes from a secret object named by key-secret. Without key-secret the image still
// opens for metadata (qemu-img info works without it, as in QEMU), but I/O is refused.

import type { AmendContext, DriverInfo, FormatDriver, NodeImpl, TruncateOptions, WriteFlags } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import type { OptionSpec, OptionValues } from '../../block/options-schema.ts';
import { optString } from '../../block/options-tree.ts';
import { invalidArgument } from '../../errors.ts';
import { Mutex } from '../../util/range-lock.ts';
import { CIPHER_ALG_NAMES, CIPHER_MODES, HASH_ALGS, IVGEN_ALGS, type CipherMode, type HashAlg, type IvGenAlg } from '../../crypto/algorithms.ts';
import { LUKS_MAGIC, LUKS_NUM_KEY_SLOTS, LUKS_SECTOR_SIZE, LUKS_VERSION_1, type LuksHeader } from '../../crypto/luks-header.ts';
import { createLuksVolume, luksInfoData, luksPayloadOffsetFor, openLuksVolume, readLuksHeader, type LuksCreateOptions, type LuksIo, type LuksVolume } from '../../crypto/luks-volume.ts';
import { DEFAULT_ITER_TIME_MS } from '../../crypto/pbkdf2.ts';
import type { LuksParams } from '../../crypto/validate.ts';

/** QEMU's probe score for a LUKS1 magic + version (block/crypto.c: 100). */
const PROBE_SCORE = 100;
/** Largest iter-time accepted (QEMU takes any u64; a day of PBKDF2 is past any use). */
const MAX_ITER_TIME_MS = 86_400_000;
const KEY_SECRET_REQUIRED = "Parameter 'key-secret' is required for cipher";

const luksCreateOptions: readonly OptionSpec[] = [
  { name: 'key-secret', type: 'secret-id', help: 'ID of the secret that provides the keyslot passphrase' },
  { name: 'cipher-alg', type: 'enum', values: CIPHER_ALG_NAMES, default: 'aes-256', help: 'Name of encryption cipher algorithm' },
  { name: 'cipher-mode', type: 'enum', values: CIPHER_MODES, default: 'xts', help: 'Name of encryption cipher mode' },
  { name: 'ivgen-alg', type: 'enum', values: IVGEN_ALGS, default: 'plain64', help: 'Name of IV generator algorithm' },
  { name: 'ivgen-hash-alg', type: 'enum', values: HASH_ALGS, help: 'Name of IV generator hash algorithm (essiv; default sha256)', advanced: true },
  { name: 'hash-alg', type: 'enum', values: HASH_ALGS, default: 'sha256', help: 'Name of encryption hash algorithm' },
  { name: 'iter-time', type: 'number', default: DEFAULT_ITER_TIME_MS, min: 1, max: MAX_ITER_TIME_MS, help: 'Time to spend in PBKDF in milliseconds' },
  { name: 'preallocation', type: 'enum', values: ['off', 'falloc', 'full'], default: 'off', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
];

const luksAmendOptions: readonly OptionSpec[] = [
  { name: 'state', type: 'enum', values: ['active', 'inactive'], help: 'Select new state of affected keyslots (active/inactive)' },
  { name: 'keyslot', type: 'number', min: 0, max: LUKS_NUM_KEY_SLOTS - 1, help: 'Select a single keyslot to modify explicitly' },
  { name: 'old-secret', type: 'secret-id', help: 'Select all keyslots that match this password' },
  { name: 'new-secret', type: 'secret-id', help: 'New secret to set in the matching keyslots. Empty string to erase' },
  { name: 'iter-time', type: 'number', min: 1, max: MAX_ITER_TIME_MS, help: 'Time to spend in PBKDF in milliseconds' },
];

/** Create options (qemu-img names) as createLuksVolume's parameters, defaults filled in. */
function createParams(o: OptionValues): Omit<LuksCreateOptions, 'passphrase'> {
  return {
    cipherAlg: String(o['cipher-alg'] ?? 'aes-256'),
    cipherMode: (o['cipher-mode'] ?? 'xts') as CipherMode,
    ivgenAlg: (o['ivgen-alg'] ?? 'plain64') as IvGenAlg,
    ...(o['ivgen-hash-alg'] !== undefined ? { ivgenHashAlg: o['ivgen-hash-alg'] as HashAlg } : {}),
    hashAlg: (o['hash-alg'] ?? 'sha256') as HashAlg,
    iterTimeMs: Number(o['iter-time'] ?? DEFAULT_ITER_TIME_MS),
  };
}

/** The file child as the LUKS volume's byte store (header at 0). */
function fileIo(file: BlockNode): LuksIo {
  return {
    read: (offset, length) => file.read(offset, length),
    write: (offset, data) => file.write(offset, data),
    size: () => file.size,
    flush: () => file.flush(),
  };
}

const alignUp = (v: number, a: number) => Math.ceil(v / a) * a;

class LuksNode implements NodeImpl {
  readonly alignment = LUKS_SECTOR_SIZE;
  readonly #file: BlockNode;
  readonly #header: LuksHeader;
  readonly #params: LuksParams;
  readonly #volume: LuksVolume | undefined;
  readonly #amendLock = new Mutex();

  constructor(file: BlockNode, header: LuksHeader, params: LuksParams, volume: LuksVolume | undefined) {
    this.#file = file;
    this.#header = volume?.header ?? header;
    this.#params = params;
    this.#volume = volume;
  }

  /** Payload bytes, rounded up to whole sectors as QEMU's block layer shows them. */
  get size(): number {
    return alignUp(Math.max(0, this.#file.size - this.#params.payloadOffset), LUKS_SECTOR_SIZE);
  }

  #unlocked(): LuksVolume {
    if (!this.#volume) throw invalidArgument(KEY_SECRET_REQUIRED);
    return this.#volume;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const v = this.#unlocked();
    const data = await this.#file.read(this.#params.payloadOffset + offset, length);
    return v.cipher.decrypt(offset / LUKS_SECTOR_SIZE, data);
  }

  async write(offset: number, data: Buffer, flags: WriteFlags): Promise<void> {
    const v = this.#unlocked();
    const enc = await v.cipher.encrypt(offset / LUKS_SECTOR_SIZE, data);
    await this.#file.write(this.#params.payloadOffset + offset, enc, flags);
  }

  flush(): Promise<void> {
    return this.#file.flush();
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    if (options.preallocation === 'metadata') throw invalidArgument("Unsupported preallocation mode 'metadata'");
    await this.#file.truncate(this.#params.payloadOffset + size, { ...options, shrink: true });
  }

  async info(): Promise<DriverInfo> {
    return { encrypted: true, formatSpecific: { type: 'luks', data: luksInfoData(this.#header, this.#params) } };
  }

  amend(options: OptionValues, ctx: AmendContext): Promise<void> {
    return this.#amendLock.run(async () => {
      const v = this.#unlocked();
      const state = options['state'];
      if (state === undefined) throw invalidArgument("Parameter 'state' is missing");
      const keyslot = options['keyslot'] as number | undefined;
      const secret = (name: string) => {
        const id = options[name];
        return id === undefined ? undefined : ctx.secrets.passphrase(String(id));
      };
      if (state === 'active') {
        if (options['new-secret'] === undefined) throw invalidArgument("'new-secret' is required to activate a keyslot");
        if (options['old-secret'] !== undefined) throw invalidArgument("'old-secret' must not be given when activating keyslots");
        const iterTime = options['iter-time'] as number | undefined;
        await v.addKeySlot({ newPassphrase: secret('new-secret')!, ...(keyslot !== undefined ? { keyslot } : {}), ...(iterTime !== undefined ? { iterTimeMs: iterTime } : {}), force: ctx.force });
      } else {
        if (options['new-secret'] !== undefined) throw invalidArgument("'new-secret' must not be given when erasing keyslots");
        if (options['iter-time'] !== undefined) throw invalidArgument("'iter-time' must not be given when erasing keyslots");
        const old = secret('old-secret');
        await v.eraseKeySlots({ ...(keyslot !== undefined ? { keyslot } : {}), ...(old ? { oldPassphrase: old } : {}), force: ctx.force, ...(ctx.signal ? { signal: ctx.signal } : {}) });
      }
    });
  }

  async close(): Promise<void> {
    this.#volume?.close();
  }
}

export const luksDriver: FormatDriver = {
  kind: 'format',
  name: 'luks',
  description: 'LUKS1 encrypted image, compatible with Linux dm-crypt/cryptsetup (AES; xts, cbc, ecb, ctr)',
  encryption: { keySecret: 'key-secret', luks: true },
  probe(head) {
    if (head.length < LUKS_MAGIC.length + 2 || !head.subarray(0, LUKS_MAGIC.length).equals(LUKS_MAGIC)) return 0;
    return head.readUInt16BE(LUKS_MAGIC.length) === LUKS_VERSION_1 ? PROBE_SCORE : 0;
  },
  createOptions: luksCreateOptions,
  deleteFileOnCreateFailure: true,
  amendOptions: luksAmendOptions,

  async create(file, ctx) {
    const id = ctx.options['key-secret'];
    if (id === undefined || id === '') throw invalidArgument(KEY_SECRET_REQUIRED);
    const o = ctx.options;
    const volume = await createLuksVolume(fileIo(file), { passphrase: ctx.secrets.passphrase(String(id)), ...createParams(o) }, ctx.workers);
    try {
      const prealloc = (o['preallocation'] ?? 'off') as 'off' | 'falloc' | 'full';
      await file.truncate(volume.payloadOffset + ctx.size, { preallocation: prealloc, shrink: true });
    } finally {
      volume.close();
    }
  },

  async measure(size, options) {
    // As qemu-img: measuring a luks target needs key-secret, though no key is derived.
    if (options['key-secret'] === undefined) throw invalidArgument(KEY_SECRET_REQUIRED);
    const required = luksPayloadOffsetFor(createParams(options)) + size;
    return { required, fullyAllocated: required };
  },

  async open(file, ctx) {
    const io = fileIo(file);
    const { header, params } = await readLuksHeader(io);
    const id = ctx.noIo ? undefined : optString(ctx.options, 'key-secret');
    const volume = id !== undefined ? await openLuksVolume(io, ctx.secrets.passphrase(id), ctx.workers) : undefined;
    return new LuksNode(file, header, params, volume);
  },
};
