// dmg against qemu-img 7.2: every fixture reads as qemu-img reads it (md5 of `qemu-img convert
// -O raw`), or, for the chunk types Debian's qemu-img cannot read (bzip2, lzfse: modules not
// built; ADC: never supported), as its zlib twin does; `info` (human and --output=json), `map`
// and `measure` print what qemu-img prints; convert from dmg into every writable format passes
// `qemu-img check` and `qemu-img compare` against qemu-img's raw conversion of the zlib twin;
// images in resource-fork form read as qemu-img reads them; writes are refused as qemu-img
// refuses them, with the file untouched; a ".dmg" name is what makes qemu-img probe dmg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { openImage } from '../../core/drivers/open.ts';
import { streamMd5 } from '../helpers/fixture-content.ts';
import { FIXTURES, HAVE_FIXTURES, fixtureFacts, md5, md5File, qemuImg, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw } from './harness.ts';
import { dmgFromDisk, sampleDisk } from '../helpers/dmg-build.ts';

const SKIP = SKIP_NO_FIXTURES || SKIP_NO_QEMU;
const facts: any[] = HAVE_FIXTURES ? fixtureFacts().filter((f) => f.format === 'dmg') : [];
const TWIN = 'node-udif/compression-zlib.dmg';
const path = (f: any) => join(FIXTURES, f.open);
/** The fixture whose qemu-img raw conversion is the answer for `f`. */
const answerOf = (f: any) => (f.raw_md5 ? f : facts.find((x) => x.id === TWIN));
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** platter's stdout, with the program name as qemu-img's, and its status. */
async function platterOut(args: string[]) {
  const r = await platterInProcess(args);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.replace(/^platter:/gm, 'qemu-img:') };
}
/** qemu-img's output without the lines Debian's missing dmg modules add on stderr. */
function qemuOut(args: string[]) {
  const r = qemuImgRaw(...args);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => !/^qemu: module .* not found|^qemu-img: warning: (dmg-|Image contains chunks)/.test(l)).join('\n') };
}

test('every dmg fixture reads with the md5 of qemu-img convert -O raw (its zlib twin\'s where qemu-img cannot decode the chunks)', { skip: SKIP_NO_FIXTURES }, async () => {
  assert.equal(facts.length, 7);
  for (const f of facts) {
    const answer = answerOf(f);
    const node = await openImage(path(f), { readOnly: true, format: 'dmg' });
    try {
      assert.equal(node.size, f.virtual_size, f.id);
      assert.equal(await streamMd5(node, 0, node.size), answer.raw_md5, f.id);
    } finally {
      await node.close();
    }
  }
});

test('qemu-img info (human and --output=json) prints the same for every dmg fixture', { skip: SKIP }, async () => {
  for (const f of facts) {
    for (const args of [['info', path(f)], ['info', '--output=json', path(f)], ['info', '-f', 'dmg', '--output=json', path(f)]]) {
      const ours = await platterOut(args);
      const theirs = qemuOut(args);
      assert.equal(ours.status, theirs.status, `${f.id} ${args.join(' ')}: ${ours.stderr}`);
      assert.equal(ours.stdout, theirs.stdout, `${f.id} ${args.join(' ')}`);
    }
  }
});

test('qemu-img map (human and json) and measure print the same for dmg (QEMU has no block status for dmg)', { skip: SKIP }, async () => {
  for (const f of facts.filter((x) => x.id === TWIN || x.id === 'node-udif/compression-lzfse.dmg' || x.id === 'node-udif/compression-raw.dmg')) {
    for (const args of [['map', '--output=json', path(f)], ['map', path(f)], ['measure', '-O', 'qcow2', path(f)], ['measure', '-O', 'raw', '--output=json', path(f)]]) {
      const ours = await platterOut(args);
      const theirs = qemuOut(args);
      assert.equal(ours.status, theirs.status, `${f.id} ${args.join(' ')}: ${ours.stderr}`);
      assert.equal(ours.stdout, theirs.stdout, `${f.id} ${args.join(' ')}`);
      assert.equal(ours.stderr.trim(), theirs.stderr.trim(), `${f.id} ${args.join(' ')}`);
    }
  }
});

test('convert from every dmg fixture into qcow2 passes qemu-img check and qemu-img compare with qemu-img convert -O raw of its answer', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    for (const f of facts) {
      const answer = answerOf(f);
      const want = t.path(`${answer.id.replace(/\W/g, '_')}.raw`);
      qemuImg('convert', '-f', 'dmg', '-O', 'raw', path(answer), want);
      assert.equal(md5File(want), answer.raw_md5);
      const out = t.path(`${f.id.replace(/\W/g, '_')}.qcow2`);
      const r = await platterOut(['convert', '-f', 'dmg', '-O', 'qcow2', path(f), out]);
      assert.equal(r.status, 0, `${f.id}: ${r.stderr}`);
      const chk = qemuImgRaw('check', out);
      assert.equal(chk.status, 0, `${f.id}: ${chk.stdout}${chk.stderr}`);
      const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'qcow2', want, out);
      assert.equal(cmp.status, 0, `${f.id}: ${cmp.stdout}${cmp.stderr}`);
    }
  } finally {
    t.cleanup();
  }
});

