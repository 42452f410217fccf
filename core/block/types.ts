// The driver contract of Platter's block layer (docs/architecture.md "core/block"), modelled on QEMU's
// BlockDriver table (include/block/block_int.h) and nbdkit's capability model: a driver is a plain
// object; `open` returns a NodeImpl whose optional members are optional capabilities. The generic
// layer (node.ts) wraps every NodeImpl in a BlockNode that does bounds checks, alignment
// (read-modify-write), read-only enforcement and "not supported by this format" once, so drivers
// never repeat it.
//
// Units: every offset and length is a byte count held in a JS number. Sizes above
// Number.MAX_SAFE_INTEGER (8 PiB) are refused when decoded from disk (see util/checked.ts).
// Buffers: a Buffer returned by read() belongs to the caller; a Buffer passed to write() belongs to
// the caller again once the promise settles (a driver that keeps data must copy it).

import type { BlockNode } from './node.ts';
import type { DebugEvent } from './debug-events.ts';
import type { OptionSpec, OptionValues } from './options-schema.ts';
import type { OptionsTree } from './options-tree.ts';
import type { SecretStore } from './secrets.ts';
import type { WorkerPool } from '../workers/pool.ts';
import type { DirtyBitmap } from './dirty-bitmap.ts';

/** QEMU's permission bits (include/block/block-common.h, BLK_PERM_*), same bit numbers, because
 *  file locking encodes them as byte offsets (file-posix: 100 + bit, 200 + bit). */
export const PERM_CONSISTENT_READ = 0x1;
export const PERM_WRITE = 0x2;
export const PERM_WRITE_UNCHANGED = 0x4;
export const PERM_RESIZE = 0x8;
export const PERM_ALL = 0xf;

/** One extent of block status, answered from `offset` for at most the length asked. */
export interface BlockStatus {
  offset: number;
  length: number;
  /** Reads return bytes stored somewhere (as opposed to a known-zero hole). */
  data: boolean;
  /** Reads are known to return zeros. */
  zero: boolean;
  /** Defined by this node; false means the bytes come from the backing node (or are zero). */
  allocated: boolean;
  /** Byte offset in the node's file child where the data is (qemu-img map "offset"). */
  hostOffset?: number;
  /** The file `hostOffset` is in when it is not the node's file child (a vmdk extent file): its
   *  name as QEMU shows it (qemu-img map "File"). */
  hostFile?: string;
  /** Compressed data (qemu-img map "compressed", qcow2/vmdk streams). */
  compressed?: boolean;
  /**
   * The node holding the data at `hostOffset`, set only where its bytes [hostOffset,
   * hostOffset+length) are the guest bytes verbatim and the driver has made the checks its own
   * read path makes (in the file, not in the header, aligned): convert then reads them from there
   * without the format layer. Absent, the range is read through the driver.
   */
  hostNode?: BlockNode;
}

/** What NodeImpl.reserve mapped. With `host`, the whole range's bytes now live verbatim and
 *  contiguously at `host.offset` of `host.node`, and the caller may write them there directly
 *  (until the image's metadata changes; convert writes a new image it alone has open). */
export interface Reservation {
  host?: { node: BlockNode; offset: number };
}

export interface WriteFlags {
  /** Force unit access: durable when the promise resolves. */
  fua?: boolean;
}

export interface ZeroFlags {
  /** The range may be deallocated instead of written (BDRV_REQ_MAY_UNMAP). */
  mayUnmap?: boolean;
  /** Only if it is fast (BDRV_REQ_NO_FALLBACK): fail with ENOTSUP rather than write zeros. */
  noFallback?: boolean;
}

export type Preallocation = 'off' | 'metadata' | 'falloc' | 'full';

export interface TruncateOptions {
  preallocation?: Preallocation;
  /** Allow shrinking (qemu-img resize --shrink). */
  shrink?: boolean;
  /** Fail rather than round the size to what the format can express. */
  exact?: boolean;
}

/** Format-specific info, as qemu-img info's "format-specific": {"type", "data"}. */
export interface FormatSpecificInfo {
  type: string;
  data: Record<string, unknown>;
}

