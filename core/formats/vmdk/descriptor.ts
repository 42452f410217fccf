// The VMDK text descriptor (VMware Virtual Disk Format 1.1, section "The Descriptor File"):
// header keys (version, CID, parentCID, createType, parentFileNameHint), extent description lines
// ("RW|RDONLY|NOACCESS <sectors> FLAT|SPARSE|ZERO|VMFS|VMFSSPARSE|SESPARSE "file" [offset]") and
// the disk database (ddb.* keys). Parsing is bounded: the text, each line and the number of
// extents have limits, so a hostile descriptor cannot make us allocate without bound.

import { invalidImage } from '../../errors.ts';

/** QEMU reads at most 1 MiB - 1 of a descriptor file (vmdk_read_desc). */
export const MAX_DESCRIPTOR_BYTES = (1 << 20) - 1;
/** Descriptor lines longer than this are refused (QEMU's sscanf keeps 511 bytes of a name). */
export const MAX_LINE_BYTES = 4096;
/** More extents than this is an attack, not a disk (2 TiB / 2 GiB split = 1024 extents). */
export const MAX_EXTENTS = 10_000;
/** The size of the embedded descriptor area QEMU rewrites (20 sectors, DESC_SIZE). */
export const EMBEDDED_DESCRIPTOR_BYTES = 20 * 512;
/** parentCID value meaning "no parent". */
export const NO_PARENT_CID = 0xffffffff;

export type ExtentAccess = 'RW' | 'RDONLY' | 'NOACCESS';
export type ExtentType = 'FLAT' | 'SPARSE' | 'ZERO' | 'VMFS' | 'VMFSSPARSE' | 'VMFSRDM' | 'VMFSRAW' | 'SESPARSE';
const EXTENT_TYPES: readonly string[] = ['FLAT', 'SPARSE', 'ZERO', 'VMFS', 'VMFSSPARSE', 'VMFSRDM', 'VMFSRAW', 'SESPARSE'];
const ACCESS: readonly string[] = ['RW', 'RDONLY', 'NOACCESS'];

/** One extent description line. */
export interface ExtentLine {
  access: ExtentAccess;
  /** Size in sectors. */
  sectors: number;
  type: ExtentType;
  filename: string;
  /** Start offset in the extent file, in sectors (FLAT/VMFS). */
  offset?: number;
  /** The line as written (for error messages). */
  text: string;
}

export interface Descriptor {
  version?: number;
  cid?: number;
  parentCid?: number;
  createType?: string;
  parentFileNameHint?: string;
  extents: ExtentLine[];
  /** ddb.* keys (ddb.adapterType, ddb.geometry.cylinders, ddb.virtualHWVersion, ...). */
  ddb: Map<string, string>;
}

/**
 * The text of a descriptor held in `buf`, up to the first NUL (embedded areas are padded).
 * Parsing reads UTF-8 (extent and parent names as the host spells them); rewriting the CID uses
 * latin1, which gives back every byte unchanged.
 */
export function descriptorText(buf: Buffer, encoding: 'utf8' | 'latin1' = 'utf8'): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString(encoding);
}

function unquote(v: string): string {
  const t = v.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

/** Parse a hexadecimal CID the way QEMU's sscanf("%x") does: leading hex digits. */
function parseCid(v: string): number | undefined {
  const m = /^\s*(?:0x)?([0-9a-fA-F]+)/.exec(v);
  if (!m) return undefined;
  const n = parseInt(m[1]!.slice(-8), 16);
  return Number.isFinite(n) ? n >>> 0 : undefined;
}

const EXTENT_RE = /^(\S{1,10})\s+(-?\d+)\s+(\S{1,10})\s+"([^"\r\n]*)"(?:\s+(-?\d+))?\s*$/;

/**
 * Parse an extent line. Returns undefined for lines that are not extent lines (QEMU skips them);
 * throws "Invalid extent line" for lines that look like one but break its rules.
 */
export function parseExtentLine(line: string): ExtentLine | undefined {
  const m = EXTENT_RE.exec(line.trim());
  if (!m) return undefined;
  const [, access, sectorsText, type, filename, offsetText] = m as unknown as [string, string, string, string, string, string | undefined];
  if (!ACCESS.includes(access) || !EXTENT_TYPES.includes(type)) return undefined;
  const sectors = Number(sectorsText);
  const offset = offsetText === undefined ? undefined : Number(offsetText);
  const invalid = () => invalidImage(`Invalid extent line: ${line.replace(/\r$/, '')}`);
  if (!Number.isSafeInteger(sectors) || sectors > Number.MAX_SAFE_INTEGER / 512) throw invalid();
  if (type === 'FLAT') {
    if (offset === undefined || offset < 0 || !Number.isSafeInteger(offset * 512)) throw invalid();
  } else if (offset !== undefined) {
    throw invalid();
  }
  if (filename.length > 511) throw invalid();
  return { access: access as ExtentAccess, sectors, type: type as ExtentType, filename, ...(offset !== undefined ? { offset } : {}), text: line };
}

