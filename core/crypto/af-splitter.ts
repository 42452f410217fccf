// The anti-forensic information splitter of LUKS1 (LUKS On-Disk Format Specification 1.2.x,
// section 2.4 "AF-Splitter", and cryptsetup's af.c behaviour): a key of n bytes is stored as
// `stripes` blocks of n bytes; all but the last are random, each folded into a running buffer
// with XOR and the hash "diffuse" function, and the last block is that buffer XOR the key.
// Losing any one stripe loses the key. Pure and synchronous (runs in worker threads).

import { nodeCrypto } from '../host/lazy-node-modules.ts';
import { invalidArgument } from '../errors.ts';
import { HASH_DIGEST_LEN, type HashAlg } from './algorithms.ts';

/**
 * diffuse(): hash the buffer in digest-sized pieces, piece i hashed together with i as a 32-bit
 * big-endian prefix, each result written back in place (a final short piece keeps only as many
 * bytes of its hash as it has).
 */
function diffuse(buf: Buffer, hash: HashAlg): void {
  const ds = HASH_DIGEST_LEN[hash];
  const prefix = Buffer.alloc(4);
  for (let i = 0, off = 0; off < buf.length; i++, off += ds) {
    const len = Math.min(ds, buf.length - off);
    prefix.writeUInt32BE(i);
    const d = nodeCrypto().createHash(hash).update(prefix).update(buf.subarray(off, off + len)).digest();
    d.copy(buf, off, 0, len);
    d.fill(0);
  }
}

function xorInto(dst: Buffer, src: Uint8Array): void {
  for (let i = 0; i < dst.length; i++) dst[i]! ^= src[i]!;
}

function checkArgs(keyLen: number, stripes: number): void {
  if (!Number.isSafeInteger(keyLen) || keyLen <= 0) throw invalidArgument(`AF key length ${keyLen} is invalid`);
  if (!Number.isSafeInteger(stripes) || stripes <= 0) throw invalidArgument(`AF stripes ${stripes} is invalid`);
}

/** Split `key` into `stripes` blocks of key.length bytes. */
export function afSplit(key: Uint8Array, stripes: number, hash: HashAlg): Buffer {
  checkArgs(key.length, stripes);
  const n = key.length;
  const out = Buffer.alloc(n * stripes);
  const acc = Buffer.alloc(n);
  nodeCrypto().randomFillSync(out, 0, n * (stripes - 1));
  for (let i = 0; i < stripes - 1; i++) {
    xorInto(acc, out.subarray(i * n, (i + 1) * n));
    diffuse(acc, hash);
  }
  for (let j = 0; j < n; j++) out[(stripes - 1) * n + j] = acc[j]! ^ key[j]!;
  acc.fill(0);
  return out;
}

/** Merge `stripes` blocks of `keyLen` bytes (the first keyLen*stripes bytes of `material`). */
export function afMerge(material: Uint8Array, keyLen: number, stripes: number, hash: HashAlg): Buffer {
  checkArgs(keyLen, stripes);
  if (material.length < keyLen * stripes) throw invalidArgument(`AF material is ${material.length} bytes, expected ${keyLen * stripes}`);
  const acc = Buffer.alloc(keyLen);
  for (let i = 0; i < stripes - 1; i++) {
    xorInto(acc, material.subarray(i * keyLen, (i + 1) * keyLen));
    diffuse(acc, hash);
  }
  xorInto(acc, material.subarray((stripes - 1) * keyLen, stripes * keyLen));
  return acc;
}
