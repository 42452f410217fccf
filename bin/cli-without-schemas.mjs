// Module hook for the CLI run from source (bin/platter.mjs): the CLI never validates with the API's
// zod schemas (it builds its inputs itself), so core/api/schemas.ts is replaced by a stub with the
// same exports, and zod (a noticeable part of a start) is never loaded. The shipped CLI's bundle
// does the same (scripts/build-cli.mjs).
import { readFile } from 'node:fs/promises';

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('/core/api/schemas.ts')) return nextLoad(url, context);
  const text = await readFile(new URL(url), 'utf8');
  const names = [...text.matchAll(/^export const (\w+)/gm)].map((m) => m[1]);
  const refuse = "const refuse = { safeParse() { throw new Error('the CLI has no input schemas (create the service with validate: false)'); } };\n";
  return { format: 'module', shortCircuit: true, source: refuse + names.map((n) => `export const ${n} = refuse;`).join('\n') };
}
