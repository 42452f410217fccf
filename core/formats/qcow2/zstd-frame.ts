// A small zstd frame writer (RFC 8878 "Zstandard Compression and the application/zstd Media
// Type", section 3.1.1 "Zstandard Frames") for qcow2's compression_type=zstd clusters. Node 20
// has no zstd compressor, and the one package we ship (fzstd) only decompresses, so this writes
// frames of Raw and RLE blocks only (section 3.1.1.2): runs of one byte value become RLE blocks,
// everything else is stored raw. No entropy coding, so only data with long runs shrinks; any
// zstd decoder (QEMU's libzstd, fzstd) reads the frames.

/** Frame magic number, little endian (section 3.1.1). */
const ZSTD_MAGIC = 0xfd2fb528;
/** Frame_Header_Descriptor: Frame_Content_Size_Flag = 2 (4-byte content size), Single_Segment
 *  (the window is the whole content, no Window_Descriptor), no checksum, no dictionary. */
const FHD_SINGLE_SEGMENT_FCS4 = (2 << 6) | (1 << 5);
/** Block_Type values (section 3.1.1.2.2). */
const BLOCK_RAW = 0;
const BLOCK_RLE = 1;
/** Block_Maximum_Size: the smaller of the window and 128 KiB (section 3.1.1.2.4). */
const MAX_BLOCK = 128 << 10;
/** Frame header bytes: magic, descriptor, 4-byte content size. */
const FRAME_HEADER_BYTES = 4 + 1 + 4;
/** Block header bytes (Last_Block, Block_Type, Block_Size in 24 bits). */
const BLOCK_HEADER_BYTES = 3;
/** Shortest run worth an RLE block: its header plus one byte, against the same bytes raw. */
const MIN_RUN = 2 * (BLOCK_HEADER_BYTES + 1);
/** Largest content a 4-byte Frame_Content_Size describes. */
const MAX_CONTENT = 0xffffffff;

interface Block {
  type: typeof BLOCK_RAW | typeof BLOCK_RLE;
  start: number;
  length: number;
}

/** Split `data` into RLE blocks for runs of at least MIN_RUN equal bytes and raw blocks for the
 *  rest, none longer than MAX_BLOCK. */
function planBlocks(data: Uint8Array): Block[] {
  const blocks: Block[] = [];
  const push = (type: Block['type'], start: number, length: number): void => {
    for (let p = start; p < start + length; p += MAX_BLOCK) blocks.push({ type, start: p, length: Math.min(MAX_BLOCK, start + length - p) });
  };
  let rawStart = 0;
  let i = 0;
  while (i < data.length) {
    let j = i + 1;
    while (j < data.length && data[j] === data[i]) j++;
    if (j - i >= MIN_RUN) {
      if (i > rawStart) push(BLOCK_RAW, rawStart, i - rawStart);
      push(BLOCK_RLE, i, j - i);
      rawStart = j;
    }
    i = j;
  }
  if (data.length > rawStart) push(BLOCK_RAW, rawStart, data.length - rawStart);
  return blocks;
}

/** One zstd frame holding `data`; undefined when it would not be shorter than `limit` bytes. */
export function zstdFrame(data: Uint8Array, limit = Number.POSITIVE_INFINITY): Buffer | undefined {
  if (data.length > MAX_CONTENT) throw new RangeError(`zstd frame content of ${data.length} bytes is past the 4-byte content size`);
  const blocks = planBlocks(data);
  if (blocks.length === 0) blocks.push({ type: BLOCK_RAW, start: 0, length: 0 });
  let size = FRAME_HEADER_BYTES;
  for (const b of blocks) size += BLOCK_HEADER_BYTES + (b.type === BLOCK_RLE ? 1 : b.length);
  if (size >= limit) return undefined;
  const out = Buffer.alloc(size);
  out.writeUInt32LE(ZSTD_MAGIC, 0);
  out[4] = FHD_SINGLE_SEGMENT_FCS4;
  out.writeUInt32LE(data.length, 5);
  let p = FRAME_HEADER_BYTES;
  blocks.forEach((b, n) => {
    const last = n === blocks.length - 1 ? 1 : 0;
    out.writeUIntLE(last | (b.type << 1) | (b.length << 3), p, BLOCK_HEADER_BYTES);
    p += BLOCK_HEADER_BYTES;
    if (b.type === BLOCK_RLE) out[p++] = data[b.start]!;
    else {
      out.set(data.subarray(b.start, b.start + b.length), p);
      p += b.length;
    }
  });
  return out;
}