/** What a driver adds to `qemu-img info` beyond what the generic layer knows. */
export interface DriverInfo {
  clusterSize?: number;
  encrypted?: boolean;
  dirtyFlag?: boolean;
  formatSpecific?: FormatSpecificInfo;
  /** Bytes of the image's own files (extents, data file) not counted in the file child. */
  extraActualSize?: number;
  /** Child nodes with a role in info (vmdk extents). */
  children?: { name: string; node: BlockNode }[];
  /** Data can only be written as whole compressed clusters (QEMU's BlockDriverInfo
   *  needs_compressed_writes: a stream-optimized vmdk); convert then copies as with -c. */
  needsCompressedWrites?: boolean;
}

/** One internal snapshot, as qemu-img snapshot -l / info "snapshots" show it. */
export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  /** Guest instruction counter; undefined prints as empty (qemu-img leaves ICOUNT blank). */
  icount?: number;
  /** Virtual disk size when taken. */
  diskSize?: number;
}

export interface SnapshotCapability {
  list(): Promise<SnapshotInfo[]>;
  create(snapshot: { name: string; id?: string; dateSec: number; dateNsec: number; vmClockNsec?: number; vmStateSize?: number }): Promise<SnapshotInfo>;
  /** Revert the active layer to the snapshot's contents (qemu-img snapshot -a). */
  apply(idOrName: string): Promise<void>;
  delete(idOrName: string): Promise<void>;
  /** A read-only view of the disk as it was in the snapshot (qemu-img convert -l). */
  openView(idOrName: string): Promise<NodeImpl>;
}

/** A persistent dirty bitmap loaded from an image (QEMU's BdrvDirtyBitmap of one). */
export interface PersistentBitmap {
  name: string;
  granularity: number;
  /** Records guest writes (qcow2's "auto" flag). */
  enabled: boolean;
  /** Was marked in use on disk when loaded: its bits are unusable (QEMU: "inconsistent"). */
  inconsistent: boolean;
  /** Loaded from a read-only node: changes are refused. */
  readOnly: boolean;
  /** Its bits (empty for an inconsistent bitmap). */
  bits: DirtyBitmap;
}

/**
 * Persistent dirty bitmaps (qcow2 v3), as QEMU's block-dirty-bitmap-* commands see a node's:
 * loaded on first use, changed in memory, stored when the node closes; remove is written at
 * once. Messages are QEMU's. Formats without them lack the capability.
 */
export interface BitmapCapability {
  /** Whether this image can hold them (qcow2: version 3, QEMU's supports_persistent_dirty_bitmap). */
  readonly supported: boolean;
  /** Loaded bitmaps, newest first (QEMU's list order: the reverse of the directory's). */
  list(): Promise<PersistentBitmap[]>;
  /** One bitmap; "Dirty bitmap 'x' not found" otherwise. */
  lookup(name: string): Promise<PersistentBitmap>;
  add(name: string, options?: { granularity?: number; disabled?: boolean }): Promise<void>;
  remove(name: string): Promise<void>;
  clear(name: string): Promise<void>;
  setEnabled(name: string, enabled: boolean): Promise<void>;
  /** OR `sourceName` of `source` (this node's or another's) into `target`. */
  merge(target: string, source: BitmapCapability, sourceName: string): Promise<void>;
}

export type RepairMode = 'leaks' | 'all';

/** qemu-img's words for a format without a check (its exit status is 63). */
export const NO_CHECK_MESSAGE = 'This image format does not support checks';

/** qemu-img check --output=json keys (qemu-img.c collect_image_check). */
/** A CheckResult message that starts with this is an error report: the CLI prints it after its
 *  program name ("qemu-img: ERROR ..."), as QEMU's error_report does. */
export const CHECK_ERROR_REPORT = '\u0001';

export interface CheckResult {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  corruptionsFixed: number;
  leaksFixed: number;
  imageEndOffset?: number;
  totalClusters?: number;
  allocatedClusters?: number;
  fragmentedClusters?: number;
  compressedClusters?: number;
  /** Findings in words, one per problem (qemu-img prints these as ERROR/Leaked lines). */
  messages: string[];
  /** The check could not complete (strerror text, e.g. 'Input/output error'): qemu-img prints
   *  the findings, then "Check failed: <this>", and no summary. */
  failed?: string;
}

