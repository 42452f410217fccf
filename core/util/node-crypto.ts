// node:crypto, loaded on first use. Importing it loads some twenty of Node's internal modules
// (about 5 ms of every CLI start), and most commands never need it: only encryption, and the
// random identifiers some formats write when they create an image.
import { createRequire } from 'node:module';

type NodeCrypto = typeof import('node:crypto');

const requireHere = createRequire(import.meta.url);
let loaded: NodeCrypto | undefined;

export function nodeCrypto(): NodeCrypto {
  return (loaded ??= requireHere('node:crypto') as NodeCrypto);
}
