// Secrets as QEMU models them (--object secret,id=sec0,data=...|file=...[,format=raw|base64]):
// objects referenced by id. The bytes live only in this store, are never logged or put in error
// messages, and are zeroed by clear().

import { readFileSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { invalidArgument, notFound } from '../errors.ts';
import { splitKeyValueList } from './options-tree.ts';

/** --object types other than secrets, each handled by the module that defines it
 *  (tls-creds-x509: core/protocols/nbd/tls.ts registers itself). */
export const OBJECT_TYPES = new Map<string, (props: Map<string, string>) => void>();

export class SecretStore {
  readonly #secrets = new Map<string, Buffer>();

  /** Add a secret's bytes under `id`; the store keeps its own copy. */
  add(id: string, data: Buffer | string): void {
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(id)) throw invalidArgument(`Parameter 'id' expects an identifier`);
    if (this.#secrets.has(id)) throw invalidArgument(`attempt to add duplicate property '${id}' to object (type 'container')`);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    this.#secrets.set(id, bytes);
  }

  has(id: string): boolean {
    return this.#secrets.has(id);
  }

  /** The secret's bytes (the store's buffer: do not keep or modify it). */
  get(id: string): Buffer {
    const s = this.#secrets.get(id);
    if (!s) throw notFound(`No secret with id '${id}'`);
    return s;
  }

  /** The secret as a passphrase: its bytes, which must be UTF-8 text (QEMU's
   *  qcrypto_secret_lookup_as_utf8, used by every encryption format). */
  passphrase(id: string): Buffer {
    const s = this.get(id);
    if (!isUtf8(s)) throw invalidArgument(`Data from secret ${id} is not valid UTF-8`);
    return s;
  }

  /** Overwrite every secret with zeros and forget them. */
  clear(): void {
    for (const b of this.#secrets.values()) b.fill(0);
    this.#secrets.clear();
  }

  /**
   * Parse one `--object secret,id=...,data=...|file=...[,format=raw|base64]` argument.
   * Other object types are refused by name.
   */
  addFromObjectArgument(arg: string): void {
    const pairs = splitKeyValueList(arg);
    const first = pairs[0];
    let qomType: string | undefined;
    const props = new Map<string, string>();
    for (const [k, v] of pairs) {
      if (v === undefined && first && k === first[0] && qomType === undefined) qomType = k;
      else if (k === 'qom-type') qomType = v;
      else if (v !== undefined) props.set(k, v);
      else throw invalidArgument(`Invalid parameter '${k}'`);
    }
    const handler = qomType !== undefined ? OBJECT_TYPES.get(qomType) : undefined;
    if (handler) {
      handler(props);
      return;
    }
    if (qomType !== 'secret') throw invalidArgument(`Object type '${qomType ?? ''}' is not supported (expecting 'secret')`);
    const id = props.get('id');
    if (!id) throw invalidArgument(`Parameter 'id' is missing`);
    const format = props.get('format') ?? 'raw';
    if (format !== 'raw' && format !== 'base64') throw invalidArgument(`Parameter 'format' does not accept value '${format}' (expecting 'raw' or 'base64')`);
    let data: Buffer;
    if (props.has('data') && props.has('file')) throw invalidArgument(`'data' and 'file' are mutually exclusive`);
    if (props.has('data')) data = Buffer.from(props.get('data')!, 'utf8');
    else if (props.has('file')) {
      try {
        data = readFileSync(props.get('file')!);
      } catch (e) {
        throw notFound(`Unable to read ${props.get('file')}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    } else throw invalidArgument(`Either 'data' or 'file' must be provided`);
    if (format === 'base64') {
      const text = data.toString('utf8').trim();
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw invalidArgument('Invalid base64 data in secret');
      const decoded = Buffer.from(text, 'base64');
      data.fill(0);
      data = decoded;
    }
    this.add(id, data);
    data.fill(0);
  }
}