export interface MeasureResult {
  required: number;
  fullyAllocated: number;
  bitmaps?: number;
}

/**
 * An open image or protocol instance, as a driver implements it. Offsets/lengths passed in are
 * already bounds-checked and aligned to `alignment` by the generic layer.
 */
export interface NodeImpl {
  /** Virtual size in bytes (what the guest sees). */
  readonly size: number;
  /** Request alignment in bytes (1 = byte granular). The generic layer does read-modify-write. */
  readonly alignment?: number;
  /** Largest single request the driver takes; the generic layer splits bigger ones. */
  readonly maxTransfer?: number;
  /** True when flush() never reaches stable storage (cache=unsafe): formats above may then keep
   *  their metadata write-back, as nothing they write is durable before close anyway. */
  readonly noFlush?: boolean;
  /** Protocol nodes a format grows by writing past the end (QEMU lets a file grow on write):
   *  writes may pass `size`, and reads past it return zeros. */
  readonly growable?: boolean;
  /** The name QEMU's bdrv_refresh_filename gives this node, where it differs from the name the
   *  user typed (ssh: "ssh://USER@HOST:PORT/PATH"): info, map and the nodes above show it. */
  readonly exactFilename?: string;
  /** The directory relative names in an image on this node resolve against, as a name ending in
   *  '/' (QEMU's bdrv_dirname), for protocols whose names are not local paths (ssh); throws
   *  QEMU's words where there is none. Without it, the node's file name's directory. */
  dirname?(): string;

  read(offset: number, length: number): Promise<Buffer>;
  /** Read into a buffer the caller owns, writing every byte of into[0, length) (optional: the
   *  generic layer falls back to read() and a copy). Saves a fresh buffer per request, which at
   *  convert speeds is what the garbage collector would otherwise chase. */
  readInto?(offset: number, length: number, into: Buffer): Promise<void>;
  write?(offset: number, data: Buffer, flags: WriteFlags): Promise<void>;
  /** Without it, the generic layer writes zero-filled buffers. */
  writeZeroes?(offset: number, length: number, flags: ZeroFlags): Promise<void>;
  /** writeZeroes honours ZeroFlags.noFallback (QEMU's supported_zero_flags has
   *  BDRV_REQ_NO_FALLBACK); without it such a request fails with ENOTSUP. */
  readonly zeroNoFallback?: boolean;
  /** Without it, discard is a successful no-op (as in QEMU, discard is advisory). */
  discard?(offset: number, length: number): Promise<void>;
  /**
   * Map the unallocated parts of a guest range to new storage without writing data (QEMU's
   * preallocation=metadata, for one range), so that a copy filling a new image in guest order
   * gets an in-order layout while its data writes overlap. Until written, the range reads as
   * zeros. A driver may decline (do nothing and answer undefined), e.g. when it keeps metadata
   * write-through; then the caller keeps its writes in order instead.
   */
  reserve?(offset: number, length: number): Promise<Reservation | undefined>;
  /**
   * True when every unwritten byte of this node reads as zero right now (QEMU's
   * bdrv_has_zero_init), so a copy into a fresh node may skip the source's zero ranges. Without
   * it, false (QEMU's safe default): an encrypted payload decrypts unwritten sectors to noise, a
   * device holds whatever was on it. Asked of a new image before anything is written to it.
   */
  hasZeroInit?(): boolean;
  /** Without it, everything reads as allocated data. */
  blockStatus?(offset: number, length: number): Promise<BlockStatus>;
  /**
   * Where the last range QEMU's driver answers in one block-status call begins, when that driver
   * answers in smaller units than this one merges (qcow2: an L2 table; qcow: a cluster; vdi: a
   * block; vmdk: a grain). QEMU flags the answer that reaches the end of the image (EOF), and
   * `compare -s` compares those flags: this tells compare where QEMU's EOF flag starts. Without
   * it, QEMU's answer is the whole run, as here.
   */
  qemuLastStatusUnit?(): number;
  flush?(): Promise<void>;
  truncate?(size: number, options: TruncateOptions): Promise<void>;
  info?(): Promise<DriverInfo>;
  /** Bytes of storage the node takes on the host (QEMU's bdrv_get_allocated_file_size: a file's
   *  allocated blocks); without it, unknown. */
  allocatedSize?(): Promise<number | undefined>;

