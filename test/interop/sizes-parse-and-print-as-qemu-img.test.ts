// Sizes are read and printed in one place (core/shared/sizes.ts), as QEMU 7.2 does, and the CLI and
// the GUI share it. Compared with the real tools:
//  - parse: `qemu-img measure -O raw --size TEXT` accepts exactly the text Platter's parser
//    accepts, with the same value (raw measure rounds up to a sector) and, when it refuses, the
//    same message from the CLI's parseImageSize and from the GUI's size field (SizeField
//    checkSize); the GUI's option-form parser is the same function as the CLI's -o one.
//  - print: the GUI's formatBytes is qemu-img info's size_to_str ("virtual size", "disk size").

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkImageSize, parseSizeText, qemuStrtoszDetailed, sizeToStr } from '../../core/shared/sizes.ts';
import { parseImageSize } from '../../core/jobs/common.ts';
import { parseOptions } from '../../core/block/options-schema.ts';
import { formatBytes, parseSize } from '../../renderer/util/format.ts';
import { checkSize } from '../../renderer/components/SizeField.tsx';
import { validateOption } from '../../renderer/components/OptionsForm.tsx';
import { tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw } from './harness.ts';

const FIXED = [
  '0', '512', '1024', ' 5', '\t7k', '+5', '+1.5k', '5 ', '1.', '1.k', '1.0', '1.5', '1.5k', '0.15k', '.5k', '1.5T', '1.5e', '1.5E3', '1e3',
  '1.99999999999999999999k', '5.00000000000000000000001', '5.0000000000000000001', '0x10', '0x10k', '0x1.5k', '0x', '0xffffffffffffffffff', '-0', '-5', '-99999999999999999999',
  '99999999999999999999', '18446744073709551615', '9223372036854775807', '9223372036854775808', '8E', '7.99999999999999999E', '16E', '10 GiB', '10GiB', '10Gb', '10G ', '12X', 'k', '',
  '1kk', '64K', '64k', '1M', '3g', '2t', '1p', '0.5b', '1b', '1.5b', '0.0000001k', '0.9999999999999999999999E', '00012', '1_000',
];

/** A few dozen more from a fixed seed: digits, fractions, blanks, signs, suffixes, junk. */
function generated(): string[] {
  let x = 0x2545f491;
  const rnd = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const pick = <T,>(a: readonly T[]) => a[rnd(a.length)]!;
  const out: string[] = [];
  for (let i = 0; i < 40; i++) {
    const digits = String(rnd(10 ** (1 + rnd(6))));
    const frac = pick(['', '', '.', `.${rnd(1000)}`, `.${'9'.repeat(1 + rnd(22))}`, `.${'0'.repeat(rnd(25))}1`]);
    out.push(`${pick(['', '', ' ', '+', '-'])}${digits}${frac}${pick(['', 'b', 'B', 'k', 'K', 'm', 'G', 't', 'P', 'e', 'E', 'x', 'KiB', ' '])}`);
  }
  return out;
}

function qemuMeasure(text: string): { required?: bigint; stderr: string } {
  const r = spawnSync('qemu-img', ['measure', '-O', 'raw', '--size', text, '--output=json'], { encoding: 'utf8' });
  if (r.status === 0) return { required: BigInt(/"required": (-?\d+)/.exec(r.stdout)![1]!), stderr: r.stderr };
  return { stderr: r.stderr };
}

test("sizes parse as qemu-img reads them (qemu_strtosz): same acceptance, values, and words, in the CLI and the GUI", () => {
  for (const text of [...FIXED, ...generated()]) {
    const q = qemuMeasure(text);
    const mine = qemuStrtoszDetailed(text);
    const checked = checkImageSize(text);
    const gui = checkSize({ amount: text, unit: 1 });
    const label = JSON.stringify(text);
    if (q.required !== undefined) {
      assert.ok(typeof mine === 'object', `${label}: qemu-img accepts it (${q.required}), Platter says ${String(mine)}`);
      // (raw measure rounds up to a sector, in int64: INT64_MAX wraps there)
      if (q.required >= 0n) assert.equal((mine.value + 511n) / 512n * 512n, q.required, label);
      // QEMU 7.2 warns about a suffix on a hex number (and accepts it).
      assert.equal(mine.hexSuffix, /multiplier suffix on hex numbers is deprecated/.test(q.stderr), label);
      assert.ok('bytes' in checked, label);
      if (mine.value <= BigInt(Number.MAX_SAFE_INTEGER)) {
        assert.deepEqual(gui, { bytes: Number(mine.value) }, label);
        assert.equal(parseImageSize(text), Number(mine.value), label);
      }
    } else {
      // qemu-img's two error lines, without its program name, are Platter's message.
      const words = q.stderr.trim().split('\n').map((l) => l.replace(/^qemu-img: /, '')).join(' ');
      assert.ok('error' in checked, `${label}: qemu-img refuses it (${words}), Platter reads ${String(typeof mine === 'object' ? mine.value : mine)}`);
      assert.equal(checked.error, words, label);
      assert.deepEqual(gui, { error: words }, `${label}: the GUI's size field says what the CLI says`);
      assert.throws(() => parseImageSize(text), (e: Error) => e.message === words, label);
    }
  }
});

