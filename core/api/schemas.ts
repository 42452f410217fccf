// Input schemas of every service method (zod): the one validation both the Electron main process
// and the browser-mode WebSocket server run on untrusted input before calling core/api. Names and
// meanings follow qemu-img's options (noted per field), so a CLI user recognises them in the GUI.

import { z } from 'zod';
import { CACHE_MODES } from '../block/cache-mode.ts';

/** --object secret,id=..,data=.. as data: the bytes travel only inside the call, never in events. */
export const secretInput = z.object({
  id: z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]*$/, 'a secret id starts with a letter and has letters, digits, _ . -'),
  data: z.string(),
  /** How `data` is encoded (qemu secret "format"). */
  format: z.enum(['raw', 'base64']).optional(),
});
export type SecretInput = z.infer<typeof secretInput>;

/** What every method that opens images accepts besides its own fields. */
const withSecrets = {
  /** Secrets for encrypted images (key-secret, encrypt.key-secret). */
  secrets: z.array(secretInput).optional(),
  /** qemu-img --object strings ("secret,id=sec0,data=x" or "secret,id=sec0,file=/path"). */
  objects: z.array(z.string()).optional(),
};

/** A cache mode as qemu-img's -t / -T take it ('off' is given as 'none'). */
export const cacheMode = z.enum(CACHE_MODES);

/** One image to open: a filename, URI or json: pseudo-filename, or --image-opts dotted text. */
export const imageRef = z.object({
  filename: z.string().min(1, 'an image filename is required'),
  /** -f: the format; probed when absent. */
  format: z.string().min(1).optional(),
  /** --image-opts: `filename` is "driver=qcow2,file.filename=x,..." text. */
  imageOpts: z.boolean().optional(),
  /** -U: open read-only without taking the write-sharing lock. */
  forceShare: z.boolean().optional(),
  /** How the image's file is cached: qemu-img's -T src_cache for what a job reads (convert's
   *  sources, check, compare), its -t cache for the image commit, rebase and amend change. */
  cache: cacheMode.optional(),
});
export type ImageRef = z.infer<typeof imageRef>;

const optionValue = z.union([z.string(), z.number(), z.boolean()]);
/** -o: either qemu-img's "key=value,..." text or already-split values from a form. */
export const optionsInput = z.union([z.string(), z.record(z.string(), optionValue)]);
/** A size: bytes, or qemu-img text with a suffix ("10G", "512M"). */
export const sizeInput = z.union([z.number().int().nonnegative(), z.string().min(1)]);

export const infoInput = z.object({
  image: imageRef,
  /** --backing-chain: one entry per image of the chain. */
  backingChain: z.boolean().optional(),
  ...withSecrets,
});

export const createInput = z.object({
  filename: z.string().min(1),
  /** -f */
  format: z.string().min(1).default('raw'),
  /** Virtual size; may be omitted with a backing file (it inherits the backing size). */
  size: sizeInput.optional(),
  /** -o */
  options: optionsInput.optional(),
  /** -b */
  backingFile: z.string().optional(),
  /** -F */
  backingFormat: z.string().optional(),
  /** -u: do not open the backing file. */
  unsafe: z.boolean().optional(),
  ...withSecrets,
});

export const convertInput = z.object({
  source: imageRef,
  /** Further sources, concatenated after `source` (qemu-img convert a b c -> out). */
  moreSources: z.array(imageRef).optional(),
  target: z.object({
    filename: z.string().min(1),
    /** -O (default raw) */
    format: z.string().min(1).optional(),
    /** -o */
    options: optionsInput.optional(),
    /** --target-image-opts (with noCreate) */
    imageOpts: z.boolean().optional(),
  }),
  /** -n: the target exists; do not create it. */
  noCreate: z.boolean().optional(),
  /** --target-is-zero (needs -n): skip writing zeros. */
  targetIsZero: z.boolean().optional(),
  /** -S: smallest run of zero bytes skipped as a hole (default 4096; 0 = write everything). */
  sparseSize: sizeInput.optional(),
  /** -c */
  compressed: z.boolean().optional(),
  /** -W: allow out-of-order writes. */
  outOfOrder: z.boolean().optional(),
  /** --salvage: copy what can be read; unreadable ranges become zeros, each reported. */
  salvage: z.boolean().optional(),
  /** -m: parallel requests (1..16, default 8). */
  parallel: z.number().int().min(1).max(16).optional(),
  /** -r: the target's writes limited to this many bytes per second (0: no limit). */
  rateLimit: z.number().int().nonnegative().optional(),
  /** -l: convert a snapshot ("id", "name", or "snapshot.id=..,snapshot.name=..") */
  snapshot: z.string().optional(),
  /** -B: backing file written into the target. */
  backingFile: z.string().optional(),
  /** -F: the backing file's format. */
  backingFormat: z.string().optional(),
  /** -t: the target's cache mode (default 'unsafe', as qemu-img convert: no flushes). */
  cache: cacheMode.optional(),
  /** --bitmaps: copy the source's persistent dirty bitmaps. */
  bitmaps: z.boolean().optional(),
  /** --skip-broken-bitmaps (with bitmaps): leave out inconsistent ones. */
  skipBrokenBitmaps: z.boolean().optional(),
  ...withSecrets,
});

