// The iSCSI initiator against targets that misbehave (a TCP server on 127.0.0.1 playing a broken
// target, which no real target can be made to be): silence, garbage, an oversized segment, a
// hang-up; after login, Data-In out of order or past the buffer, an R2T for a read, silence.
// Each ends in one clear error within the timeout, never a hang, a crash or unwritten memory.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { main } from '../../core/cli/main.ts';
import { IscsiSession } from '../../core/protocols/iscsi/session.ts';

async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { status, stdout, stderr };
}

type Behaviour = (sock: Socket) => void;

describe('a misbehaving iSCSI target', () => {
  let server: Server;
  let port = 0;
  let behaviour: Behaviour = () => {};
  const sockets = new Set<Socket>();
  before(async () => {
    server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => {});
      behaviour(sock);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  const open = async (timeout?: number) => {
    const opts = `driver=iscsi,transport=tcp,portal=127.0.0.1:${port},target=iqn.x:y,lun=1${timeout ? `,timeout=${timeout}` : ''}`;
    const started = Date.now();
    const r = await cli(['info', '--image-opts', opts]);
    return { ...r, ms: Date.now() - started };
  };

  test('a target that accepts and never answers: the timeout option ends the login', async () => {
    behaviour = () => {};
    const r = await open(1);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^platter: Could not open '[^']*': iSCSI: Failed to connect to LUN : Failed to log in to target: no answer from 127\.0\.0\.1:\d+\n$/);
    assert.ok(r.ms < 5000, `${r.ms} ms`);
  });

  test('a target that hangs up at once', async () => {
    behaviour = (s) => s.destroy();
    const r = await open();
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Failed to connect to LUN : the target at 127\.0\.0\.1:\d+ closed the connection\n$/);
    assert.equal(r.stderr.split('\n').length, 2);
  });

  test('a target that answers with a 16 MiB data segment or garbage: refused, nothing allocated', async () => {
    behaviour = (s) => {
      const bhs = Buffer.alloc(48);
      bhs[0] = 0x23; // login response
      bhs.writeUIntBE((1 << 24) - 1, 5, 3);
      s.write(bhs);
    };
    // No timeout given: the refusal must come from the size check, not from waiting.
    let r = await open();
    assert.equal(r.status, 1);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.match(r.stderr, /Failed to connect to LUN : the target sent a 16777215-byte data segment, more than negotiated\n$/);
    assert.ok(r.ms < 5000, `${r.ms} ms`);
    behaviour = (s) => s.write(Buffer.alloc(96, 0xff));
    r = await open();
    assert.equal(r.status, 1);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.match(r.stderr, /Failed to connect to LUN : /);
    assert.ok(r.ms < 5000, `${r.ms} ms`);
  });

  test('a login response with a malformed text key or an unknown status', async () => {
    behaviour = (s) =>
      s.once('data', (req: Buffer) => {
        const bhs = Buffer.alloc(48);
        bhs[0] = 0x23;
        req.copy(bhs, 16, 16, 20); // its ITT
        const data = Buffer.from('no-equals-sign\0');
        bhs.writeUIntBE(data.length, 5, 3);
        s.write(Buffer.concat([bhs, data, Buffer.alloc((4 - (data.length % 4)) % 4)]));
      });
    let r = await open(2);
    assert.match(r.stderr, /Failed to connect to LUN : the target sent a malformed text key\n$/);
    behaviour = (s) =>
      s.once('data', (req: Buffer) => {
        const bhs = Buffer.alloc(48);
        bhs[0] = 0x23;
        req.copy(bhs, 16, 16, 20);
        bhs[36] = 0x02;
        bhs[37] = 0x77;
        s.write(bhs);
      });
    r = await open(2);
    assert.match(r.stderr, /Failed to connect to LUN : Failed to log in to target\. Status: Unknown\(631\)\n$/);
  });
});

