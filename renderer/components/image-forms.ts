// What the Create and Convert dialogs share: which options of a format's schema the generated form
// shows (backing and secret options have their own controls), whether a choice needs a passphrase,
// and how the passphrase travels (a secret object in the call, referenced by id).

import type { FormatDescription, FormatOptionJson } from '../../core/api/types.ts';
import type { FormValues } from './OptionsForm.tsx';
import { useFormats } from '../stores/formats.ts';

/** Options with their own controls elsewhere in the dialogs. */
const OWN_CONTROLS = new Set(['size', 'backing_file', 'backing_fmt', 'backing_file_format']);

/** The options the passphrase dialog owns: the key secret and the LUKS cipher options (the
 *  format's encryption capability, from the service). */
function passphraseOptions(format: FormatDescription | undefined): Set<string> {
  const e = format?.encryption;
  return new Set(e ? [e.keySecret, ...e.cipherOptions.map((o) => o.name)] : []);
}

export function formSchema(format: FormatDescription | undefined): FormatOptionJson[] {
  const own = passphraseOptions(format);
  return (format?.createOptions ?? []).filter((o) => !OWN_CONTROLS.has(o.name) && !own.has(o.name) && o.type !== 'secret-id');
}

/** The cipher options the passphrase dialog shows for this format (luks's, or qcow2's encrypt.*),
 *  with LUKS's defaults where the format's schema has none. */
export function cipherSchema(format: FormatDescription | undefined): FormatOptionJson[] {
  return format?.encryption?.cipherOptions ?? [];
}

/** The option that names the passphrase secret, when this choice encrypts with LUKS. */
export function keySecretOption(format: FormatDescription | undefined, values: FormValues): string | undefined {
  const e = format?.encryption;
  if (!e?.luks) return undefined;
  if (e.luks === true || values[e.luks.option] === e.luks.value) return e.keySecret;
  return undefined;
}

/** The id the passphrase travels under in one call (the call's own secret store). */
export const PASSPHRASE_SECRET_ID = 'passphrase0';

/** The id an encrypted source image's passphrase travels under (beside a LUKS target's own). */
export const SOURCE_SECRET_ID = 'sourcepass0';

/** What the unlock dialog says after a wrong passphrase (the engine's words, QEMU's; the dialog
 *  knows the failure by its code, WrongPassphrase). */
export const INVALID_PASSWORD = 'Invalid password, cannot unlock any keyslot';

/**
 * An encrypted image opened with its key secret: a json: pseudo-filename (as qemu-img accepts)
 * naming the secret by id, so no file name needs escaping, under the option the format's
 * encryption capability names (luks: `key-secret`; qcow2 and qcow: `encrypt.key-secret`). The
 * passphrase itself goes in the call's secrets.
 */
export function unlockedRef(path: string, format: string | undefined, secretId: string, formats: FormatDescription[] = useFormats.getState().formats): { filename: string } {
  const keySecret = formats.find((f) => f.name === format)?.encryption?.keySecret ?? 'encrypt.key-secret';
  const file = { driver: 'file', filename: path };
  const secret = keySecret === 'key-secret' ? { 'key-secret': secretId } : { encrypt: { 'key-secret': secretId } };
  return { filename: `json:${JSON.stringify({ driver: format ?? 'qcow2', file, ...secret })}` };
}
