// What the Create and Convert dialogs share: which options of a format's schema the generated form
// shows (backing and secret options have their own controls), whether a choice needs a passphrase,
// and how the passphrase travels (a secret object in the call, referenced by id).

import type { FormatDescription, FormatOptionJson } from '../../core/api/types.ts';
import type { FormValues } from './OptionsForm.tsx';
import { isLuksSecretOption } from './PassphraseDialog.tsx';

/** Options with their own controls elsewhere in the dialogs. */
const OWN_CONTROLS = new Set(['size', 'backing_file', 'backing_fmt', 'backing_file_format']);

export function formSchema(format: FormatDescription | undefined): FormatOptionJson[] {
  return (format?.createOptions ?? []).filter((o) => !OWN_CONTROLS.has(o.name) && !isLuksSecretOption(o.name) && o.type !== 'secret-id');
}

/** The cipher options the passphrase dialog shows for this format (luks's, or qcow2's encrypt.*). */
export function cipherSchema(format: FormatDescription | undefined): FormatOptionJson[] {
  return (format?.createOptions ?? []).filter((o) => isLuksSecretOption(o.name) && !/key-secret$/.test(o.name));
}

/** The option that names the passphrase secret, when this choice encrypts with LUKS. */
export function keySecretOption(format: FormatDescription | undefined, values: FormValues): string | undefined {
  if (!format) return undefined;
  if (format.name === 'luks') return 'key-secret';
  if (values['encrypt.format'] === 'luks') return 'encrypt.key-secret';
  return undefined;
}

/** The id the passphrase travels under in one call (the call's own secret store). */
export const PASSPHRASE_SECRET_ID = 'passphrase0';

/** The id an encrypted source image's passphrase travels under (beside a LUKS target's own). */
export const SOURCE_SECRET_ID = 'sourcepass0';

/** The engine's words for a wrong LUKS passphrase (core/crypto/luks-volume.ts INVALID_PASSWORD). */
export const INVALID_PASSWORD = 'Invalid password, cannot unlock any keyslot';

/**
 * An encrypted image opened with its key secret: a json: pseudo-filename (as qemu-img accepts)
 * naming the secret by id, so no file name needs escaping. luks takes `key-secret`; qcow2 (luks or
 * aes payload) and qcow take `encrypt.key-secret`. The passphrase itself goes in the call's secrets.
 */
export function unlockedRef(path: string, format: string | undefined, secretId: string): { filename: string } {
  const file = { driver: 'file', filename: path };
  const tree = format === 'luks' ? { driver: 'luks', file, 'key-secret': secretId } : { driver: format ?? 'qcow2', file, encrypt: { 'key-secret': secretId } };
  return { filename: `json:${JSON.stringify(tree)}` };
}