  /** Whole-cluster compressed write (qemu-img convert -c). `offset` is cluster aligned. */
  writeCompressed?(offset: number, data: Buffer): Promise<void>;
  /** An OS descriptor holding the node's bytes at their offsets (the file protocol): convert
   *  preads data from it directly. */
  readonly hostFd?: number;
  /** Unit of compressed writes and of allocation (qcow2 cluster, vmdk grain, vhdx block). */
  readonly clusterSize?: number;

  /** The backing file named in the metadata; the generic layer opens it. */
  readonly backingFile?: { filename: string; format?: string };
  /** Set by the generic layer when metadata changes the backing (rebase, commit). */
  setBackingFile?(filename: string | undefined, format: string | undefined): Promise<void>;

  snapshots?: SnapshotCapability;
  bitmaps?: BitmapCapability;
  check?(repair: RepairMode | undefined): Promise<CheckResult>;
  /** Deallocate every cluster of this layer so all reads fall through to the backing file
   *  (QEMU's bdrv_make_empty; qemu-img commit without -d). Unlike discard, which may leave zero
   *  clusters that hide the backing data, the result must be "unallocated". */
  makeEmpty?(): Promise<void>;
  amend?(options: OptionValues, ctx: AmendContext): Promise<void>;
  /** A driver above raised a named event on this node (QEMU's bdrv_debug_event; debug-events.ts).
   *  Only error-injecting nodes (blkdebug) listen; without it, events are ignored. */
  debugEvent?(event: DebugEvent): void;
  /** The name qemu-img shows for raw over this protocol node when it has no plain one (QEMU's
   *  bdrv_refresh_filename json: name; vvfat). */
  qemuFilename?(): string;
  /** Make the image clean (lazy refcounts, need-check bits) before it closes. */
  close(): Promise<void>;
}

/** Services the generic layer lends a driver while it opens (and for the node's lifetime). */
export interface OpenContext {
  /** The image's name as the user gave it (for messages). */
  filename: string;
  /** The driver's own options from the options tree (e.g. {"key-secret": "sec0"}). */
  options: OptionsTree;
  readOnly: boolean;
  secrets: SecretStore;
  workers: WorkerPool;
  warn(message: string): void;
  /** Reads from the backing chain; zeros where there is no backing node or past its end. */
  readBacking(offset: number, length: number): Promise<Buffer>;
  /** The opened backing node, once the generic layer has opened it (undefined if none). */
  backing(): BlockNode | undefined;
  /** Open a file the image's metadata names (vmdk extent, qcow2 data file), resolved relative to
   *  the image with the security rules of docs/security.md; never a protocol URL or json:. */
  openSibling(name: string, options?: { readOnly?: boolean; create?: boolean }): Promise<BlockNode>;
  /** True when the user asked for no backing (qemu-img info, -u rebase). */
  noBacking: boolean;
  /** Would a probe of this first sector pick a format other than raw? (A probed raw image
   *  refuses writes that would make it so; the registry lives above the drivers.) */
  probesAsOtherFormat(head: Buffer, filename: string): boolean;
  /** Opened by qemu-img check (QEMU's BDRV_O_CHECK): no repair at open time (a dirty qcow2 is
   *  left for the check to report and repair). */
  forCheck?: boolean;
  /** Opened only to be described, never to read or write guest data (QEMU's BDRV_O_NO_IO, as
   *  qemu-img info opens): encryption keys are not looked up. */
  noIo?: boolean;
}

