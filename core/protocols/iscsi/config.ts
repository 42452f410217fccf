// iSCSI settings from a QEMU configuration file (qemu-block-drivers(7) "iSCSI LUNs": the
// `[iscsi]` and `[iscsi "TARGET-IQN"]` sections -readconfig reads): user, password,
// password-secret, initiator-name, header-digest, timeout. As QEMU's iscsi_parse_iscsi_option:
// the section named after the URL's target, else the first section; its values are defaults of
// an iscsi:// URL's options that win over the URL's own user and password (and the
// environment's), and header-digest is taken in any case. Options given with --image-opts are
// not touched (QEMU reads the sections only for URLs).

import { invalidArgument } from '../../errors.ts';
import type { OptionsTree } from '../../block/options-tree.ts';

export interface IscsiConfigSection {
  /** The target this section is for, or undefined for `[iscsi]`. */
  id?: string;
  values: Map<string, string>;
}

const KEYS = new Set(['user', 'password', 'password-secret', 'initiator-name', 'header-digest', 'timeout']);

/** Parse a configuration file's text; sections other than iscsi are skipped. */
export function parseIscsiConfig(text: string): IscsiConfigSection[] {
  const out: IscsiConfigSection[] = [];
  let current: IscsiConfigSection | undefined;
  let inOther = false;
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      const m = /^\[([^\s\]"]{1,63})(?:\s*"([^"]{1,63})")?\]\s*$/.exec(line);
      if (!m) throw invalidArgument('parse error');
      inOther = m[1] !== 'iscsi';
      current = inOther ? undefined : { ...(m[2] !== undefined ? { id: m[2] } : {}), values: new Map() };
      if (current) out.push(current);
      continue;
    }
    // `key = "value"`, as qemu_config_parse's sscanf reads it.
    const kv = /^\s*(\S{1,63})\s*=\s*"([^"]{0,1023})"\s*$/.exec(line);
    if (!kv) throw invalidArgument('parse error');
    if (inOther) continue;
    if (!current) throw invalidArgument('no group defined');
    if (!KEYS.has(kv[1]!)) throw invalidArgument(`Invalid parameter '${kv[1]}'`);
    current.values.set(kv[1]!, kv[2]!);
  }
  return out;
}

let processConfig: IscsiConfigSection[] = [];

/** Use these sections for iscsi:// URLs opened from now on in this process (the GUI's iSCSI
 *  settings, or a file given to it); an empty list forgets them. */
export function setIscsiConfig(sections: IscsiConfigSection[]): void {
  processConfig = sections;
}

export function currentIscsiConfig(): IscsiConfigSection[] {
  return processConfig;
}

/** Set the chosen section's values as defaults of `tree` (QEMU's qdict_set_default_str). */
export function applyIscsiConfig(tree: OptionsTree, target: string, sections: IscsiConfigSection[]): void {
  const section = sections.find((s) => s.id === target) ?? sections[0];
  if (!section) return;
  for (const [k, v] of section.values) {
    if (tree[k] === undefined) tree[k] = k === 'header-digest' ? v.toLowerCase() : v;
  }
}
