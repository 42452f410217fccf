// The desktop app's elevated drive helper end to end, without the elevation itself (Electron and
// the OS dialogs cannot run here): electron/elevate.ts runElevatedDriveJob with `plainStart`
// (the test seam) starts the real helper, core/cli/elevated-worker.ts, as a plain child process;
// it connects over the private channel with its token, runs a real convert of a real loop device
// (we are root) and verifies it, while progress arrives; cancel stops it; a wrong token is
// refused; malformed messages are refused both ways; a helper that dies mid-job, or never
// connects, gives a clear error. qemu-img compare is the judge of what was written.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { REPO_ROOT, SKIP_NO_QEMU, run, tempDir } from '../helpers/qemu.ts';
import { attachLoop, detachLoop, LOOP_SKIP, sizedFile } from '../helpers/loop-device.ts';
import { plainStart, runElevatedDriveJob, spawnCommand, type HelperCommand, type HelperStarter } from '../../electron/elevate.ts';
import { drivesImageInput, drivesRoutes, drivesWriteInput, setDriveLister, type ElevatedDriveJob } from '../../core/api/routes-drives.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { sysfsBlockDeviceSize } from '../../core/host/portable.ts';
import { listHostDrives } from '../../core/host/drives.ts';
import { PIPE_FILE, SOCKET_FILE, TOKEN_FILE } from '../../core/api/elevated-protocol.ts';
import { checkImageSources, checkImageTarget, openChannel } from '../../core/cli/elevated-worker.ts';
import type { JobProgressEvent } from '../../core/jobs/common.ts';
import { BlockError } from '../../core/errors.ts';

const MiB = 1 << 20;
const WORKER = join(REPO_ROOT, 'core/cli/elevated-worker.ts');
const helper: HelperCommand = { exe: process.execPath, args: ['--import', 'tsx', WORKER] };
const SKIP = LOOP_SKIP || SKIP_NO_QEMU;

const imageJob = (drive: string, filename: string, format = 'qcow2'): ElevatedDriveJob => ({ kind: 'image', input: drivesImageInput.parse({ drive, target: { filename, format }, elevate: true }) });

/** A pattern that is not all zeros, so copying it proves something. */
function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) b.writeUInt32LE(i / 4096 + 1, i);
  return b;
}