export interface ProtocolOpenContext {
  filename: string;
  options: OptionsTree;
  readOnly: boolean;
  /** Permissions this node takes, and those it lets others take (PERM_* bits). */
  perm: number;
  sharedPerm: number;
  warn(message: string): void;
  /** Secrets (--object secret) a protocol looks up by id (iscsi's password-secret). */
  secrets?: SecretStore;
  /**
   * Open a child node from part of this node's options (a filter's `image`, a quorum's
   * `children`): an options subtree, or a filename parsed as a protocol name. A subtree naming a
   * format opens as an image (with its own backing chain). The child takes a filter child's
   * permissions (`perm` added, `unshare` taken from what it shares: blkdebug's take-child-perms /
   * unshare-child-perms), inherits this node's cache options, and closes with this node. Role
   * 'file': the node's primary child (BlockNode.file: flushes under it, relative names in image
   * metadata resolve against it); 'child': one of several (BlockNode.children). Always present
   * when the generic layer opens the node (absent only where a test calls a driver directly).
   */
  openChild?(spec: OptionsTree | string, role: 'file' | 'child', perms?: { perm?: number; unshare?: number }): Promise<BlockNode>;
}

export interface CreateContext {
  filename: string;
  size: number;
  options: OptionValues;
  secrets: SecretStore;
  workers: WorkerPool;
  warn(message: string): void;
  signal?: AbortSignal;
  /** Create (or truncate) and open read-write another file next to the image (vmdk extents). */
  createSibling(name: string): Promise<BlockNode>;
  /** The backing image, opened read-only, when backing_file was given. */
  backing?: BlockNode;
}

export interface AmendContext {
  secrets: SecretStore;
  workers: WorkerPool;
  warn(message: string): void;
  signal?: AbortSignal;
  force: boolean;
  /** Work done of the total, as the driver measures it (qemu-img amend -p). */
  onProgress?(done: number, total: number): void;
}

/** A format driver (qcow2, vmdk, ...): sits on a `file` child. */
export interface FormatDriver {
  readonly kind: 'format';
  /** qemu-img's format name ("qcow2", "vpc", ...). */
  readonly name: string;
  /** Human description for the GUI. */
  readonly description: string;
  /** How sure the driver is that `head` (first PROBE_BYTES of the file) is its format: 0..100
   *  (QEMU's bdrv_probe scores). */
  probe?(head: Buffer, filename: string): number;
  readonly createOptions: readonly OptionSpec[];
  /**
   * QEMU's create options in its order (the driver's create_opts, then the file protocol's not
   * already there), each with QEMU's def_value_str where it has one: qemu-img's "Formatting" line
   * (qemu_opts_print) lists every option given and every default, in this order. Without it, the
   * line names the format, the size and the options given.
   */
  readonly formattingOptions?: readonly (readonly [name: string, qemuDefault?: string])[];
  /** Options `qemu-img amend -o` accepts (a subset of createOptions plus extras). */
  readonly amendOptions?: readonly OptionSpec[];
  /** Write a new, empty image of `ctx.size` into `file` (already created, empty, read-write). */
  create?(file: BlockNode, ctx: CreateContext): Promise<void>;
  /** A failed create deletes the image file, even one that existed before (QEMU's luks create:
   *  what is left would be a garbage header). */
  readonly deleteFileOnCreateFailure?: boolean;
  /** Whether creation makes the file itself (vmdk descriptors+extents) instead of the generic layer. */
  readonly createsOwnFiles?: boolean;
  open(file: BlockNode, ctx: OpenContext): Promise<NodeImpl>;
  /** qemu-img measure for this format. */
  measure?(size: number, options: OptionValues, source?: BlockNode): Promise<MeasureResult>;
  /** True when read-only-only (bochs, cloop, dmg, parallels in QEMU are read-write? see driver). */
  readonly readOnlyFormat?: boolean;
  /** True when the format has a backing-file concept. */
  readonly supportsBacking?: boolean;
  /** QEMU (7.2) has no block-status callback for this format, so qemu-img map, measure and
   *  compare see every byte as data at no host offset. BlockNode.blockStatus answers the same
   *  unless asked for the driver's own allocation ({ precise: true }), which convert uses to skip
   *  unallocated blocks (qemu-img's zero detection skips them too: the target is the same). */
  readonly qemuHidesAllocation?: boolean;
  /** QEMU's driver has no bdrv_get_info (bochs, cloop, dmg, parallels): qemu-img info then shows
   *  no "dirty-flag" (nor a cluster size). */
  readonly qemuNoGetInfo?: boolean;
  // Capabilities (the GUI learns them through the service's listFormats; absent = not able).
  /** convert -c: the format stores compressed clusters. 'any-order': each lands wherever space
   *  is free and is found through the format's tables (qcow2, qcow), so compressions may run
   *  concurrently without -W; 'in-order': they must follow guest order (vmdk streamOptimized). */
  readonly compressedWrites?: 'any-order' | 'in-order';
  /** The format's encryption, with QEMU's option names. */
  readonly encryption?: FormatEncryption;
}

