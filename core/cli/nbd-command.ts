// `platter nbd`: qemu-nbd's command line for serving one image (qemu-nbd.c 7.2: its options,
// defaults and messages, "Failed to blk_new_open 'X': ..."). The image is opened as qemu-nbd opens
// it (read-write unless -r, so the same locks keep `qemu-img resize` and other writers out) and
// served until the last client leaves (or, with -t, until SIGTERM/SIGINT, which flush and close).

import { spawn } from 'node:child_process';
import { writeFileSync, unlinkSync, existsSync } from 'node:fs';
import { invalidArgument, BlockError } from '../errors.ts';
import { parseArgs, last, has, all } from './args.ts';
import { NBD_SYNTAX as SYNTAX, type CommandContext } from './commands.ts';
import { openImage } from '../drivers/open.ts';
import { SecretStore } from '../block/secrets.ts';
import { splitKeyValueList } from '../block/options-tree.ts';
import { parseCacheMode, type CacheMode } from '../block/cache-mode.ts';
import { parseAioMode } from '../block/aio-mode.ts';
import { registerTlsCreds } from '../protocols/nbd/tls.ts';
import { NbdServer } from '../nbd-server/server.ts';
import { NBD_DEFAULT_PORT } from '../protocols/nbd/constants.ts';
import type { BlockNode } from '../block/node.ts';
import type { ParsedArgs } from './args.ts';
import { listNbdExports, formatExportList } from '../protocols/nbd/client.ts';
import { nbdTlsUpgrade } from '../protocols/nbd/tls.ts';

/** -L: list the exports of a server (qemu-nbd's text). */
async function listMode(p: ParsedArgs, ctx: CommandContext): Promise<number> {
  if (p.positional.length > 0) throw invalidArgument("Invalid number of arguments\nTry `qemu-nbd --help' for more information.");
  for (const o of all(p, 'object')) new SecretStore().addFromObjectArgument(o);
  const sock = last(p, 'k');
  const portText = last(p, 'p') ?? String(NBD_DEFAULT_PORT);
  const server = sock !== undefined ? ({ type: 'unix', path: sock } as const) : ({ type: 'inet', host: last(p, 'b') ?? 'localhost', port: portText } as const);
  const tlsCreds = last(p, 'tls-creds');
  const hostname = last(p, 'tls-hostname') ?? (server.type === 'inet' ? server.host : undefined);
  const tls = tlsCreds !== undefined ? nbdTlsUpgrade(tlsCreds, 'client', hostname) : undefined;
  const list = await listNbdExports({ server, timeoutMs: 60_000, label: sock ?? `${server.type === 'inet' ? server.host : ''}:${portText}`, ...(tls ? { tls } : {}) });
  ctx.io.stdout(formatExportList(list));
  return 0;
}

const OPTS = {
  short: 'hVb:o:p:rsnc:dvk:e:f:tl:x:T:D:AB:L',
  long: {
    help: { arg: false, short: 'h' },
    version: { arg: false, short: 'V' },
    bind: { arg: true, short: 'b' },
    port: { arg: true, short: 'p' },
    socket: { arg: true, short: 'k' },
    offset: { arg: true, short: 'o' },
    'read-only': { arg: false, short: 'r' },
    'allocation-depth': { arg: false, short: 'A' },
    bitmap: { arg: true, short: 'B' },
    connect: { arg: true, short: 'c' },
    disconnect: { arg: false, short: 'd' },
    snapshot: { arg: false, short: 's' },
    'load-snapshot': { arg: true, short: 'l' },
    nocache: { arg: false, short: 'n' },
    cache: { arg: true },
    aio: { arg: true },
    discard: { arg: true },
    'detect-zeroes': { arg: true },
    shared: { arg: true, short: 'e' },
    format: { arg: true, short: 'f' },
    persistent: { arg: false, short: 't' },
    verbose: { arg: false, short: 'v' },
    object: { arg: true },
    'export-name': { arg: true, short: 'x' },
    description: { arg: true, short: 'D' },
    'tls-creds': { arg: true },
    'tls-authz': { arg: true },
    'tls-hostname': { arg: true },
    'image-opts': { arg: false },
    trace: { arg: true, short: 'T' },
    fork: { arg: false },
    'pid-file': { arg: true },
    list: { arg: false, short: 'L' },
  },
};

