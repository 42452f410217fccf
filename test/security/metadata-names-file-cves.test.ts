// QEMU-CVE regression corpus, "image metadata names another file" class (issue 8; docs/security.md):
// CVE-2022-47951 (a VMDK descriptor whose extent is /etc/passwd, ../x, a symlink leading out, a
// json: or nbd:// name), CVE-2024-32498 (a qcow2 external data file naming an arbitrary host file
// or json:), CVE-2024-4467 (a qcow2/qed backing file named `json:{...}` or a protocol URL, also on
// the `qemu-img info` path). Platter must refuse with a typed BlockError and never open the named
// file: the files-opened guard (opened-files.ts) records every path the file protocol opens.
// A backing file may be what a plain path may be (any local file), also as a json: name of
// formats over local files and blkdebug (QEMU's iotests record such names: iotest 020); json:
// names that reach a protocol or make Platter read a blkdebug config file stay refused.
// QEMU 7.2, which predates the fixes for the last two, opens most of these; the tests assert
// that with `qemu-img info` to show the images really are the attack shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, qemuImg, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { info } from '../../core/jobs/info.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { BlockError } from '../../core/errors.ts';
import { probeHostile, assertRefused, patchFile, qemuImgInfo } from './harness.ts';
import { setQcow2DataFile, vmdkFlatDescriptor } from './craft.ts';
import { watchOpenedFiles } from './opened-files.ts';

/** 1 MiB: the size of every extent / data file here. */
const MIB = 1 << 20;
/** Bytes of the file the attacker wants read, and of the legitimate extent. */
const SECRET_BYTE = 0x5a;
const DATA_BYTE = 0x33;

const t = tempDir('platter-sec-names-');
test.after(() => t.cleanup());
/** Images live in inner/; the "secret" sits one level up, reachable by .., a symlink, a dir link. */
const inner = join(t.dir, 'inner');
mkdirSync(inner);
const secret = join(t.dir, 'secret.raw');
writeFileSync(secret, Buffer.alloc(MIB, SECRET_BYTE));
writeFileSync(join(inner, 'data.raw'), Buffer.alloc(MIB, DATA_BYTE));
symlinkSync(secret, join(inner, 'link.raw'));
symlinkSync(t.dir, join(inner, 'dirlink'));
let n = 0;

const JSON_NAME = 'json:{"driver":"file","filename":"/etc/passwd"}';
const NBD_NAME = 'nbd://127.0.0.1:10809/x';
/** json: backing names that reach beyond local files, each in another way. */
const JSON_NBD_DRIVER = 'json:{"driver":"raw","file":{"driver":"nbd","server":{"type":"inet","host":"127.0.0.1","port":"10809"}}}';
const JSON_NBD_FILENAME = 'json:{"driver":"raw","file":{"filename":"nbd://127.0.0.1:10809/x"}}';
const JSON_BLKDEBUG_CONFIG = 'json:{"driver":"raw","file":{"driver":"blkdebug","config":"/etc/passwd","image":{"driver":"file","filename":"/etc/passwd"}}}';
const REFUSED_BACKING = /names a protocol or json: options beyond formats over local files and blkdebug/;