/** A scripted target: completes any login, then answers each SCSI command with `answer`. */
function scriptedTarget(answer: (cmd: Buffer, send: (bhs: Buffer, data?: Buffer) => void) => void): Behaviour {
  return (sock) => {
    let buf = Buffer.alloc(0);
    const send = (bhs: Buffer, data: Buffer = Buffer.alloc(0)) => {
      bhs.writeUIntBE(data.length, 5, 3);
      sock.write(Buffer.concat([bhs, data, Buffer.alloc((4 - (data.length % 4)) % 4)]));
    };
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 48) {
        const dsl = buf.readUIntBE(5, 3);
        const total = 48 + dsl + ((4 - (dsl % 4)) % 4);
        if (buf.length < total) return;
        const req = buf.subarray(0, total);
        buf = buf.subarray(total);
        const op = req[0]! & 0x3f;
        if (op === 0x03) {
          const csg = (req[1]! >> 2) & 3;
          const rsp = Buffer.alloc(48);
          rsp[0] = 0x23;
          rsp[1] = 0x80 | (csg << 2) | (csg === 0 ? 1 : 3);
          req.copy(rsp, 8, 8, 20); // ISID, TSIH, ITT
          rsp.writeUInt32BE(req.readUInt32BE(24), 28); // ExpCmdSN
          rsp.writeUInt32BE(req.readUInt32BE(24) + 16, 32); // MaxCmdSN
          send(rsp);
        } else if (op === 0x01) answer(req, send);
      }
    });
  };
}

describe('a target misbehaving after login', () => {
  let server: Server;
  let port = 0;
  let behaviour: Behaviour = () => {};
  const open = new Set<Socket>();
  before(async () => {
    server = createServer((sock) => {
      open.add(sock);
      sock.on('close', () => open.delete(sock));
      sock.on('error', () => {});
      behaviour(sock);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const sock of open) sock.destroy();
    await new Promise((r) => server.close(r));
  });

  const session = () => IscsiSession.open({ host: '127.0.0.1', port, initiatorName: 'iqn.2008-11.org.linux-kvm', targetName: 'iqn.x:y', sessionType: 'Normal', headerDigest: 'none', commandTimeoutMs: 2000, loginTimeoutMs: 2000 });
  const dataIn = (cmd: Buffer, offset: number, data: Buffer, status?: number) => {
    const b = Buffer.alloc(48);
    b[0] = 0x25;
    b[1] = status === undefined ? 0 : 0x81;
    if (status !== undefined) b[3] = status;
    cmd.copy(b, 16, 16, 20);
    b.writeUInt32BE(cmd.readUInt32BE(24) + 1, 28);
    b.writeUInt32BE(cmd.readUInt32BE(24) + 16, 32);
    b.writeUInt32BE(offset, 40);
    return b;
  };

  test('Data-In out of order (a gap that would leave buffer bytes unwritten) is refused', async () => {
    behaviour = scriptedTarget((cmd, send) => send(dataIn(cmd, 512, Buffer.alloc(512, 1), 0), Buffer.alloc(512, 1)));
    const s = await session();
    try {
      await assert.rejects(s.scsi(1, Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0]), { read: 1024 }), /the target sent data out of order/);
      assert.equal(s.alive, false);
    } finally {
      s.close();
    }
  });

  test('Data-In past the buffer and an R2T for a read are refused; a silent target times out', async () => {
    behaviour = scriptedTarget((cmd, send) => send(dataIn(cmd, 0, Buffer.alloc(2048), 0), Buffer.alloc(2048)));
    let s = await session();
    await assert.rejects(s.scsi(1, Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0]), { read: 1024 }), /more data than asked for/);
    s.close();
    behaviour = scriptedTarget((cmd, send) => {
      const r2t = Buffer.alloc(48);
      r2t[0] = 0x31;
      r2t[1] = 0x80;
      cmd.copy(r2t, 16, 16, 20);
      r2t.writeUInt32BE(4096, 44);
      send(r2t);
    });
    s = await session();
    await assert.rejects(s.scsi(1, Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0]), { read: 1024 }), /asked for data of a command that sends none/);
    s.close();
    behaviour = scriptedTarget(() => {});
    s = await session();
    await assert.rejects(s.scsi(1, Buffer.alloc(6), {}), /command timed out after 2 s/);
    s.close();
  });
});
