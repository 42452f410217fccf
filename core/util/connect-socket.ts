// A TCP or unix-socket connection that is either made within a time limit or refused with one
// error: the socket's own (errno code kept) or a timeout. Callers word the failure their way.
import type { NetConnectOpts, Socket } from 'node:net';
import { nodeNet } from '../host/lazy-node-modules.ts';

/** The connection took longer than its limit (the socket is destroyed). */
export class ConnectTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`timed out after ${timeoutMs} ms`);
  }
}

/** Connect with `opts`; rejects with the socket's ErrnoException or a ConnectTimeout. */
export function connectSocket(opts: NetConnectOpts, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = nodeNet().createConnection(opts);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new ConnectTimeout(timeoutMs));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    });
  });
}