describe('elevated drive helper over its channel (helper spawned without elevation)', { skip: SKIP }, () => {
  const t = tempDir('platter-elevated-');
  const devices: string[] = [];
  let small = '';
  let big = '';
  before(() => {
    writeFileSync(t.path('small.img'), pattern(8 * MiB));
    small = attachLoop(t.path('small.img'))!;
    devices.push(small);
    // Big enough that a copy is still running when cancel (or a kill) arrives: 1 GiB of data
    // would cost the lead's benchmarks, so mostly a hole with data every 4 MiB.
    sizedFile(t.path('big.img'), 1024 * MiB);
    const block = Buffer.alloc(4096, 0x5a);
    const h = openSync(t.path('big.img'), 'r+');
    for (let off = 0; off < 1024 * MiB; off += 4 * MiB) writeSync(h, block, 0, block.length, off);
    closeSync(h);
    big = attachLoop(t.path('big.img'))!;
    devices.push(big);
  });
  after(() => {
    for (const d of devices) detachLoop(d);
    t.cleanup();
  });

  test('image a loop device into qcow2: progress arrives, the result is verified, qemu-img compare agrees', async () => {
    const events: JobProgressEvent[] = [];
    const out = t.path('small.qcow2');
    const r = await runElevatedDriveJob(imageJob(small, out), { onProgress: (p) => events.push(p) }, { helper, start: plainStart });
    assert.equal(r.verified, true, r.message);
    assert.ok(events.length >= 2, `progress events: ${events.length}`);
    assert.ok(events.some((e) => e.phase === 'copying' && e.done === e.total && e.total === 8 * MiB), JSON.stringify(events));
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', small, out]).status, 0);
    assert.equal(run('qemu-img', ['check', out]).status, 0);
    // The channel directory is gone.
    assert.deepEqual(readdirSync(t.dir).filter((n) => n.startsWith('platter-elevate-')), []);
  });

  test('the helper as the app ships it (the esbuild bundle dist/electron/elevated-worker.cjs) runs the job, with koffi or without', async () => {
    const { buildApp } = await import('../../scripts/build-app.mjs');
    const { electron } = await buildApp({ only: 'electron', outDir: t.path('dist') });
    // koffi is external to the bundle, beside it in node_modules as in the packaged app. Without
    // it (no native device calls) the device's size comes from sysfs (core/host/portable.ts).
    for (const env of [{ NODE_PATH: join(REPO_ROOT, 'node_modules') }, {}] as Record<string, string>[]) {
      const out = t.path(`bundled-${Object.keys(env).length}.qcow2`);
      const r = await runElevatedDriveJob(imageJob(small, out), {}, { helper: { exe: process.execPath, args: [join(electron, 'elevated-worker.cjs')], env }, start: plainStart });
      assert.equal(r.verified, true, r.message);
      const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', small, out]);
      assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    }
  });

  test('a drive that does not open with its listed size is refused before anything is copied', async () => {
    const listed = (await listHostDrives()).find((x) => x.path === small)!;
    setDriveLister(async () => [{ ...listed, size: 2 * listed.size }]);
    try {
      const out = t.path('wrong-size.qcow2');
      const ctx = { env: defaultEnv(), ctl: {} } as Parameters<typeof drivesRoutes.drivesImage.run>[1];
      await assert.rejects(async () => drivesRoutes.drivesImage.run(drivesImageInput.parse({ drive: small, target: { filename: out } }), ctx), (e: BlockError) => e.kind === 'Io' && e.message === `${small} opens with ${8 * MiB} bytes, but the drive was listed with ${16 * MiB} bytes (it changed, or this process cannot read its size): nothing was copied`);
      assert.equal(existsSync(out), false);
    } finally {
      setDriveLister(undefined);
    }
  });

  test('without native calls a Linux block device is sized from sysfs', () => {
    const fd = openSync(small, 'r');
    try {
      assert.equal(sysfsBlockDeviceSize(fd), 8 * MiB);
    } finally {
      closeSync(fd);
    }
    const f = openSync(t.path('small.img'), 'r');
    try {
      assert.equal(sysfsBlockDeviceSize(f), undefined, 'a regular file is no block device');
    } finally {
      closeSync(f);
    }
  });

  test('write an image onto a loop device, verified; qemu-img compare of the written range agrees', async () => {
    const img = t.path('w.qcow2');
    run('qemu-img', ['create', '-f', 'qcow2', img, '4M']);
    run('qemu-io', ['-c', 'write -P 0x3c 0 1M', '-c', 'write -P 0x7e 3M 512k', img]);
    const d = (await listHostDrives()).find((x) => x.path === small)!;
    assert.ok(d, 'lsblk lists the loop device');
    const job: ElevatedDriveJob = { kind: 'write', input: drivesWriteInput.parse({ image: { filename: img, format: 'qcow2' }, drive: small, confirm: { model: d.model, size: d.size }, elevate: true }) };
    const events: JobProgressEvent[] = [];
    const w = await runElevatedDriveJob(job, { onProgress: (p) => events.push(p) }, { helper, start: plainStart });
    assert.equal(w.verified, true, w.message);
    assert.ok(events.length > 0);
    assert.equal(run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, `json:{"driver":"raw","size":${4 * MiB},"file":{"driver":"host_device","filename":"${small}"}}`]).status, 0);
    // A confirmation that does not match is refused by the helper too (it checks again).
    const wrong: ElevatedDriveJob = { kind: 'write', input: { ...job.input, confirm: { model: d.model, size: d.size + 512 } } as typeof job.input };
    await assert.rejects(runElevatedDriveJob(wrong, {}, { helper, start: plainStart }), (e: BlockError) => e.kind === 'Permission' && /confirmation does not match/.test(e.message));
  });

  test('the helper runs only a listed drive', async () => {
    await assert.rejects(runElevatedDriveJob(imageJob('/dev/null', t.path('null.qcow2')), {}, { helper, start: plainStart }), (e: BlockError) => e.kind === 'NotFound' && /'\/dev\/null' is not one of this computer's drives/.test(e.message));
    assert.equal(existsSync(t.path('null.qcow2')), false);
  });

  test('cancel: the helper stops the copy and the job ends cancelled, leaving no image', async () => {
    const abort = new AbortController();
    const out = t.path('cancelled.qcow2');
    const events: JobProgressEvent[] = [];
    const p = runElevatedDriveJob(imageJob(big, out), { signal: abort.signal, onProgress: (e) => {
      events.push(e);
      abort.abort();
    } }, { helper, start: plainStart });
    await assert.rejects(p, (e: BlockError) => e.kind === 'Cancelled');
    assert.ok(events.length >= 1 && events[0]!.done < events[0]!.total, 'cancelled mid-copy');
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(t.dir).filter((n) => n.includes('platter-partial')), []);
  });

  test('a connection with a wrong token is refused; the real helper still runs the job', async () => {
    let refused: Promise<{ closed: boolean; got: string }> | undefined;
    const start: HelperStarter = (h) => {
      const dir = h.args[h.args.indexOf('--channel') + 1]!;
      refused = new Promise((resolve) => {
        const s = connect(join(dir, SOCKET_FILE), () => s.write(`${JSON.stringify({ t: 'hello', v: 1, token: randomBytes(32).toString('hex') })}\n`));
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('close', () => resolve({ closed: true, got }));
        s.on('error', () => {});
      });
      // The real helper comes once the impostor was turned away.
      const later = refused.then(() => plainStart(h));
      return { exited: later.then((x) => x.exited), stop: () => void later.then((x) => x.stop()) };
    };
    const r = await runElevatedDriveJob(imageJob(small, t.path('token.qcow2')), {}, { helper, start });
    assert.deepEqual(await refused, { closed: true, got: '' }, 'the impostor got no job and was disconnected');
    assert.equal(r.verified, true, r.message);
  });

  test('a helper that sends a malformed message is cut off with a clear error', async () => {
    for (const [bad, why] of [
      ['{"t":"progress","done":-1,"total":5}', /sent a malformed message \(done: /],
      ['this is not json', /sent a message that is not JSON/],
      [`{"t":"result","result":{"verified":true},"extra":"${'x'.repeat(70000)}"}`, /sent a message longer than 65536 bytes/],
    ] as const) {
      const start: HelperStarter = (h) => {
        const dir = h.args[h.args.indexOf('--channel') + 1]!;
        const token = readFileSync(join(dir, TOKEN_FILE), 'utf8');
        const exited = new Promise<{ code: number; signal: null; stderr: string }>((resolve) => {
          const s = connect(join(dir, SOCKET_FILE), () => s.write(`${JSON.stringify({ t: 'hello', v: 1, token })}\n`));
          s.once('data', () => s.write(`${bad}\n`)); // the job arrived: answer nonsense
          s.on('close', () => resolve({ code: 0, signal: null, stderr: '' }));
          s.on('error', () => {});
        });
        return { exited, stop() {} };
      };
      await assert.rejects(runElevatedDriveJob(imageJob(small, t.path('bad.qcow2')), {}, { helper, start }), (e: BlockError) => e.kind === 'Io' && why.test(e.message));
    }
  });

  test('the helper refuses a malformed message from the app, and a channel directory open to others', async () => {
    const dir = join(t.dir, 'fake-app');
    mkdirSync(dir, { mode: 0o700 });
    const token = randomBytes(32).toString('hex');
    writeFileSync(join(dir, TOKEN_FILE), token, { mode: 0o600 });
    const said: string[] = [];
    const server = createServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          said.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (said.length === 1) s.write('{"t":"start","job":{"kind":"format-everything","input":{}}}\n');
        }
      });
    });
    await new Promise<void>((r) => server.listen(join(dir, SOCKET_FILE), r));
    try {
      const exit = await spawnCommand({ file: helper.exe, args: [...helper.args, '--channel', dir] }).exited;
      assert.equal(exit.code, 2);
      assert.deepEqual(JSON.parse(said[0]!), { t: 'hello', v: 1, token });
      const answer = JSON.parse(said[1]!);
      assert.equal(answer.t, 'error');
      assert.match(answer.error.message, /^Elevated helper: refused a malformed message \(job\.kind: .*\) from the app$/);
      chmodSync(dir, 0o755);
      const open = await spawnCommand({ file: helper.exe, args: [...helper.args, '--channel', dir] }).exited;
      assert.equal(open.code, 2);
      assert.match(open.stderr, /is open to other users \(mode 755\): it must be 0700/);
      assert.equal(said.length, 2, 'it did not connect');
    } finally {
      server.close();
    }
  });

  test('a helper that dies mid-job gives a clear error', async () => {
    let started: ReturnType<HelperStarter> | undefined;
    const start: HelperStarter = (h) => (started = plainStart(h));
    const p = runElevatedDriveJob(imageJob(big, t.path('killed.qcow2')), { onProgress: () => started?.stop() }, { helper, start });
    await assert.rejects(p, (e: BlockError) => e.kind === 'Io' && /^The elevated helper stopped before finishing the job \(killed by SIGTERM\): the drive or image may be partly written$/.test(e.message));
  });

  test('a helper that never connects: the elevation tool\'s refusal is reported', async () => {
    const start: HelperStarter = () => spawnCommand({ file: process.execPath, args: ['-e', 'process.stderr.write("Error executing command as another user: Not authorized\\n"); process.exit(127)'] });
    await assert.rejects(runElevatedDriveJob(imageJob(small, t.path('never.qcow2')), {}, { helper, start, platform: 'linux' }), (e: BlockError) => e.kind === 'Permission' && /^Administrator rights were not granted: the drive job did not run$/.test(e.message));
  });
});

