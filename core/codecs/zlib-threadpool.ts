// zlib streams inflated on libuv's thread pool (node:zlib's asynchronous calls): the decode runs
// off the main thread, side by side with the other pool requests, with no JavaScript worker to
// start and no transfer to one. For the read-only formats' whole-chunk zlib data (dmg UDZO chunks,
// cloop blocks), where a JavaScript worker's start-up cost more than the inflating it did.
import { constants, inflate, type ZlibOptions } from 'node:zlib';

/** Inflate one zlib stream that must end (Z_FINISH) within `maxLength` bytes; throws Error with
 *  zlib's words (a cut-off stream, a bad checksum, more output). Bytes after the stream's end are
 *  ignored, as inflate() ignores them. */
export function inflateStream(data: Uint8Array, maxLength: number): Promise<Buffer> {
  // One output buffer one byte larger than the longest answer (zlib's default 16 KiB pieces would
  // be joined: an allocation and a copy more per chunk). Not exactly the expected size: a stream
  // that fills its output buffer makes node:zlib allocate a second one and go round the thread
  // pool once more only to learn that the stream has ended.
  const opts: ZlibOptions = { finishFlush: constants.Z_FINISH, maxOutputLength: Math.max(maxLength, 1), chunkSize: Math.max(maxLength + 1, 64) };
  return new Promise((resolve, reject) => {
    inflate(data, opts, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/** inflateStream that must decode to exactly `outputLength` bytes. */
export async function inflateWhole(data: Uint8Array, outputLength: number): Promise<Buffer> {
  const out = await inflateStream(data, outputLength);
  if (out.length !== outputLength) throw new Error(`zlib data decodes to ${out.length} bytes, expected ${outputLength}`);
  return out;
}