/** Parse descriptor text (bounded; see the limits above). */
export function parseDescriptor(text: string): Descriptor {
  if (text.length > MAX_DESCRIPTOR_BYTES) throw invalidImage(`VMDK descriptor is too large (${text.length} bytes, at most ${MAX_DESCRIPTOR_BYTES})`);
  const d: Descriptor = { extents: [], ddb: new Map() };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.length > MAX_LINE_BYTES) throw invalidImage(`VMDK descriptor line is too long (${line.length} bytes, at most ${MAX_LINE_BYTES})`);
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const ext = parseExtentLine(t);
    if (ext) {
      if (d.extents.length >= MAX_EXTENTS) throw invalidImage(`VMDK descriptor lists more than ${MAX_EXTENTS} extents`);
      d.extents.push(ext);
      continue;
    }
    const eq = t.indexOf('=');
    if (eq <= 0) continue;
    const key = t.slice(0, eq).trim();
    const value = t.slice(eq + 1);
    switch (key) {
      case 'version':
        d.version = Number.parseInt(value.trim(), 10);
        break;
      case 'CID': {
        const v = parseCid(value);
        if (v !== undefined && d.cid === undefined) d.cid = v;
        break;
      }
      case 'parentCID': {
        const v = parseCid(value);
        if (v !== undefined && d.parentCid === undefined) d.parentCid = v;
        break;
      }
      case 'createType':
        d.createType ??= unquote(value);
        break;
      case 'parentFileNameHint':
        d.parentFileNameHint ??= unquote(value);
        break;
      default:
        if (key.startsWith('ddb.')) d.ddb.set(key, unquote(value));
    }
  }
  return d;
}

/** Replace the CID line's value (QEMU vmdk_write_cid), keeping everything else as it is. */
export function replaceCid(text: string, cid: number): string {
  const hex = (cid >>> 0).toString(16);
  const re = /^([ \t]*CID[ \t]*=)[^\r\n]*/m;
  if (!re.test(text)) throw invalidImage('VMDK descriptor has no CID line');
  return text.replace(re, `$1${hex}`);
}

/** What qemu-img writes into a new descriptor (block/vmdk.c vmdk_co_do_create template). */
export interface NewDescriptor {
  cid: number;
  parentCid: number;
  createType: string;
  parentFileNameHint?: string;
  extentLines: string[];
  hwVersion: string;
  cylinders: number;
  heads: number;
  adapterType: string;
  toolsVersion: string;
}

/** Serialise a new descriptor, byte for byte as qemu-img 7.2 lays it out. */
export function serialiseDescriptor(d: NewDescriptor): string {
  return (
    '# Disk DescriptorFile\n' +
    'version=1\n' +
    `CID=${(d.cid >>> 0).toString(16)}\n` +
    `parentCID=${(d.parentCid >>> 0).toString(16)}\n` +
    `createType="${d.createType}"\n` +
    (d.parentFileNameHint !== undefined ? `parentFileNameHint="${d.parentFileNameHint}"` : '') +
    '\n' +
    '# Extent description\n' +
    d.extentLines.map((l) => `${l}\n`).join('') +
    '\n' +
    '# The Disk Data Base\n' +
    '#DDB\n' +
    '\n' +
    `ddb.virtualHWVersion = "${d.hwVersion}"\n` +
    `ddb.geometry.cylinders = "${d.cylinders}"\n` +
    `ddb.geometry.heads = "${d.heads}"\n` +
    'ddb.geometry.sectors = "63"\n' +
    `ddb.adapterType = "${d.adapterType}"\n` +
    `ddb.toolsVersion = "${d.toolsVersion}"\n`
  );
}

/** QEMU's vmdk_probe for text descriptors: comment and blank lines, then "version=1|2|3". */
export function probeDescriptorText(head: Buffer): boolean {
  let p = 0;
  const end = head.length;
  while (p < end) {
    const c = head[p]!;
    if (c === 0x23 /* '#' */) {
      while (p < end && head[p] !== 0x0a) p++;
      p++;
      continue;
    }
    if (c === 0x20 /* ' ' */) {
      while (p < end && head[p] === 0x20) p++;
      if (p < end && head[p] === 0x0d) p++;
      if (p === end || head[p] !== 0x0a) return false;
      p++;
      continue;
    }
    const rest = head.subarray(p, p + 11).toString('latin1');
    return /^version=[123](\n|\r\n)/.test(rest);
  }
  return false;
}
