// A small UDIF (.dmg) writer for tests, written from Apple's UDIF layout (koly trailer, BLKX
// "mish" tables, XML property list with a base64 "blkx" array, or a classic resource fork)
// independently of Platter's reader, so tests do not share its mistakes. qemu-img cannot create
// dmg images; these stand in where no fixture has the shape a test needs (resource forks,
// malformed tables, CVE-style fields, big images for timing).
import { deflateSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';

export const T_ZERO = 0x00000000;
export const T_RAW = 0x00000001;
export const T_IGNORE = 0x00000002;
export const T_ADC = 0x80000004;
export const T_ZLIB = 0x80000005;
export const T_BZIP2 = 0x80000006;
export const T_LZFSE = 0x80000007;
export const T_COMMENT = 0x7ffffffe;
export const T_TERMINATOR = 0xffffffff;

/** One table entry; `data` is what the data fork holds for it (none for zero chunks). Fields
 *  may be overridden to craft bad tables. */
export interface BuildChunk {
  type: number;
  sector: number | bigint;
  count: number | bigint;
  data?: Buffer;
  /** Override the stored offset (relative to the data fork) / length. */
  offset?: bigint;
  length?: bigint;
}

export interface BuildOptions {
  sectors: number | bigint;
  chunks: BuildChunk[];
  /** Where the tables go (default: the XML property list). */
  form?: 'xml' | 'rsrc';
  /** Edit the encoded mish block before it is stored. */
  editMish?(mish: Buffer): Buffer;
  /** Replace the XML property list text. */
  editXml?(xml: string): string;
  /** Edit the 512-byte trailer. */
  editKoly?(koly: Buffer): void;
}

/** Koly field offsets (UDIFResourceFile). */
export const KOLY = { dataForkOffset: 0x18, dataForkLength: 0x20, rsrcOffset: 0x28, rsrcLength: 0x30, xmlOffset: 0xd8, xmlLength: 0xe0, sectorCount: 0x1ec } as const;

function mishBlock(chunks: BuildChunk[], offsets: bigint[], sectors: bigint): Buffer {
  const entries = chunks.length + 1;
  const b = Buffer.alloc(204 + 40 * entries);
  b.write('mish', 0, 'latin1');
  b.writeUInt32BE(1, 4);
  b.writeBigUInt64BE(0n, 8); // first sector
  b.writeBigUInt64BE(sectors, 0x10);
  b.writeBigUInt64BE(0n, 0x18); // data offset within the data fork
  b.writeUInt32BE(entries, 200);
  chunks.forEach((c, i) => {
    const e = 204 + 40 * i;
    b.writeUInt32BE(c.type, e);
    b.writeBigUInt64BE(BigInt(c.sector), e + 8);
    b.writeBigUInt64BE(BigInt(c.count), e + 0x10);
    b.writeBigUInt64BE(c.offset ?? offsets[i]!, e + 0x18);
    b.writeBigUInt64BE(c.length ?? BigInt(c.data?.length ?? 0), e + 0x20);
  });
  const end = 204 + 40 * chunks.length;
  b.writeUInt32BE(T_TERMINATOR, end);
  b.writeBigUInt64BE(sectors, end + 8);
  return b;
}

function plist(mish: Buffer): string {
  const b64 = mish.toString('base64').replace(/(.{52})/g, '$1\n\t\t\t\t');
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>resource-fork</key>
	<dict>
		<key>blkx</key>
		<array>
			<dict>
				<key>Attributes</key>
				<string>0x0050</string>
				<key>Data</key>
				<data>
				${b64}
				</data>
				<key>ID</key>
				<string>0</string>
				<key>Name</key>
				<string>whole disk (Apple_HFS : 0)</string>
			</dict>
		</array>
	</dict>
</dict>
</plist>
`;
}

/** A resource fork whose data area holds the mish block as its one resource. */
function rsrcFork(mish: Buffer): Buffer {
  const dataOffset = 256;
  const data = Buffer.alloc(4 + mish.length);
  data.writeUInt32BE(mish.length, 0);
  mish.copy(data, 4);
  const fork = Buffer.alloc(dataOffset + data.length);
  fork.writeUInt32BE(dataOffset, 0);
  fork.writeUInt32BE(dataOffset + data.length, 4); // map offset (no map)
  fork.writeUInt32BE(data.length, 8);
  fork.writeUInt32BE(0, 12);
  data.copy(fork, dataOffset);
  return fork;
}

export function buildDmg(o: BuildOptions): Buffer {
  const sectors = BigInt(o.sectors);
  const offsets: bigint[] = [];
  const parts: Buffer[] = [];
  let at = 0n;
  for (const c of o.chunks) {
    offsets.push(at);
    if (c.data) {
      parts.push(c.data);
      at += BigInt(c.data.length);
    }
  }
  const dataFork = Buffer.concat(parts);
  let mish = mishBlock(o.chunks, offsets, sectors);
  if (o.editMish) mish = o.editMish(mish);
  const koly = Buffer.alloc(512);
  koly.write('koly', 0, 'latin1');
  koly.writeUInt32BE(4, 4);
  koly.writeUInt32BE(512, 8);
  koly.writeUInt32BE(1, 0xc);
  koly.writeBigUInt64BE(0n, KOLY.dataForkOffset);
  koly.writeBigUInt64BE(BigInt(dataFork.length), KOLY.dataForkLength);
  koly.writeUInt32BE(1, 0x38);
  koly.writeUInt32BE(1, 0x3c);
  koly.writeBigUInt64BE(sectors, KOLY.sectorCount);
  let tables: Buffer;
  if (o.form === 'rsrc') {
    tables = rsrcFork(mish);
    koly.writeBigUInt64BE(BigInt(dataFork.length), KOLY.rsrcOffset);
    koly.writeBigUInt64BE(BigInt(tables.length), KOLY.rsrcLength);
  } else {
    let xml = plist(mish);
    if (o.editXml) xml = o.editXml(xml);
    tables = Buffer.from(xml, 'latin1');
    koly.writeBigUInt64BE(BigInt(dataFork.length), KOLY.xmlOffset);
    koly.writeBigUInt64BE(BigInt(tables.length), KOLY.xmlLength);
  }
  o.editKoly?.(koly);
  return Buffer.concat([dataFork, tables, koly]);
}

export type Codec = 'zlib' | 'raw' | 'bzip2';

/** Compress with the system's bzip2 (Debian's bzip2 package). */
export function bzip2(data: Buffer): Buffer {
  const r = spawnSync('bzip2', ['-c', '-9'], { input: data, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`bzip2 failed: ${r.stderr}`);
  return r.stdout;
}

/** A dmg holding `disk` (a multiple of 512 bytes): chunks of `chunkSectors`, all-zero ones as
 *  zero-fill chunks, the rest stored with `codec`. */
export function dmgFromDisk(disk: Buffer, codec: Codec, chunkSectors = 2048, form: 'xml' | 'rsrc' = 'xml'): Buffer {
  if (disk.length % 512 !== 0) throw new Error('disk size must be a multiple of 512');
  const sectors = disk.length / 512;
  const chunks: BuildChunk[] = [];
  for (let s = 0; s < sectors; s += chunkSectors) {
    const n = Math.min(chunkSectors, sectors - s);
    const part = disk.subarray(s * 512, (s + n) * 512);
    if (part.every((b) => b === 0)) {
      chunks.push({ type: T_ZERO, sector: s, count: n });
      continue;
    }
    const data = codec === 'raw' ? Buffer.from(part) : codec === 'zlib' ? deflateSync(part) : bzip2(part);
    chunks.push({ type: codec === 'raw' ? T_RAW : codec === 'zlib' ? T_ZLIB : T_BZIP2, sector: s, count: n, data });
  }
  return buildDmg({ sectors, chunks, form });
}

/** A deterministic test disk: text-like bytes, a zero gap, a pattern run. */
export function sampleDisk(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = 12345;
  for (let i = 0; i < bytes; i++) {
    if (i % (1 << 20) < 300 << 10) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = 0x20 + ((x >>> 16) % 64);
    } else if (i % (1 << 20) >= 900 << 10) b[i] = 0xa5;
  }
  return b;
}
