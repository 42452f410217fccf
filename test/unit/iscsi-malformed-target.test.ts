// The iSCSI initiator against targets that misbehave (a TCP server on 127.0.0.1 playing a broken
// target, which no real target can be made to be): silence, garbage, an oversized segment, a
// hang-up. Each open ends in one clear line within the timeout, never a hang or a crash.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { main } from '../../core/cli/main.ts';

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
