// DMG chunk decompression (core/codecs/dmg-chunk.ts) as a worker task: one chunk per call, so
// the chunks a read needs decode side by side on every core.
import { decodeChunk } from '../../codecs/dmg-chunk.ts';

export const DMG_TASKS = {
  /** Decode one compressed chunk to exactly `outputLength` bytes. */
  dmgDecode(input: { type: number; data: Uint8Array; outputLength: number }): Uint8Array {
    const out = decodeChunk(input.type, input.data, input.outputLength);
    // A fresh, whole buffer transfers back without a copy; a view into a larger one is copied.
    return out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : new Uint8Array(out);
  },
};
