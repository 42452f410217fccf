// The qcow2 format driver (QEMU's bdrv_qcow2 table; docs/interop/qcow2.txt): probe by magic and
// version, open (with the external data file and the repair of a dirty lazy-refcounts image),
// create, measure. The work is split by concern across this folder: header.ts, validate.ts,
// load.ts, image.ts, entries.ts, l2-cache.ts, cluster-map.ts, refcount.ts, snapshots*.ts,
// compress.ts, check.ts, amend.ts, options.ts, create.ts, measure.ts, prealloc.ts, bitmaps.ts,
// node.ts.

import type { FormatDriver } from '../../block/types.ts';
import { corrupt, invalidImage } from '../../errors.ts';
import { optString } from '../../block/options-tree.ts';
import { INCOMPAT_DIRTY, QCOW2_MAGIC } from './header.ts';
import { loadImage } from './load.ts';
import { Qcow2Node } from './node.ts';
import { checkImage } from './check.ts';
import { createQcow2 } from './create.ts';
import { measureQcow2 } from './measure.ts';
import { QCOW2_AMEND_OPTIONS, QCOW2_CREATE_OPTIONS, QCOW2_FORMATTING_OPTIONS } from './options.ts';
import { attachCrypto, openCrypto } from './encryption.ts';

/** QEMU's probe score for a qcow2 magic with a known version. */
const PROBE_SCORE = 100;

export const qcow2Driver: FormatDriver = {
  kind: 'format',
  name: 'qcow2',
  description: 'QEMU copy-on-write image v2/v3: sparse, backing files, internal snapshots, compression',
  compressedWrites: 'any-order', encryption: { keySecret: 'encrypt.key-secret', luks: { option: 'encrypt.format', value: 'luks' } },
  supportsBacking: true,
  createOptions: QCOW2_CREATE_OPTIONS,
  formattingOptions: QCOW2_FORMATTING_OPTIONS,
  amendOptions: QCOW2_AMEND_OPTIONS,

  probe(head) {
    if (head.length < 8 || head.readUInt32BE(0) !== QCOW2_MAGIC) return 0;
    const version = head.readUInt32BE(4);
    return version === 2 || version === 3 ? PROBE_SCORE : 0;
  },

  create: createQcow2,
  measure: measureQcow2,

  async open(file, ctx) {
    const img = await loadImage(file, { filename: ctx.filename, readOnly: ctx.readOnly, workers: ctx.workers, warn: ctx.warn, forCheck: ctx.forCheck ?? false });
    const crypto = await openCrypto({ file, cryptMethod: img.header.cryptMethod, cryptoExt: img.header.cryptoExt, clusterSize: img.clusterSize, options: ctx.options, noIo: ctx.noIo ?? false, secrets: ctx.secrets, workers: ctx.workers, warn: ctx.warn, ctx: { path: ctx.filename } });
    if (crypto) attachCrypto(img, crypto);
    const dataOpt = optString(ctx.options, 'data-file');
    if (img.externalData) {
      const name = dataOpt ?? img.header.dataFile;
      if (!name) throw invalidImage("'data-file' is required for this image (it has an external data file but does not name it)", { path: ctx.filename });
      img.dataFile = await ctx.openSibling(name, { readOnly: ctx.readOnly });
    } else if (dataOpt !== undefined) {
      throw invalidImage("'data-file' can only be set for images with an external data file", { path: ctx.filename });
    }
    const node = new Qcow2Node(img, ctx);
    if (!ctx.readOnly && !ctx.forCheck && img.header.incompatible & INCOMPAT_DIRTY) {
      // A dirty image (lazy refcounts, not closed cleanly): repair the refcounts, as QEMU does.
      const r = await checkImage(img, 'all');
      for (const m of r.messages) ctx.warn(m); // QEMU prints the repair's findings as it goes
      if (r.corruptions > 0 || r.checkErrors > 0) {
        throw corrupt(`Could not repair dirty image: ${r.corruptions} corruptions and ${r.checkErrors} check errors remain (run qemu-img check -r all)`, { path: ctx.filename }, { code: 'Worded' });
      }
      if (img.header.incompatible & INCOMPAT_DIRTY) {
        img.header.incompatible &= ~INCOMPAT_DIRTY;
        await img.writeHeader();
      }
    }
    return node;
  },
};
