// Node's heavier built-in modules, loaded on first use. Importing node:crypto loads some twenty of
// Node's internal modules (about 5 ms of every CLI start), node:tls and node:net as many again,
// and most commands need none of them: only encryption, the random identifiers some formats write
// when they create an image, and the network protocols. node:child_process (about 3 ms, with
// node:net) serves only the drive listings and the macOS CD-ROM alias; node:zlib (about 3 ms)
// only compressed data.
import { createRequire } from 'node:module';

type NodeCrypto = typeof import('node:crypto');
type NodeNet = typeof import('node:net');
type NodeTls = typeof import('node:tls');
type NodeChildProcess = typeof import('node:child_process');
type NodeZlib = typeof import('node:zlib');

/** process.getBuiltinModule (Node >= 20.16), else a require made on first use (a bundle that
 *  gives CommonJS no import.meta.url still loads this module). */
function builtin(id: string): unknown {
  const get = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  return get ? get(id) : createRequire(import.meta.url)(id);
}
let crypto: NodeCrypto | undefined;
let net: NodeNet | undefined;
let tls: NodeTls | undefined;
let childProcess: NodeChildProcess | undefined;
let zlib: NodeZlib | undefined;

export function nodeCrypto(): NodeCrypto {
  return (crypto ??= builtin('node:crypto') as NodeCrypto);
}

export function nodeNet(): NodeNet {
  return (net ??= builtin('node:net') as NodeNet);
}

export function nodeTls(): NodeTls {
  return (tls ??= builtin('node:tls') as NodeTls);
}

export function nodeChildProcess(): NodeChildProcess {
  return (childProcess ??= builtin('node:child_process') as NodeChildProcess);
}

export function nodeZlib(): NodeZlib {
  return (zlib ??= builtin('node:zlib') as NodeZlib);
}