/** qemu-nbd's cache modes -> the file options Platter takes. */
function cacheOptions(text: string): { cache: CacheMode } {
  const mode = parseCacheMode(text);
  if (mode === undefined) throw invalidArgument(`Invalid cache mode '${text}'`);
  return { cache: mode };
}

export const nbdCommand = {
  syntax: SYNTAX,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const p = parseArgs(argv, OPTS);
    if (has(p, 'h')) {
      ctx.io.stdout(`usage: platter ${SYNTAX}\n(the options of qemu-nbd)\n`);
      return 0;
    }
    if (has(p, 'L')) return listMode(p, ctx);
    for (const unsupported of ['c', 'd', 'o', 's', 'l', 'T', 'tls-authz']) {
      if (has(p, unsupported)) throw invalidArgument(`qemu-nbd option '${unsupported.length === 1 ? '-' + unsupported : '--' + unsupported}' is not supported by platter nbd`);
    }
    if (p.positional.length !== 1) throw invalidArgument("Invalid number of arguments\nTry `qemu-nbd --help' for more information.");
    const filename = p.positional[0]!;
    const readOnly = has(p, 'r');
    const sockPath = last(p, 'k');
    const portText = last(p, 'p');
    const bind = last(p, 'b');
    if (sockPath !== undefined && (portText !== undefined || bind !== undefined)) {
      // qemu-nbd 7.2 lets -k win silently; refusing the mix is clearer and changes no valid use.
      throw invalidArgument('-k cannot be used with -p or -b');
    }
    let port = NBD_DEFAULT_PORT;
    if (portText !== undefined) {
      if (!/^\d+$/.test(portText) || Number(portText) > 65535) throw invalidArgument(`Invalid port number \`${portText}'`);
      port = Number(portText);
    }
    let shared = 1;
    const sharedText = last(p, 'e');
    if (sharedText !== undefined) {
      if (!/^\d+$/.test(sharedText)) throw invalidArgument(`Invalid shared device number '${sharedText}'`);
      shared = Number(sharedText);
    }
    const exportName = last(p, 'x') ?? '';
    const description = last(p, 'D');
    const format = last(p, 'f');
    const imageOpts = has(p, 'image-opts');
    if (imageOpts && format !== undefined) throw invalidArgument('--image-opts and --format are mutually exclusive');
    const discard = last(p, 'discard') ?? 'ignore';
    if (discard !== 'ignore' && discard !== 'off' && discard !== 'unmap' && discard !== 'on') throw invalidArgument(`Invalid discard mode \`${discard}'`);
    const detect = last(p, 'detect-zeroes') ?? 'off';
    if (!['off', 'on', 'unmap'].includes(detect)) throw invalidArgument(`Invalid detect-zeroes mode \`${detect}'`);
    if (detect === 'unmap' && !(discard === 'unmap' || discard === 'on')) throw invalidArgument("setting detect-zeroes to unmap is not allowed without setting discard operation to unmap");
    const aioText = last(p, 'aio');
    const aio = aioText === undefined ? undefined : parseAioMode(aioText);
    if (aioText !== undefined && aio === undefined) throw invalidArgument(`Invalid aio mode '${aioText}'`);
    const cache = has(p, 'n') ? 'none' : last(p, 'cache');
    const tlsCreds = last(p, 'tls-creds');
    const pidFile = last(p, 'pid-file');

    const secrets = new SecretStore();
    for (const o of all(p, 'object')) {
      const first = splitKeyValueList(o)[0];
      const type = first?.[1] === undefined ? first?.[0] : splitKeyValueList(o).find(([k]) => k === 'qom-type')?.[1];
      if (type === 'tls-creds-x509') {
        const props = new Map<string, string>();
        for (const [k, v] of splitKeyValueList(o)) if (v !== undefined && k !== 'qom-type') props.set(k, v);
        registerTlsCreds(props);
      } else secrets.addFromObjectArgument(o);
    }
    if (tlsCreds !== undefined) {
      // Checked now, as qemu-nbd does before it opens the image.
      const { lookupTlsCreds } = await import('../protocols/nbd/tls.ts');
      lookupTlsCreds(tlsCreds, 'server');
    }

    if (has(p, 'fork')) return forkServer(argv, ctx, sockPath !== undefined ? { path: sockPath } : { host: bind ?? '0.0.0.0', port });

    let node: BlockNode;
    try {
      node = await openImage(filename, {
        ...(format !== undefined ? { format } : {}),
        imageOpts,
        readOnly,
        secrets,
        warn: ctx.warn,
        qemuImgPrefix: true,
        ...(cache !== undefined || aio !== undefined ? { fileOptions: { ...(cache !== undefined ? cacheOptions(cache) : {}), ...(aio ? { aio } : {}) } } : {}),
      });
    } catch (e) {
      if (e instanceof BlockError) throw new BlockError(e.kind, `Failed to blk_new_open '${filename}': ${e.message}`, e.context, { cause: e, ...(e.hint ? { hint: e.hint } : {}) });
      throw e;
    }
    let server: NbdServer | undefined;
    try {
      let bitmap: { name: string; bits: import('../block/dirty-bitmap.ts').DirtyBitmap } | undefined;
      const bname = last(p, 'B');
      if (bname !== undefined) {
        const cap = node.bitmaps;
        const found = cap ? await cap.lookup(bname).catch(() => undefined) : undefined;
        if (!found) throw invalidArgument(`Bitmap '${bname}' is not found`);
        if (found.inconsistent) throw invalidArgument(`Bitmap '${bname}' is inconsistent and cannot be used`);
        bitmap = { name: bname, bits: found.bits };
      }
      server = new NbdServer({
        export: {
          node,
          name: exportName,
          ...(description !== undefined ? { description } : {}),
          readOnly,
          allocationDepth: has(p, 'A'),
          ...(bitmap ? { bitmap } : {}),
          discard: discard === 'unmap' || discard === 'on' ? 'unmap' : 'ignore',
          detectZeroes: detect as 'off' | 'on' | 'unmap',
        },
        shared,
        persistent: has(p, 't'),
        ...(tlsCreds !== undefined ? { tlsCreds } : {}),
      });
      if (sockPath !== undefined) {
        if (existsSync(sockPath)) unlinkSync(sockPath);
        await server.listen({ path: sockPath });
      } else await server.listen({ host: bind ?? '0.0.0.0', port });
      if (pidFile !== undefined) writeFileSync(pidFile, `${process.pid}\n`);
      // Ready: a parent that forked us waits for this line.
      if (process.env.PLATTER_NBD_READY_FD === '1' && process.send) process.send('ready');
      const stop = new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGHUP', () => resolve('SIGHUP'));
      });
      await Promise.race([stop, server.done]);
      await server.close();
      return 0;
    } finally {
      await node.close();
      if (sockPath !== undefined) {
        try {
          unlinkSync(sockPath);
        } catch {
          // gone already
        }
      }
      if (pidFile !== undefined) {
        try {
          unlinkSync(pidFile);
        } catch {
          // gone already
        }
      }
    }
  },
};

/** --fork: start the server as a detached child and return once it serves (qemu-nbd's parent
 *  waits for its child to be ready, then exits 0; a failed child's message is the parent's). */
async function forkServer(argv: string[], ctx: CommandContext, _where: unknown): Promise<number> {
  const args = argv.filter((a) => a !== '--fork');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'nbd', ...args], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, PLATTER_NBD_READY_FD: '1' },
  });
  let err = '';
  child.stderr!.on('data', (b) => (err += b));
  const ok = await new Promise<boolean>((resolve) => {
    child.once('message', (m) => resolve(m === 'ready'));
    child.once('exit', () => resolve(false));
  });
  if (!ok) {
    ctx.io.stderr(err);
    return 1;
  }
  child.stderr!.destroy();
  child.disconnect();
  child.unref();
  return 0;
}
