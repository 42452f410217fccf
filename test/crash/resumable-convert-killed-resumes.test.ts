// A resumable convert (core/jobs/resumable-convert.ts) SIGKILLed at about 50% leaves no file under
// the target's name, only the hidden staged file and its journal; resuming copies the rest and
// the result is identical to the source under `qemu-img compare` and clean under `qemu-img
// check`. A journal that no longer matches its source is refused with the reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readdirSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, SKIP_NO_QEMU, qemuImgJson, run, tempDir } from '../helpers/qemu.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { describeInterrupted, resumableConvert, resumePaths, verifyCopy } from '../../core/jobs/resumable-convert.ts';
import { isStagingLeftover } from '../../core/jobs/staging.ts';

const MiB = 1 << 20;

/** 48 MiB of random data in 1 MiB extents with holes between, in a 96 MiB raw image. */
function makeSource(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 96 * MiB);
  const buf = Buffer.alloc(MiB);
  for (let i = 0; i < 48; i++) {
    for (let j = 0; j < buf.length; j += 4) buf.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
    writeSync(fd, buf, 0, buf.length, i * 2 * MiB + 4096);
  }
  closeSync(fd);
}

function killAtHalf(source: string, target: string, format: string): Promise<{ half: boolean; finished: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/crash/resumable-convert-child.ts'), source, target, format], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let half = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!half && out.includes('HALF')) {
        half = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', () => resolve({ half, finished: out.includes('FINISHED') }));
  });
}

for (const format of ['raw', 'qcow2']) {
  test(`a ${format} convert SIGKILLed at 50% resumes from its journal and qemu-img compare finds the result identical`, { skip: SKIP_NO_QEMU, timeout: 120_000 }, async () => {
    const t = tempDir();
    try {
      const src = t.path('src.raw');
      makeSource(src);
      const out = t.path(`out.${format}`);
      const r = await killAtHalf(src, out, format);
      assert.ok(r.half && !r.finished, 'the convert was killed at half way');
      assert.ok(!existsSync(out), 'no file under the target name after the kill');
      for (const n of readdirSync(t.dir).filter((n) => n !== 'src.raw')) assert.ok(isStagingLeftover(n), `unmarked leftover ${n}`);
      const d = describeInterrupted(out);
      assert.ok(d, 'the interrupted convert is found');
      assert.equal(d.problem, undefined, d.problem);
      assert.ok(d.done > 0 && d.done < d.total, `journal prefix ${d.done} of ${d.total}`);

      const res = await resumableConvert({ source: { filename: src, format: 'raw' }, target: { filename: out, format }, resume: true }, defaultEnv());
      assert.equal(res.resumedFrom, d.done);
      assert.ok(!existsSync(resumePaths(out).journal) && !existsSync(resumePaths(out).staged), 'journal and staged file are gone after the resume');
      const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', format, src, out]);
      assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
      assert.match(cmp.stdout, /Images are identical/);
      if (format === 'qcow2') assert.equal(run('qemu-img', ['check', out]).status, 0);
      assert.equal(qemuImgJson('info', out).format, format);
      const v = await verifyCopy({ filename: src, format: 'raw' }, { filename: out, format }, defaultEnv());
      assert.equal(v.verified, true, v.words);
    } finally {
      t.cleanup();
    }
  });
}

test('resume refuses when the source changed after the kill, and names the reason', { skip: SKIP_NO_QEMU, timeout: 120_000 }, async () => {
  const t = tempDir();
  try {
    const src = t.path('src.raw');
    makeSource(src);
    const out = t.path('out.qcow2');
    const r = await killAtHalf(src, out, 'qcow2');
    assert.ok(r.half);
    // Change one byte near the start, keeping the size.
    const fd = openSync(src, 'r+');
    writeSync(fd, Buffer.from([0x5a]), 0, 1, 10);
    closeSync(fd);
    utimesSync(src, new Date(), new Date(Date.now() + 5000));
    assert.match(describeInterrupted(out)!.problem ?? '', /source changed/);
    await assert.rejects(resumableConvert({ source: { filename: src, format: 'raw' }, target: { filename: out, format: 'qcow2' }, resume: true }, defaultEnv()), /Cannot resume the convert: the source changed/);
    assert.ok(!existsSync(out));
  } finally {
    t.cleanup();
  }
});

test('verifyCopy names the first difference as qemu-img compare does', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const a = t.path('a.raw');
    const b = t.path('b.qcow2');
    makeSource(a);
    run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', a, b]);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 5M 4k', b]);
    const q = run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', a, b]);
    const v = await verifyCopy({ filename: a, format: 'raw' }, { filename: b, format: 'qcow2' }, defaultEnv());
    assert.equal(v.verified, false);
    assert.equal(`${v.compare.message}\n`, q.stdout);
    assert.match(v.words, /Content mismatch at offset/);
  } finally {
    t.cleanup();
  }
});
