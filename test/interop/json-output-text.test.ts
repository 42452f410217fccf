// `platter info|check|measure --output=json` print the same text as qemu-img 7.2, byte for byte:
// QEMU's key order (its QDict hash order), its string escapes (non-ASCII as \uXXXX, surrogate
// pairs beyond the BMP), and names as QEMU gives them (a backing file relative to the image as
// typed; vmdk extents with no "children" section). Compared with qemu-img info, check, measure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { platter, qemuImg, qemuIo, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { qdictOrder } from '../../core/util/qemu-json-print.ts';

test('info, check and measure --output=json print the text qemu-img prints', { skip: SKIP_NO_QEMU, timeout: 120_000 }, () => {
  const t = tempDir();
  try {
    const sub = join(t.dir, 'sub');
    mkdirSync(sub);
    // A backing chain named relatively, a snapshot, and names that need escaping.
    qemuImg('create', '-q', '-f', 'qcow2', join(sub, 'base.qcow2'), '64M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(sub, 'top.qcow2'));
    qemuIo('-f', 'qcow2', '-c', 'write -P 0x11 1M 64k', join(sub, 'top.qcow2'));
    qemuImg('snapshot', '-c', 'first snapshot', join(sub, 'top.qcow2'));
    const odd = join(sub, 'é "q" \\ \u{1F600}.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', odd, '1M');
    for (const [fmt, opts] of [['vmdk', 'subformat=twoGbMaxExtentSparse'], ['vmdk', 'subformat=monolithicFlat'], ['vhdx', ''], ['vdi', ''], ['qed', ''], ['vpc', '']] as const) {
      qemuImg('create', '-q', '-f', fmt, ...(opts ? ['-o', opts] : []), join(sub, `x-${fmt}-${opts.replace(/\W/g, '')}.${fmt}`), '8M');
    }
    const cases: string[][] = [
      ['info', '--output=json', 'sub/top.qcow2'],
      ['info', '--output=json', '--backing-chain', './sub/top.qcow2'],
      ['info', '--output=json', odd],
      ['check', '--output=json', 'sub/top.qcow2'],
      ['measure', '--output=json', '-O', 'qcow2', 'sub/top.qcow2'],
      ['measure', '--output=json', '-O', 'qcow2', '--size', '1G'],
      ...['vmdk-subformattwoGbMaxExtentSparse.vmdk', 'vmdk-subformatmonolithicFlat.vmdk', 'vhdx-.vhdx', 'vdi-.vdi', 'qed-.qed', 'vpc-.vpc'].map((n) => ['info', '--output=json', `sub/x-${n}`]),
    ];
    for (const args of cases) {
      const q = run('qemu-img', args, { cwd: t.dir });
      assert.equal(q.status, 0, `qemu-img ${args.join(' ')}: ${q.stderr}`);
      const p = platter(args, { cwd: t.dir });
      assert.equal(p.status, 0, `platter ${args.join(' ')}: ${p.stderr}`);
      assert.equal(p.stdout, q.stdout, args.join(' '));
    }
  } finally {
    t.cleanup();
  }
});

test('qdictOrder puts keys in QEMU\'s printing order, newest first within a hash bucket', () => {
  // The order qemu-img 7.2 prints an ImageInfo with a backing file and snapshots in.
  const added = ['filename', 'format', 'dirty-flag', 'actual-size', 'virtual-size', 'cluster-size', 'backing-filename', 'full-backing-filename', 'backing-filename-format', 'snapshots', 'format-specific'];
  assert.deepEqual(qdictOrder(added), ['backing-filename-format', 'snapshots', 'virtual-size', 'filename', 'cluster-size', 'format', 'actual-size', 'format-specific', 'full-backing-filename', 'backing-filename', 'dirty-flag']);
  assert.deepEqual(qdictOrder(['id', 'name', 'vm-state-size', 'date-sec', 'date-nsec', 'vm-clock-sec', 'vm-clock-nsec', 'icount']), ['icount', 'vm-clock-nsec', 'name', 'date-sec', 'date-nsec', 'vm-clock-sec', 'id', 'vm-state-size']);
});
