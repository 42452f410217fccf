// QEMU refuses an option nobody took (bdrv_open_inherit: "Block format 'X' does not support the
// option 'Y'", "Block protocol 'X' doesn't support the option 'Y'"): a typo in --image-opts or
// json: is an error, never a silently ignored setting. Here the options a driver's open reads are
// recorded through a Proxy and what is left afterwards is refused; a driver that enumerates its
// options (spreads them, hands them on whole) takes them all, so nothing is refused wrongly.
// QEMU's runtime options that Platter accepts without acting on them (cache sizes, overlap
// checks, ...) are listed per driver, from QEMU 7.2's runtime option lists and QAPI schema.

import type { OptionsTree } from './options-tree.ts';
import { invalidArgument } from '../errors.ts';
import { qdictOrder } from '../util/qemu-json-print.ts';

/** Options of every node, taken by the block layer itself (QEMU's bdrv_runtime_opts). */
const BLOCK_LAYER = ['node-name', 'driver', 'file', 'backing', 'read-only', 'auto-read-only', 'discard', 'cache', 'detect-zeroes', 'force-share', 'x-probed'];

const FILE_POSIX = ['filename', 'aio', 'aio-max-batch', 'locking', 'pr-manager', 'drop-cache', 'x-check-cache-dropped'];

/** QEMU runtime options a driver accepts whether or not Platter's driver reads them. */
const ACCEPTED: Readonly<Record<string, readonly string[]>> = {
  qcow2: ['lazy-refcounts', 'pass-discard-request', 'pass-discard-snapshot', 'pass-discard-other', 'overlap-check', 'cache-size', 'l2-cache-size', 'l2-cache-entry-size', 'refcount-cache-size', 'cache-clean-interval', 'encrypt', 'data-file'],
  qcow: ['encrypt'],
  luks: ['key-secret'],
  raw: ['offset', 'size'],
  parallels: ['prealloc-size', 'prealloc-mode'],
  vpc: ['force_size_calc'],
  vmdk: ['extents'],
  file: FILE_POSIX,
  host_device: FILE_POSIX,
  host_cdrom: FILE_POSIX,
  vvfat: ['dir', 'fat-type', 'floppy', 'label', 'rw'],
  nbd: ['server', 'host', 'port', 'path', 'export', 'tls-creds', 'tls-hostname', 'x-dirty-bitmap', 'reconnect-delay', 'open-timeout'],
  ssh: ['server', 'host', 'port', 'path', 'user', 'host_key_check', 'host-key-check'],
  iscsi: ['transport', 'portal', 'target', 'user', 'password', 'password-secret', 'lun', 'initiator-name', 'header-digest', 'timeout'],
  gluster: ['filename', 'volume', 'path', 'server', 'debug', 'logfile'],
  sheepdog: ['server', 'vdi', 'snap-id', 'tag'],
  nvme: ['device', 'namespace'],
  'null-co': ['size', 'latency-ns', 'read-zeroes'],
  'null-aio': ['size', 'latency-ns', 'read-zeroes'],
  quorum: ['children', 'vote-threshold', 'blkverify', 'rewrite-corrupted', 'read-pattern'],
  blkdebug: ['config', 'image', 'x-image', 'align', 'max-transfer', 'opt-write-zero', 'max-write-zero', 'opt-discard', 'max-discard', 'inject-error', 'set-state'],
};

/** The options that name an image (QEMU's strong_runtime_opts): kept in its json: name. */
const STRONG: Readonly<Record<string, readonly string[]>> = {
  raw: ['offset', 'size'],
  luks: ['key-secret'],
  qcow2: ['encrypt'],
  qcow: ['encrypt'],
};

export function strongOptions(driver: string): readonly string[] {
  return STRONG[driver] ?? [];
}

export interface ReadTracker {
  /** The options as the driver sees them (reads are recorded). */
  readonly view: OptionsTree;
  /** Refuse the options nobody read, in QEMU's words and QDict order. */
  refuseUnread(kind: 'format' | 'protocol', driver: string): void;
}

export function trackReads(options: OptionsTree): ReadTracker {
  const read = new Set<string>();
  let all = false;
  const view = new Proxy(options, {
    get(t, k, r) {
      if (typeof k === 'string') read.add(k);
      return Reflect.get(t, k, r);
    },
    has(t, k) {
      if (typeof k === 'string') read.add(k);
      return Reflect.has(t, k);
    },
    getOwnPropertyDescriptor(t, k) {
      if (typeof k === 'string') read.add(k);
      return Reflect.getOwnPropertyDescriptor(t, k);
    },
    ownKeys(t) {
      all = true;
      return Reflect.ownKeys(t);
    },
  });
  return {
    view,
    refuseUnread(kind, driver) {
      if (all) return;
      const accepted = ACCEPTED[driver] ?? [];
      const left = Object.keys(options).filter((k) => !read.has(k) && !BLOCK_LAYER.includes(k) && !accepted.includes(k));
      if (left.length === 0) return;
      const name = qdictOrder(left)[0]!;
      // Worded by the block layer, not the protocol: no "Could not open 'file':" of its own.
      throw invalidArgument(kind === 'format' ? `Block format '${driver}' does not support the option '${name}'` : `Block protocol '${driver}' doesn't support the option '${name}'`, undefined, { code: 'ProtocolWorded' });
    },
  };
}
