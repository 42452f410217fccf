// zlib streams inflated on libuv's thread pool (zlib's uncompress through koffi, or node:zlib's
// asynchronous calls): the decode runs off the main thread, side by side with the other pool
// requests, with no JavaScript worker to start and no transfer to one. For the read-only formats'
// whole-chunk zlib data (dmg UDZO chunks, cloop blocks), where a JavaScript worker's start-up
// cost more than the inflating it did.
import type { ZlibOptions } from 'node:zlib';
import { nodeZlib } from '../host/lazy-node-modules.ts';
import { nativeZlib, type NativeZlib } from './zlib-native.ts';

/** node:zlib's inflate of one zlib stream that must end (Z_FINISH) at exactly `outputLength`
 *  bytes; throws Error with zlib's words (a cut-off stream, a bad checksum, more output) or
 *  naming the length. Bytes after the stream's end are ignored, as inflate() ignores them. */
async function inflateWhole(data: Uint8Array, outputLength: number): Promise<Buffer> {
  // One output buffer one byte larger than the answer (zlib's default 16 KiB pieces would be
  // joined: an allocation and a copy more per chunk). Not exactly the expected size: a stream
  // that fills its output buffer makes node:zlib allocate a second one and go round the thread
  // pool once more only to learn that the stream has ended.
  const { inflate, constants } = nodeZlib();
  const opts: ZlibOptions = { finishFlush: constants.Z_FINISH, maxOutputLength: Math.max(outputLength, 1), chunkSize: Math.max(outputLength + 1, 64) };
  const out = await new Promise<Buffer>((resolve, reject) => {
    inflate(data, opts, (err, got) => (err ? reject(err) : resolve(got)));
  });
  if (out.length !== outputLength) throw new Error(`zlib data decodes to ${out.length} bytes, expected ${outputLength}`);
  return out;
}

/**
 * Inflate one zlib stream into `into`, which it must fill exactly. With a native zlib the
 * stream decodes straight into `into` (no allocation, no copy); without one, or when it refuses
 * the stream, node:zlib decodes it, so a bad stream fails in node:zlib's words
 * whichever decoded it first. `using` is for tests: null forces node:zlib.
 */
export async function inflateInto(data: Uint8Array, into: Uint8Array, using: NativeZlib | null = nativeZlib() ?? null): Promise<void> {
  if (using && (await using.uncompressInto(data, into)) === into.length) return;
  into.set(await inflateWhole(data, into.length));
}
