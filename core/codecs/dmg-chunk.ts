// Decompression of one DMG chunk (Apple's UDIF "BLKXChunkEntry" types), run on the worker pool:
// zlib (UDZO, a zlib stream per chunk), bzip2 (UDBZ, a bzip2 stream per chunk; decoded with the
// pure-JavaScript 'seek-bzip'), ADC (UDCO, adc.ts) and LZFSE (ULFO, lzfse.ts). Every codec must
// produce exactly the chunk's sector count times 512 bytes, as QEMU's dmg_read_chunk demands of
// zlib (Z_STREAM_END with total_out equal to the chunk size); anything else is an error.
import { nodeZlib } from '../host/lazy-node-modules.ts';
import Bunzip from 'seek-bzip';
import { adcDecode } from './adc.ts';
import { lzfseDecode } from './lzfse.ts';

/** Chunk types (UDIF BLKXChunkEntry.EntryType; QEMU's UDZE..UDLE). */
export const CHUNK_ZERO = 0x00000000;
export const CHUNK_RAW = 0x00000001;
export const CHUNK_IGNORE = 0x00000002;
export const CHUNK_ADC = 0x80000004;
export const CHUNK_ZLIB = 0x80000005;
export const CHUNK_BZIP2 = 0x80000006;
export const CHUNK_LZFSE = 0x80000007;
export const CHUNK_COMMENT = 0x7ffffffe;
export const CHUNK_TERMINATOR = 0xffffffff;

export const COMPRESSED_TYPES: ReadonlySet<number> = new Set([CHUNK_ADC, CHUNK_ZLIB, CHUNK_BZIP2, CHUNK_LZFSE]);

export function chunkTypeName(type: number): string {
  switch (type) {
    case CHUNK_ADC: return 'ADC';
    case CHUNK_ZLIB: return 'zlib';
    case CHUNK_BZIP2: return 'bzip2';
    case CHUNK_LZFSE: return 'lzfse';
    default: return `0x${type.toString(16)}`;
  }
}

function bzip2Decode(data: Uint8Array, outputLength: number): Uint8Array {
  const out = Buffer.alloc(outputLength);
  // An output stream that stops the decoder at the chunk's size: seek-bzip would otherwise run a
  // hostile stream's whole expansion (a bzip2 block can grow some 45 MB) into nowhere.
  const sink = {
    pos: 0,
    writeByte(b: number): void {
      if (this.pos >= outputLength) throw new Error(`bzip2 data decodes to more than ${outputLength} bytes`);
      out[this.pos++] = b;
    },
  };
  // seek-bzip allocates with the deprecated Buffer constructor, which Node reports on stderr when
  // the caller is not under node_modules (as in the bundled CLI): silence that one call.
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    Bunzip.decode(data, sink);
  } finally {
    process.noDeprecation = quiet;
  }
  if (sink.pos !== outputLength) throw new Error(`bzip2 data decodes to ${sink.pos} bytes, expected ${outputLength}`);
  return out;
}

/** Decode one compressed chunk to exactly `outputLength` bytes; throws Error with the codec's
 *  own words otherwise. */
export function decodeChunk(type: number, data: Uint8Array, outputLength: number): Uint8Array {
  switch (type) {
    case CHUNK_ZLIB: {
      // One zlib stream that must end (Z_FINISH): a cut-off stream is an error, as in QEMU.
      // One output buffer of the chunk's size (zlib's default 16 KiB pieces would be
      // concatenated: an allocation and a copy more per chunk).
      const { inflateSync, constants } = nodeZlib();
      const out = inflateSync(data, { finishFlush: constants.Z_FINISH, maxOutputLength: Math.max(outputLength, 1), chunkSize: Math.max(outputLength, 64) });
      if (out.length !== outputLength) throw new Error(`zlib data decodes to ${out.length} bytes, expected ${outputLength}`);
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    }
    case CHUNK_BZIP2:
      return bzip2Decode(data, outputLength);
    case CHUNK_ADC:
      return adcDecode(data, outputLength);
    case CHUNK_LZFSE:
      return lzfseDecode(data, outputLength);
    default:
      throw new Error(`chunk type ${chunkTypeName(type)} is not compressed`);
  }
}