test('platter measure --size and create print what qemu-img prints for the same size text', async () => {
  // qcow2 (raw's measure differs: QEMU rounds it up to a sector, a separate matter).
  const cases = ['64K', '5 k', '12 ', '+5', '0x10', '1.05k', '1.5', '1.5e', '8E', '-1', '10 GiB', '99999999999999999999', '0x10k'];
  const t = tempDir('platter-sizes-cli-');
  try {
    for (const text of ['1M', '0x100000', '0x1M', '1.5M', '2 M']) {
      const q = qemuImgRaw('create', '-f', 'raw', t.path('q.raw'), text);
      const mine = await platterInProcess(['create', '-f', 'raw', t.path('q.raw'), text]);
      assert.equal(mine.status, q.status, text);
      assert.equal(mine.stdout, q.stdout, text);
      assert.equal(mine.stderr.replaceAll('platter:', 'qemu-img:'), q.stderr, text);
    }
  } finally {
    t.cleanup();
  }
  for (const text of cases) {
    const q = qemuImgRaw('measure', '-O', 'qcow2', '--size', text);
    const mine = await platterInProcess(['measure', '-O', 'qcow2', '--size', text]);
    assert.equal(mine.status, q.status, JSON.stringify(text));
    assert.equal(mine.stdout, q.stdout, JSON.stringify(text));
    // Errors, and QEMU 7.2's warning about a suffix on a hex number, in the same words.
    assert.equal(mine.stderr.replaceAll('platter:', 'qemu-img:'), q.stderr, JSON.stringify(text));
  }
});

test('the GUI reads -o sizes with the CLI parser and refuses them in the CLI words', () => {
  assert.equal(parseSize, parseSizeText);
  const cluster = { name: 'cluster_size', type: 'size' as const, help: '', min: 512, max: 2 * 1024 * 1024, powerOfTwo: true };
  for (const text of ['64K', '10 GiB', '1.5', '0x10k', '12X', '4M', '1000']) {
    let cli: string | undefined;
    try {
      parseOptions([{ ...cluster }], { cluster_size: text });
    } catch (e) {
      cli = (e as Error).message;
    }
    assert.equal(validateOption(cluster, text), cli, text);
  }
  assert.equal(parseSize('10 GiB'), undefined); // qemu-img refuses it too
});

test("one size formatter: the GUI's sizes are qemu-img info's size_to_str", () => {
  const t = tempDir('platter-sizes-');
  try {
    const sizes = [0, 512, 1024, 1536, 188416, 192512, 1000 * 1024, 1023 * 1024, 1024 * 1024, 1024000 + 512, 100 * 1024 * 1024 - 512, 1023.5 * 1024 * 1024, 1024 ** 3 * 1.5, 1024 ** 4 * 15];
    for (const [i, size] of sizes.entries()) {
      const f = t.path(`s${i}.raw`);
      const c = spawnSync('qemu-img', ['create', '-q', '-f', 'raw', f, String(size)], { encoding: 'utf8' });
      assert.equal(c.status, 0, c.stderr);
      const line = /virtual size: (.*) \((\d+) bytes\)/.exec(spawnSync('qemu-img', ['info', '-f', 'raw', f], { encoding: 'utf8' }).stdout)!;
      assert.equal(Number(line[2]), size);
      assert.equal(formatBytes(size), line[1], `${size}`);
      assert.equal(sizeToStr(size), line[1]);
    }
    // "disk size" of real images (the table's and the details pane's "Disk size").
    const fixtures = resolve(import.meta.dirname, '../../../shared/fixtures');
    if (existsSync(fixtures)) {
      const files = readdirSync(join(fixtures, 'generated')).filter((n) => /\.(qcow2|vmdk|vdi)$/.test(n)).slice(0, 6);
      for (const n of files) {
        const f = join(fixtures, 'generated', n);
        const human = /disk size: (.*)/.exec(spawnSync('qemu-img', ['info', '-U', f], { encoding: 'utf8' }).stdout)?.[1];
        const json = JSON.parse(spawnSync('qemu-img', ['info', '-U', '--output=json', f], { encoding: 'utf8' }).stdout) as { 'actual-size': number };
        assert.equal(formatBytes(json['actual-size']), human, n);
      }
    }
    assert.equal(formatBytes(undefined), '—');
  } finally {
    t.cleanup();
  }
});

test("size_to_str rounds as glibc's printf(\"%0.3g\") does: exact ties to the even digit (192.5 KiB is \"192 KiB\"), 999.5 and up as \"1e+03\"", () => {
  // QEMU's size_to_str is printf("%0.3g %sB", val / 2^(10*unit)); the shell's printf is glibc's.
  const bytes = [197120, 1536, 2560, 5632, 1024 * 1024 * 2.5, 1023558, 1023938, 999 * 1024, 1000, 1023, 1024, 1025, 123456789, 2 ** 40 - 1];
  for (let b = 1; b < 3_000_000; b += 4099) bytes.push(b);
  const values = bytes.map((b) => {
    const unit = Math.floor(Math.floor(Math.log2(b * 1.024)) / 10);
    return { b, v: b / 2 ** (unit * 10), unit };
  });
  const r = spawnSync('bash', ['-c', 'for v in "$@"; do printf "%0.3g\\n" "$v"; done', '_', ...values.map((x) => String(x.v))], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const printed = r.stdout.trim().split('\n');
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti'];
  values.forEach((x, i) => assert.equal(sizeToStr(x.b), `${printed[i]} ${units[x.unit]}B`, `${x.b} bytes`));
});