/** How an encrypted image of a format is unlocked and created. */
export interface FormatEncryption {
  /** The option that names the secret holding the passphrase or key ("key-secret" for luks,
   *  "encrypt.key-secret" for qcow2 and qcow). */
  readonly keySecret: 'key-secret' | 'encrypt.key-secret';
  /** When a new image gets a LUKS payload (and so a passphrase and the LUKS cipher options,
   *  named with keySecret's prefix): always, or when an option has a value. */
  readonly luks?: true | { readonly option: string; readonly value: string };
}

/** A protocol driver (file, host_device, nbd, ...): the bottom of a chain. */
export interface ProtocolDriver {
  readonly kind: 'protocol';
  readonly name: string;
  readonly description: string;
  /** URI schemes handled ("nbd", "nbd+unix", ...), or filename prefixes ("fat:"). */
  readonly prefixes?: readonly string[];
  /** Its nodes take no locks, so the permissions they are opened with change nothing: a node
   *  opened to probe the format is kept instead of opened again (vvfat: a second open would read
   *  the whole directory tree again). */
  readonly takesNoLocks?: boolean;
  /** Turn a filename/URI into this driver's options (QEMU's bdrv_parse_filename). */
  parseFilename?(filename: string): OptionsTree;
  /** QEMU's bdrv_probe_device: how strongly this driver claims a plain filename (0 = not at all,
   *  100 = certainly; host_device and host_cdrom). The highest score wins, ties go to the first. */
  probeDevice?(filename: string): number;
  /** A filename as it may be shown in messages (a URL's password taken out). */
  redactFilename?(filename: string): string;
  /** QEMU's bdrv_refresh_filename for a node with no plain filename: its options as the JSON
   *  object of its json: name ({"lun": "1", ...}), secrets left out. Names the node, and a format
   *  node directly over it as json:{"driver": FMT, "file": ...}, in info and map. Undefined
   *  where the node keeps a plain name (gluster's URI form). */
  refreshFilename?(options: OptionsTree): string | undefined;
  readonly createOptions: readonly OptionSpec[];
  /** QEMU's bdrv_refresh_filename for this protocol: the name a node opened with these options
   *  shows (nbd: "nbd://host:port/export" whatever form was typed). */
  displayName?(options: OptionsTree): string | undefined;
  /** QEMU words this driver's open failures without naming the file ("Failed to connect to
   *  ..."), so qemu-img prints one "Could not open" prefix, not two. */
  readonly bareOpenErrors?: boolean;
  /** QEMU's driver has no bdrv_get_info (nbd): qemu-img info over it shows no dirty-flag. */
  readonly noDriverInfo?: boolean;
  /** Images are created onto storage that exists already (QEMU's bdrv_co_create_opts_simple, as
   *  nbd has it): never grown, its first sector zeroed, then the format writes its image. */
  readonly createSimple?: boolean;
  /** Its storage has a fixed size made at create (a sheepdog vdi): its create gets the image's
   *  virtual size under every format, as QEMU's bdrv_create_file passes it. Other remote
   *  protocols get a size only under raw (the format consumed it: gluster, ssh, iscsi). */
  readonly createsAtImageSize?: boolean;
    /** Create the storage object (an empty file, with preallocation for raw). */
  create?(filename: string, size: number, options: OptionValues, ctx: { warn(m: string): void; signal?: AbortSignal }): Promise<void>;
  open(ctx: ProtocolOpenContext): Promise<NodeImpl>;
}

export type BlockDriver = FormatDriver | ProtocolDriver;

/** How many bytes of the file format probes see (QEMU: BLOCK_PROBE_BUF_SIZE = 512). */
export const PROBE_BYTES = 512;