interface NameCase {
  title: string;
  name: string;
  platter: RegExp;
}
const OUTSIDE = /outside the image's directory/;
const NAMES: NameCase[] = [
  { title: 'an absolute host path (/etc/passwd)', name: '/etc/passwd', platter: OUTSIDE },
  { title: 'a relative path climbing out (../secret.raw)', name: '../secret.raw', platter: OUTSIDE },
  { title: 'a symlink in the image directory leading out', name: 'link.raw', platter: /link that leads outside the image's directory/ },
  { title: 'a path through a symlinked directory leading out', name: 'dirlink/secret.raw', platter: /link that leads outside the image's directory/ },
  { title: 'a missing file under a symlinked directory leading out', name: 'dirlink/missing.raw', platter: /link that leads outside the image's directory/ },
  { title: 'a json: filename', name: JSON_NAME, platter: /names a protocol or json:|no usable extent/ },
  { title: 'an nbd:// URL', name: NBD_NAME, platter: /names a protocol or json:/ },
];

// ---- CVE-2022-47951: VMDK extents

test('CVE-2022-47951 (vmdk extent next to the descriptor): still opens and reads the extent, nothing else opened', async () => {
  const path = join(inner, `ok${n++}.vmdk`);
  writeFileSync(path, vmdkFlatDescriptor('data.raw'));
  const out = await probeHostile(path, { format: 'vmdk' });
  assert.equal(out.error, undefined, out.error?.message);
  assert.equal(out.bytesRead, MIB);
  assert.deepEqual([...out.opened].sort(), [path, join(inner, 'data.raw')].sort());
});

for (const c of NAMES) {
  test(`CVE-2022-47951 (vmdk extent naming ${c.title}): refused, the named file never opened; compared with qemu-img info`, { skip: SKIP_NO_QEMU }, async () => {
    const path = join(inner, `d${n++}.vmdk`);
    writeFileSync(path, vmdkFlatDescriptor(c.name));
    const out = await probeHostile(path, { format: 'vmdk' });
    assertRefused(out, c.platter, ['Permission', 'Unsupported', 'InvalidImage']);
    assert.deepEqual(out.opened, [path]);
    // QEMU 7.2 follows plain paths, symlinks included (the CVE); it fails on json:/nbd: names
    // ("Invalid extent line" / "No such file or directory") and on the missing file.
    const plainExisting = !c.name.includes(':') && !c.name.includes('missing');
    assert.equal(qemuImgInfo(path, 'vmdk').ok, plainExisting);
  });
}

// ---- CVE-2024-32498: qcow2 external data file

/** A qcow2 with an external data file (made by qemu-img), then renamed in the header to `name`. */
function dataFileImage(name: string): string {
  const path = join(inner, `q${n}.qcow2`);
  qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(inner, `q${n++}.data`)}`, path, '1M');
  patchFile(path, (b) => setQcow2DataFile(b, name));
  return path;
}

test('CVE-2024-32498 (qcow2 data file next to the image): opens, nothing else opened', { skip: SKIP_NO_QEMU }, async () => {
  const path = dataFileImage('data.raw');
  const out = await probeHostile(path, { format: 'qcow2' });
  assert.equal(out.error, undefined, out.error?.message);
  assert.deepEqual([...out.opened].sort(), [path, join(inner, 'data.raw')].sort());
});

for (const c of NAMES) {
  test(`CVE-2024-32498 (qcow2 data file naming ${c.title}): refused, the named file never opened; compared with qemu-img info`, { skip: SKIP_NO_QEMU }, async () => {
    const path = dataFileImage(c.name);
    const out = await probeHostile(path, { format: 'qcow2' });
    assertRefused(out, c.platter, ['Permission', 'Unsupported']);
    assert.deepEqual(out.opened, [path]);
    // QEMU 7.2 qemu-img info opens every one of these (json: included: the CVE's data-file json:
    // shape; a missing data file is not an error for info either).
    assert.ok(qemuImgInfo(path, 'qcow2').ok);
  });
}

// ---- CVE-2024-4467: backing file names from metadata

for (const format of ['qcow2', 'qed']) {
  for (const name of [NBD_NAME, JSON_NBD_DRIVER, JSON_NBD_FILENAME, JSON_BLKDEBUG_CONFIG]) {
    test(`CVE-2024-4467 (${format} backing file named ${name.slice(0, 60)}...): not followed from metadata, refused on open; compared with qemu-img info`, { skip: SKIP_NO_QEMU }, async () => {
      const path = join(inner, `b${n++}.${format}`);
      qemuImg('create', '-q', '-f', format, '-u', '-b', name, '-F', 'raw', path, '1M');
      const out = await probeHostile(path, { format });
      assertRefused(out, REFUSED_BACKING, ['Unsupported']);
      assert.deepEqual(out.opened, [path]);
      // QEMU 7.2 qemu-img info shows the name without opening it.
      const q = qemuImgInfo(path, format);
      assert.ok(q.ok);
      assert.ok(q.text.includes(`backing file: ${name}`), q.text);
    });
  }
}

test('CVE-2024-4467 (qcow2 json: backing file, info path): info shows the name and opens only the image; --backing-chain refuses', { skip: SKIP_NO_QEMU }, async () => {
  const path = join(inner, `b${n++}.qcow2`);
  qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', JSON_NBD_DRIVER, '-F', 'raw', path, '1M');
  const env = { secrets: new SecretStore(), warn: () => {} };
  const watch = watchOpenedFiles([inner]);
  try {
    const one = await info({ image: { filename: path, format: 'qcow2' } }, env);
    assert.ok(!Array.isArray(one));
    assert.equal(one['backing-filename'], JSON_NBD_DRIVER);
    await assert.rejects(info({ image: { filename: path, format: 'qcow2' }, backingChain: true }, env), (e: unknown) => e instanceof BlockError && e.kind === 'Unsupported' && REFUSED_BACKING.test(e.message));
  } finally {
    watch.stop();
  }
  assert.deepEqual(watch.opened, [path, path]);
});

test('a json: backing file of blkdebug over a local file (iotest 020) is followed: the image and that file opened, nothing else', { skip: SKIP_NO_QEMU }, async () => {
  const base = join(inner, `base${n++}.raw`);
  writeFileSync(base, Buffer.alloc(MIB, DATA_BYTE));
  const name = `json:{'driver': 'raw', 'file': {'driver': 'blkdebug', 'inject-error': [{'event': 'write_aio', 'errno': 28, 'once': true}], 'image': {'driver': 'file', 'filename': '${base}'}}}`;
  const path = join(inner, `b${n++}.qcow2`);
  qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', name, '-F', 'raw', path, '1M');
  const out = await probeHostile(path, { format: 'qcow2' });
  assert.equal(out.error, undefined, out.error?.message);
  assert.deepEqual([...out.opened].sort(), [path, base].sort());
  assert.equal(out.bytesRead, MIB);
});
