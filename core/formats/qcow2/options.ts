// qcow2 create and amend options (qemu-block-drivers(7) "qcow2"; `qemu-img create -f qcow2 -o
// help` of QEMU 7.2): names, types, defaults and limits, the single source of truth for the CLI,
// the API and the GUI forms.

import type { OptionSpec } from '../../block/options-schema.ts';
import { CRYPTO_AMEND_OPTIONS } from './encryption.ts';

/** Default cluster size (64 KiB), and the bounds qcow2 allows (512 B .. 2 MiB). */
export const DEFAULT_CLUSTER_SIZE = 65536;
export const MIN_CLUSTER_SIZE = 512;
export const MAX_CLUSTER_SIZE = 2 << 20;
/** Default refcount width (bits) and the widest allowed. */
export const DEFAULT_REFCOUNT_BITS = 16;
export const MAX_REFCOUNT_BITS = 64;

export const QCOW2_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'compat', type: 'enum', values: ['0.10', 'v2', '1.1', 'v3'], default: '1.1', qapiName: 'version', help: 'Compatibility level (v2 [0.10] or v3 [1.1])' },
  { name: 'backing_file', type: 'path', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'string', help: 'Image format of the base image' },
  { name: 'data_file', type: 'path', help: 'File name of an external data file', advanced: true },
  { name: 'data_file_raw', type: 'bool', default: false, help: 'The external data file must stay valid as a raw image', advanced: true },
  { name: 'encryption', type: 'bool', default: false, help: "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)", advanced: true },
  { name: 'encrypt.format', type: 'enum', values: ['aes', 'luks'], help: "Encrypt the image, format choices: 'aes', 'luks'" },
  { name: 'encrypt.key-secret', type: 'secret-id', help: 'ID of secret providing qcow AES key or LUKS passphrase' },
  { name: 'encrypt.cipher-alg', type: 'string', help: 'Name of encryption cipher algorithm', advanced: true },
  { name: 'encrypt.cipher-mode', type: 'string', help: 'Name of encryption cipher mode', advanced: true },
  { name: 'encrypt.ivgen-alg', type: 'string', help: 'Name of IV generator algorithm', advanced: true },
  { name: 'encrypt.ivgen-hash-alg', type: 'string', help: 'Name of IV generator hash algorithm', advanced: true },
  { name: 'encrypt.hash-alg', type: 'string', help: 'Name of encryption hash algorithm', advanced: true },
  { name: 'encrypt.iter-time', type: 'number', help: 'Time to spend in PBKDF in milliseconds', advanced: true },
  { name: 'cluster_size', type: 'size', default: DEFAULT_CLUSTER_SIZE, min: MIN_CLUSTER_SIZE, max: MAX_CLUSTER_SIZE, powerOfTwo: true, rangeCheckedByDriver: true, help: 'qcow2 cluster size' },
  { name: 'preallocation', type: 'enum', values: ['off', 'metadata', 'falloc', 'full'], default: 'off', qapiName: 'preallocation', help: 'Preallocation mode (allowed values: off, metadata, falloc, full)' },
  { name: 'lazy_refcounts', type: 'bool', default: false, help: 'Postpone refcount updates' },
  { name: 'refcount_bits', type: 'number', default: DEFAULT_REFCOUNT_BITS, min: 1, max: MAX_REFCOUNT_BITS, powerOfTwo: true, rangeCheckedByDriver: true, help: 'Width of a reference count entry in bits', advanced: true },
  { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
  { name: 'compression_type', type: 'enum', values: ['zlib', 'zstd'], default: 'zlib', qapiName: 'compression-type', help: 'Compression method used for image cluster compression' },
  { name: 'extended_l2', type: 'bool', default: false, help: 'Extended L2 tables', advanced: true },
  { name: 'extent_size_hint', type: 'size', help: 'Extent size hint for the image file, 0 to disable', advanced: true },
];

/** QEMU's qcow2_create_opts in order (with def_value_str where it has one), then the file
 *  protocol's: the "Formatting" line of qemu-img create. */
export const QCOW2_FORMATTING_OPTIONS: readonly (readonly [string, string?])[] = [
  ['encryption'],
  ['encrypt.format'],
  ['encrypt.key-secret'],
  ['encrypt.cipher-alg'],
  ['encrypt.cipher-mode'],
  ['encrypt.ivgen-alg'],
  ['encrypt.ivgen-hash-alg'],
  ['encrypt.hash-alg'],
  ['encrypt.iter-time'],
  ['cluster_size', String(DEFAULT_CLUSTER_SIZE)],
  ['extended_l2', 'off'],
  ['preallocation'],
  ['compression_type', 'zlib'],
  ['size'],
  ['compat'],
  ['backing_file'],
  ['backing_fmt'],
  ['data_file'],
  ['data_file_raw'],
  ['lazy_refcounts', 'off'],
  ['refcount_bits', String(DEFAULT_REFCOUNT_BITS)],
  ['nocow'],
  ['extent_size_hint'],
];

/** What `qemu-img amend -o` accepts for qcow2 (QEMU's qcow2_amend_opts). */
export const QCOW2_AMEND_OPTIONS: readonly OptionSpec[] = QCOW2_CREATE_OPTIONS.filter((o) =>
  ['size', 'compat', 'backing_file', 'backing_fmt', 'data_file', 'data_file_raw', 'lazy_refcounts', 'refcount_bits', 'encrypt.iter-time'].includes(o.name),
).map((o) => {
  const { default: _d, ...rest } = o;
  // amend reads compat as a string and names a bad one itself ("Unknown compatibility level").
  if (o.name === 'compat') {
    const { values: _v, qapiName: _q, ...text } = rest;
    return { ...text, type: 'string' as const };
  }
  return rest;
}).concat(CRYPTO_AMEND_OPTIONS);

/** Version number for a compat value. */
export function versionOf(compat: string): number {
  return compat === '0.10' || compat === 'v2' ? 2 : 3;
}