test('convert from dmg (lzfse, ADC, bzip2 chunks) into every writable format (luks too): qemu-img compare with the zlib twin, qemu-img check', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    const want = t.path('twin.raw');
    qemuImg('convert', '-f', 'dmg', '-O', 'raw', join(FIXTURES, 'third-party', TWIN), want);
    const formats: [string, boolean][] = [['raw', false], ['qcow2', true], ['qed', true], ['vmdk', true], ['vdi', true], ['vpc', false], ['vhdx', true], ['qcow', false]];
    const sources = ['compression-lzfse.dmg', 'compression-adc.dmg', 'compression-bz2.dmg'];
    for (let i = 0; i < formats.length; i++) {
      const [fmt, check] = formats[i]!;
      const src = join(FIXTURES, 'third-party/node-udif', sources[i % sources.length]!);
      const out = t.path(`out.${fmt}`);
      const r = await platterOut(['convert', '-O', fmt, src, out]);
      assert.equal(r.status, 0, `${fmt}: ${r.stderr}`);
      if (check) {
        const chk = qemuImgRaw('check', '-f', fmt, out);
        assert.equal(chk.status, 0, `${fmt}: ${chk.stdout}${chk.stderr}`);
      }
      const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', fmt, want, out);
      assert.equal(cmp.status, 0, `${fmt}: ${cmp.stdout}${cmp.stderr}`);
    }
    // luks, with its key secret on both sides.
    const secret = ['--object', 'secret,id=s0,data=platter-dmg-test'];
    const out = t.path('out.luks');
    const r = await platterOut(['convert', ...secret, '-O', 'luks', '-o', 'key-secret=s0,iter-time=10', join(FIXTURES, 'third-party/node-udif/compression-lzfse.dmg'), out]);
    assert.equal(r.status, 0, `luks: ${r.stderr}`);
    const cmp = qemuImgRaw('compare', ...secret, '--image-opts', `driver=raw,file.filename=${want}`, `driver=luks,key-secret=s0,file.filename=${out}`);
    assert.equal(cmp.status, 0, `luks: ${cmp.stdout}${cmp.stderr}`);
  } finally {
    t.cleanup();
  }
});

test('built images: the resource-fork and XML forms read as qemu-img convert -O raw reads them; bzip2 chunks as the source disk', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const disk = sampleDisk(3 << 20);
    for (const [name, codec, form] of [['rsrc-zlib.dmg', 'zlib', 'rsrc'], ['xml-raw.dmg', 'raw', 'xml'], ['rsrc-raw.dmg', 'raw', 'rsrc'], ['xml-zlib-small.dmg', 'zlib', 'xml']] as const) {
      const p = t.path(name);
      writeFileSync(p, dmgFromDisk(disk, codec, name.includes('small') ? 7 : 2048, form));
      const raw = t.path(`${name}.raw`);
      qemuImg('convert', '-f', 'dmg', '-O', 'raw', p, raw);
      assert.equal(md5File(raw), md5(disk), `${name}: qemu-img reads the built image as the source disk`);
      const node = await openImage(p, { readOnly: true, format: 'dmg' });
      try {
        assert.equal(await streamMd5(node, 0, node.size), md5(disk), name);
      } finally {
        await node.close();
      }
    }
    const p = t.path('bz.dmg');
    writeFileSync(p, dmgFromDisk(disk, 'bzip2', 1024));
    const node = await openImage(p, { readOnly: true, format: 'dmg' });
    try {
      assert.equal(await streamMd5(node, 0, node.size), md5(disk), 'bzip2');
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

test('writes are refused as qemu-img refuses them (Image is read-only, no image creation), the file unchanged', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    const img = t.path('copy.dmg');
    copyFileSync(join(FIXTURES, 'third-party', TWIN), img);
    const before = sha(img);
    for (const args of [['resize', img, '8M'], ['commit', img], ['snapshot', '-c', 's', img], ['amend', '-o', 'size=8M', img], ['rebase', '-u', '-b', '', img], ['create', '-f', 'dmg', t.path('new.dmg'), '1M'], ['convert', '-O', 'dmg', img, t.path('new2.dmg')], ['check', img]]) {
      const ours = await platterOut(args);
      const theirs = qemuOut(args);
      assert.equal(ours.status, theirs.status, args.join(' '));
      assert.equal(ours.stdout, theirs.stdout, args.join(' '));
      assert.equal(ours.stderr.trim(), theirs.stderr.trim(), args.join(' '));
    }
    assert.equal(sha(img), before);
  } finally {
    t.cleanup();
  }
});

test('probing: a ".dmg" name probes as dmg, the same bytes under another name as raw, an empty file as raw (as qemu-img probes)', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    const other = t.path('image.img');
    copyFileSync(join(FIXTURES, 'third-party', TWIN), other);
    for (const p of [join(FIXTURES, 'third-party', TWIN), other]) {
      const ours = await platterOut(['info', '--output=json', p]);
      const theirs = qemuOut(['info', '--output=json', p]);
      assert.equal(ours.stdout, theirs.stdout, p);
    }
    assert.equal(JSON.parse((await platterOut(['info', '--output=json', other])).stdout).format, 'raw');
    // An empty file is raw whatever its name (QEMU asks no driver about it).
    const empty = t.path('empty.dmg');
    writeFileSync(empty, '');
    const ours = await platterOut(['info', '--output=json', empty]);
    assert.equal(ours.stdout, qemuOut(['info', '--output=json', empty]).stdout);
    assert.equal(JSON.parse(ours.stdout).format, 'raw');
  } finally {
    t.cleanup();
  }
});
