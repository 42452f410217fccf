// TLS for NBD (QEMU's tls-creds-x509 objects: --object tls-creds-x509,id=ID,dir=DIR,
// endpoint=client|server[,verify-peer=on|off]) over node:tls. The directory holds QEMU's file
// names: ca-cert.pem, and server-cert.pem/server-key.pem or client-cert.pem/client-key.pem.
// Objects are registered once per process (the CLI's --object) and looked up by id.

import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureContext, TLSSocket } from 'node:tls';
import { nodeTls } from '../../host/lazy-node-modules.ts';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { BlockError, invalidArgument } from '../../errors.ts';
import { OBJECT_TYPES } from '../../block/secrets.ts';

export interface TlsCreds {
  id: string;
  dir: string;
  endpoint: 'client' | 'server';
  verifyPeer: boolean;
}

const registry = new Map<string, TlsCreds>();

/** Register `--object tls-creds-x509,...` properties. */
export function registerTlsCreds(props: Map<string, string>): void {
  const id = props.get('id');
  if (!id) throw invalidArgument("Parameter 'id' is missing");
  const dir = props.get('dir');
  if (!dir) throw invalidArgument("Parameter 'dir' is missing");
  const endpoint = props.get('endpoint') ?? 'client';
  if (endpoint !== 'client' && endpoint !== 'server') throw invalidArgument(`Parameter 'endpoint' does not accept value '${endpoint}'`);
  const vp = props.get('verify-peer') ?? 'on';
  for (const k of props.keys()) if (!['id', 'dir', 'endpoint', 'verify-peer', 'priority', 'sanity-check', 'loaded'].includes(k)) throw invalidArgument(`Property 'tls-creds-x509.${k}' not found`);
  // The files are checked when the object is made, as QEMU loads them then (ca-cert always; the
  // server's certificate and key for a server endpoint).
  readPem(dir, 'ca-cert.pem', true);
  if (endpoint === 'server') {
    readPem(dir, 'server-cert.pem', true);
    readPem(dir, 'server-key.pem', true);
  }
  registry.set(id, { id, dir, endpoint, verifyPeer: vp === 'on' || vp === 'yes' || vp === 'true' });
}

OBJECT_TYPES.set('tls-creds-x509', registerTlsCreds);

export function lookupTlsCreds(id: string, endpoint: 'client' | 'server'): TlsCreds {
  const c = registry.get(id);
  if (!c) throw invalidArgument(`No TLS credentials with id '${id}'`);
  if (c.endpoint !== endpoint) {
    throw invalidArgument(`Expected TLS credentials for a ${endpoint} endpoint`);
  }
  return c;
}

function readPem(dir: string, name: string, required: boolean): Buffer | undefined {
  const p = join(dir, name);
  if (!existsSync(p)) {
    if (required) throw new BlockError('NotFound', `Unable to access credentials ${p}: No such file or directory`);
    return undefined;
  }
  return readFileSync(p);
}

/** The secure context of server credentials (for the server). */
export function serverSecureContext(id: string): { context: SecureContext; verifyPeer: boolean; ca: Buffer } {
  const c = lookupTlsCreds(id, 'server');
  const ca = readPem(c.dir, 'ca-cert.pem', true)!;
  const cert = readPem(c.dir, 'server-cert.pem', true)!;
  const key = readPem(c.dir, 'server-key.pem', true)!;
  return { context: nodeTls().createSecureContext({ ca, cert, key }), verifyPeer: c.verifyPeer, ca };
}

/** An upgrade of a connected socket to TLS as an NBD client (after STARTTLS). */
export function nbdTlsUpgrade(id: string, endpoint: 'client', hostname: string | undefined): (s: Duplex) => Promise<Duplex> {
  const c = lookupTlsCreds(id, endpoint);
  const ca = readPem(c.dir, 'ca-cert.pem', c.verifyPeer);
  const cert = readPem(c.dir, 'client-cert.pem', false);
  const key = readPem(c.dir, 'client-key.pem', false);
  return (sock) =>
    new Promise<Duplex>((resolve, reject) => {
      const t: TLSSocket = nodeTls().connect({
        socket: sock as Socket,
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        rejectUnauthorized: c.verifyPeer,
        ...(hostname !== undefined && !/^[\d.:]+$/.test(hostname) ? { servername: hostname } : {}),
        checkServerIdentity: (host, peer) => {
          if (!c.verifyPeer || hostname === undefined) return undefined;
          // QEMU checks the name QEMU was given (tls-hostname, or the inet host).
          const alt = String(peer.subjectaltname ?? '');
          const names = alt.split(', ').map((s) => s.replace(/^(DNS|IP Address):/, ''));
          if (names.includes(hostname) || peer.subject?.CN === hostname) return undefined;
          void host;
          return new Error(`Certificate does not match the hostname ${hostname}`);
        },
      });
      const onError = (e: Error) => reject(new BlockError('Io', `TLS handshake failed: ${e.message}`));
      t.once('error', onError);
      t.once('secureConnect', () => {
        t.off('error', onError);
        resolve(t);
      });
    });
}
