// The CLI's name in its messages. As QEMU's tools (error_get_progname), the name this process was
// started as: "qemu-img" where Platter is installed or started under that name (argv[0]),
// "platter" when started through node.

import { basename } from 'node:path';

export function programName(argv0: string = process.argv0): string {
  const base = basename(argv0).replace(/\.exe$/i, '');
  return base === '' || /^node(js)?[0-9.]*$/.test(base) || base === basename(process.execPath) ? 'platter' : base;
}

export const PROGRAM = programName();

/** One "<program>: ..." block: each line of a multi-line message after the first stays as is. */
export function errorText(message: string): string {
  return `${PROGRAM}: ${message}\n`;
}
