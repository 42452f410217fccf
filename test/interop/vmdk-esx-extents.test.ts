// ESX extent kinds no free tool creates, built here field by field: a seSparse extent
// (createType "seSparse") and a VMFS sparse "COWD" extent (createType "vmfsSparse"). Platter
// reads them exactly as `qemu-img convert -O raw` does, and refuses to write to seSparse as QEMU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { qemuImg, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const S = 512;
const CAPACITY = 2048; // sectors (1 MiB)

function descriptor(createType: string, line: string): string {
  return `# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="${createType}"\n\n# Extent description\n${line}\n`;
}

function seSparseImage(): { file: Buffer; content: Buffer } {
  const GT_AT = 3;
  const GRAINS_AT = 67;
  const file = Buffer.alloc((GRAINS_AT + 3 * 8) * S);
  const h = file;
  h.writeBigUInt64LE(0xcafebaben, 0);
  h.writeBigUInt64LE(0x0000000200000001n, 8);
  h.writeBigUInt64LE(BigInt(CAPACITY), 16);
  h.writeBigUInt64LE(8n, 24); // grain size
  h.writeBigUInt64LE(64n, 32); // grain table size
  h.writeBigUInt64LE(1n, 80); // volatile header offset
  h.writeBigUInt64LE(1n, 88);
  h.writeBigUInt64LE(2n, 128); // grain directory offset
  h.writeBigUInt64LE(1n, 136);
  h.writeBigUInt64LE(BigInt(GT_AT), 144);
  h.writeBigUInt64LE(64n, 152);
  h.writeBigUInt64LE(BigInt(GRAINS_AT), 192);
  h.writeBigUInt64LE(24n, 200);
  file.writeBigUInt64LE(0xcafecafen, S); // volatile header
  file.writeBigUInt64LE(0x1000000000000000n, 2 * S); // GD[0] -> grain table 0
  const content = Buffer.alloc(CAPACITY * S);
  const gte = (grain: number, v: bigint) => file.writeBigUInt64LE(v, GT_AT * S + grain * 8);
  const alloc = (c: number) => 0x3000000000000000n | (BigInt(c & 0xfff) << 48n) | BigInt(c >> 12);
  for (const [grain, cluster, byte] of [[0, 0, 0x61], [5, 2, 0x62], [200, 1, 0x63]] as const) {
    gte(grain, alloc(cluster));
    file.fill(byte, (GRAINS_AT + cluster * 8) * S, (GRAINS_AT + cluster * 8 + 8) * S);
    content.fill(byte, grain * 4096, grain * 4096 + 4096);
  }
  gte(7, 0x2000000000000000n); // zero grain
  gte(9, 0x1000000000000000n); // unmapped grain
  return { file, content };
}

function cowdImage(): { file: Buffer; content: Buffer } {
  const GT_AT = 5;
  const GRAINS_AT = 40;
  const file = Buffer.alloc((GRAINS_AT + 2 * 8) * S);
  file.write('COWD', 0, 'latin1');
  file.writeUInt32LE(1, 4); // version
  file.writeUInt32LE(3, 8); // flags
  file.writeUInt32LE(CAPACITY, 12);
  file.writeUInt32LE(8, 16); // granularity (sectors)
  file.writeUInt32LE(4, 20); // grain directory sector
  file.writeUInt32LE(1, 24); // grain directory entries
  file.writeUInt32LE(GT_AT, 4 * S);
  const content = Buffer.alloc(CAPACITY * S);
  for (const [grain, slot, byte] of [[1, 0, 0x71], [255, 1, 0x72]] as const) {
    file.writeUInt32LE(GRAINS_AT + slot * 8, GT_AT * S + grain * 4);
    file.fill(byte, (GRAINS_AT + slot * 8) * S, (GRAINS_AT + slot * 8 + 8) * S);
    content.fill(byte, grain * 4096, grain * 4096 + 4096);
  }
  return { file, content };
}

for (const [name, createType, type, build] of [
  ['seSparse', 'seSparse', 'SESPARSE', seSparseImage],
  ['VMFS sparse (COWD)', 'vmfsSparse', 'VMFSSPARSE', cowdImage],
] as const) {
  test(`reads a ${name} extent like qemu-img convert -O raw`, { skip: SKIP_NO_QEMU }, async () => {
    const t = tempDir();
    try {
      const { file, content } = build();
      writeFileSync(t.path('ext.vmdk'), file);
      writeFileSync(t.path('d.vmdk'), descriptor(createType, `RW ${CAPACITY} ${type} "ext.vmdk"`));
      qemuImg('convert', '-f', 'vmdk', '-O', 'raw', t.path('d.vmdk'), t.path('q.raw'));
      const theirs = readFileSync(t.path('q.raw'));
      assert.ok(theirs.equals(content), 'the hand-built image means what the test says (qemu-img agrees)');
      const node = await openImage(t.path('d.vmdk'), { readOnly: true });
      try {
        assert.equal(node.size, CAPACITY * S);
        assert.ok((await node.read(0, node.size)).equals(theirs));
        const info = (await node.info()).formatSpecific!.data as any;
        assert.equal(info['create-type'], createType);
        assert.equal(info.extents[0].format, type);
        assert.equal(info.extents[0]['cluster-size'], 4096);
      } finally {
        await node.close();
      }
      if (type === 'SESPARSE') {
        const zero = await openImage(t.path('d.vmdk'), { readOnly: true });
        const st = await zero.blockStatus(7 * 4096, 4096);
        assert.deepEqual([st.zero, st.allocated], [true, true]);
        await zero.close();
        const rw = await openImage(t.path('d.vmdk'), { format: 'vmdk' });
        try {
          await assert.rejects(rw.write(0, Buffer.alloc(512)), /No write support for seSparse images available/);
        } finally {
          await rw.close();
        }
      }
    } finally {
      t.cleanup();
    }
  });
}
