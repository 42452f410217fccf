// The fuzz case runner, in its own process (so a native crash, an out-of-memory or a hang is
// caught by the parent). Reads one JSON case per line on stdin, answers one JSON line per case:
//   {"id", "outcome": "ok" | "error" | "crash", "kind"?, "message"?}
// A case opens the image read-only, asks info, check (read-only), maps it, reads every data
// extent (bounded), and converts it to raw (writing the data extents into a sparse file).
import { createInterface } from 'node:readline';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { open } from 'node:fs/promises';
import { openImage, resolveBackingFilename } from '../../core/drivers/open.ts';
import { blockStatusAbove } from '../../core/block/node.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { BlockError } from '../../core/errors.ts';
import { FUZZ_PASSPHRASE } from './seeds.ts';
import { canonical, watchOpenedFiles } from '../security/opened-files.ts';

/** Bounds per case: a hostile image may claim petabytes; we read at most this much of it. */
const MAX_READ_BYTES = 64 << 20;
const MAX_EXTENTS = 20_000;
const CHUNK = 1 << 20;

interface Case {
  id: number;
  path: string;
  format: string;
  probe: boolean;
  out: string;
}

async function runCase(c: Case): Promise<void> {
  const secrets = new SecretStore();
  secrets.add('s0', FUZZ_PASSPHRASE);
  const spec = c.format === 'luks' && !c.probe ? `json:${JSON.stringify({ driver: 'luks', 'key-secret': 's0', file: { filename: c.path } })}` : c.path;
  const node = await openImage(spec, { readOnly: true, secrets, warn: () => {}, ...(c.probe || c.format === 'luks' ? {} : { format: c.format }) });
  try {
    await node.info();
    if (node.impl.snapshots) await node.impl.snapshots.list();
    if (node.impl.check) await node.impl.check(undefined);
    // The convert target: a sparse raw file written at the source's data offsets (no fsync: the
    // case is about reading hostile input, not about durability).
    const target = await open(c.out, 'w');
    try {
      let read = 0;
      let extents = 0;
      for (let off = 0; off < node.size && extents < MAX_EXTENTS && read < MAX_READ_BYTES; extents++) {
        const st = await blockStatusAbove(node, off, node.size - off);
        if (st.length <= 0) throw new Error(`block status made no progress at ${off}`);
        if (st.data || !st.zero) {
          const len = Math.min(st.length, MAX_READ_BYTES - read);
          for (let p = 0; p < len; p += CHUNK) {
            const n = Math.min(CHUNK, len - p);
            const buf = await node.read(off + p, n);
            if (buf.length !== n) throw new Error(`read returned ${buf.length} bytes, asked ${n}`);
            await target.write(buf, 0, n, off + p);
          }
          read += len;
        }
        off += st.length;
      }
    } finally {
      await target.close();
    }
  } finally {
    await node.close();
    secrets.clear();
    rmSync(c.out, { force: true });
  }
}

/**
 * The backing chain an image names, as the rules resolve it (docs/security.md: a backing file may
 * be any plain path, relative to the image or absolute, never a protocol or json:). A mutated
 * backing name that became an absolute path is a file the rules allow, not an escape; everything
 * else (extents, data files, protocols) must stay in the case directory.
 */
async function namedBackingChain(c: Case): Promise<Set<string>> {
  const chain = new Set<string>();
  let image = c.path;
  let format: string | undefined = c.probe || c.format === 'luks' ? undefined : c.format;
  for (let depth = 0; depth < 4; depth++) {
    let backing: { filename: string; format?: string } | undefined;
    try {
      const node = await openImage(image, { readOnly: true, noBacking: true, warn: () => {}, ...(format ? { format } : {}) });
      backing = node.impl.backingFile;
      await node.close();
    } catch {
      break;
    }
    if (!backing) break;
    let next: string;
    try {
      next = resolveBackingFilename(image, { driver: 'file', filename: image }, backing.filename);
    } catch {
      break;
    }
    chain.add(canonical(next));
    image = next;
    format = backing.format;
  }
  return chain;
}

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const c = JSON.parse(line) as Case;
  let result: Record<string, unknown>;
  // Files-opened guard: the image, its backing files and extents all live in the case's directory.
  const watch = watchOpenedFiles([dirname(c.path)]);
  try {
    await runCase(c);
    result = { id: c.id, outcome: 'ok' };
  } catch (e) {
    if (e instanceof BlockError) result = { id: c.id, outcome: 'error', kind: e.kind, message: e.message };
    else result = { id: c.id, outcome: 'crash', message: String((e as Error)?.stack ?? e) };
  } finally {
    watch.stop();
  }
  let outside = watch.outside();
  if (outside.length > 0) {
    const allowed = await namedBackingChain(c);
    outside = outside.filter((f) => !allowed.has(canonical(f)));
  }
  if (outside.length > 0) result = { id: c.id, outcome: 'escape', message: `opened files outside the case directory: ${outside.join(', ')}` };
  result['rss'] = process.memoryUsage().rss;
  process.stdout.write(JSON.stringify(result) + '\n');
}