describe('what the elevated helper lets a user ask for', { skip: process.getuid?.() === 0 ? false : 'needs root to chown test files' }, () => {
  const t = tempDir('platter-elevated-owner-');
  after(() => t.cleanup());
  const user = { uid: 65534, gid: 65534 };
  const other = { uid: 65533, gid: 65533 };

  test('a new image only in a folder the user owns, never over another user\'s file', async () => {
    const mine = t.path('mine');
    mkdirSync(mine);
    chownSync(mine, user.uid, user.gid);
    await checkImageTarget(join(mine, 'new.qcow2'), user);
    await assert.rejects(checkImageTarget(join(mine, 'new.qcow2'), other), /is not your folder/);
    writeFileSync(join(mine, 'theirs.qcow2'), '');
    await assert.rejects(checkImageTarget(join(mine, 'theirs.qcow2'), user), /exists and is not your file/);
    await assert.rejects(checkImageTarget('relative.qcow2', user), /absolute path/);
    await assert.rejects(checkImageTarget('/etc/passwd', user), /is not your folder/);
  });

  test('an image to write must be a plain file the user may read', async () => {
    const f = t.path('secret.img');
    writeFileSync(f, 'x', { mode: 0o600 });
    await assert.rejects(checkImageSources([f], user), /you may not read/);
    chownSync(f, user.uid, user.gid);
    await checkImageSources([f], user);
    chmodSync(f, 0o644);
    await checkImageSources([f], other);
    await assert.rejects(checkImageSources(['/dev/null'], user), /is not a regular file/);
    await assert.rejects(checkImageSources(['nbd://localhost/x'], user), /is not a plain file path/);
  });
});


test('the helper reads a Windows channel: the token and the pipe the app named (nothing else)', async () => {
  const t = tempDir('platter-elevated-win-');
  try {
    const token = randomBytes(32).toString('hex');
    writeFileSync(join(t.dir, TOKEN_FILE), token);
    const pipe = `\\\\.\\pipe\\platter-elevated-${randomBytes(16).toString('hex')}`;
    writeFileSync(join(t.dir, PIPE_FILE), pipe);
    assert.deepEqual(await openChannel(t.dir, 'win32'), { token, address: pipe });
    writeFileSync(join(t.dir, PIPE_FILE), '\\\\.\\pipe\\someone-else');
    await assert.rejects(openChannel(t.dir, 'win32'), /names no Platter pipe/);
    writeFileSync(join(t.dir, TOKEN_FILE), 'short');
    await assert.rejects(openChannel(t.dir, 'win32'), /does not hold a token/);
    await assert.rejects(openChannel('relative/dir', 'win32'), /must be an absolute path/);
  } finally {
    t.cleanup();
  }
});
