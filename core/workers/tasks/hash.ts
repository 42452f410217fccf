// Hash tasks: digests of metadata areas checked at open (the parallels format extension's MD5).
import { createHash } from 'node:crypto';

export const HASH_TASKS = {
  /** MD5 of `data` (16 bytes). */
  md5(input: { data: Uint8Array }): Uint8Array {
    const d = createHash('md5').update(input.data).digest();
    return new Uint8Array(d.buffer, d.byteOffset, d.length);
  },
};