export const checkInput = z.object({
  image: imageRef,
  /** -r */
  repair: z.enum(['leaks', 'all']).optional(),
  ...withSecrets,
});

export const compareInput = z.object({
  a: imageRef,
  b: imageRef,
  /** -s: sizes must match too. */
  strict: z.boolean().optional(),
  ...withSecrets,
});

export const mapInput = z.object({
  image: imageRef,
  /** --start-offset */
  start: z.number().int().nonnegative().optional(),
  /** --max-length */
  length: z.number().int().nonnegative().optional(),
  ...withSecrets,
});

export const measureInput = z.object({
  /** -O: the format to measure for. */
  format: z.string().min(1).default('raw'),
  /** --size (or give `source`) */
  size: sizeInput.optional(),
  source: imageRef.optional(),
  /** -l on the source */
  snapshot: z.string().optional(),
  /** -o */
  options: optionsInput.optional(),
  ...withSecrets,
});

export const resizeInput = z.object({
  image: imageRef,
  /** "10G" absolute, "+1G"/"-1G" relative, or bytes. */
  size: sizeInput,
  shrink: z.boolean().optional(),
  preallocation: z.enum(['off', 'metadata', 'falloc', 'full']).optional(),
  ...withSecrets,
});

export const snapshotInput = z.object({
  image: imageRef,
  /** A snapshot tag or id. */
  name: z.string().min(1),
  ...withSecrets,
});

export const snapshotListInput = z.object({
  image: imageRef,
  ...withSecrets,
});

export const commitInput = z.object({
  image: imageRef,
  /** -b: the base to commit into (default: the image's backing file). */
  base: z.string().optional(),
  /** -d: keep the top's data (do not empty it). */
  drop: z.boolean().optional(),
  /** -r: the copy into the base limited to this many bytes per second (0: no limit). */
  rateLimit: z.number().int().nonnegative().optional(),
  ...withSecrets,
});

export const rebaseInput = z.object({
  image: imageRef,
  /** -b: new backing file; "" removes the backing file. */
  backingFile: z.string(),
  /** -F */
  backingFormat: z.string().optional(),
  /** -u: only rewrite the header. */
  unsafe: z.boolean().optional(),
  /** -T src_cache: how the old and new backing files are cached. */
  backingCache: cacheMode.optional(),
  ...withSecrets,
});

export const amendInput = z.object({
  image: imageRef,
  options: optionsInput,
  force: z.boolean().optional(),
  ...withSecrets,
});

/** qemu-img bitmap: operations on one persistent dirty bitmap, run in order. */
export const bitmapInput = z.object({
  image: imageRef,
  /** The bitmap's name. */
  bitmap: z.string(),
  /** --add, --remove, --clear, --enable, --disable, --merge SOURCE, in the order given. */
  actions: z.array(
    z.discriminatedUnion('op', [
      z.object({ op: z.enum(['add', 'remove', 'clear', 'enable', 'disable']) }),
      z.object({ op: z.literal('merge'), source: z.string() }),
    ]),
  ),
  /** -g: granularity of an added bitmap, bytes. */
  granularity: z.number().int().nonnegative().optional(),
  /** -b/-F: the image merge sources are read from (default: `image`). */
  sourceImage: imageRef.optional(),
  ...withSecrets,
});

export const listFormatsInput = z.object({}).optional();

export const jobIdInput = z.object({ jobId: z.string().min(1) });

export type InfoInput = z.input<typeof infoInput>;
export type CreateInput = z.input<typeof createInput>;
export type ConvertInput = z.input<typeof convertInput>;
export type CheckInput = z.input<typeof checkInput>;
export type CompareInput = z.input<typeof compareInput>;
export type MapInput = z.input<typeof mapInput>;
export type MeasureInput = z.input<typeof measureInput>;
export type ResizeInput = z.input<typeof resizeInput>;
export type SnapshotInput = z.input<typeof snapshotInput>;
export type SnapshotListInput = z.input<typeof snapshotListInput>;
export type CommitInput = z.input<typeof commitInput>;
export type RebaseInput = z.input<typeof rebaseInput>;
export type AmendInput = z.input<typeof amendInput>;
export type BitmapInput = z.input<typeof bitmapInput>;
export type JobIdInput = z.input<typeof jobIdInput>;
