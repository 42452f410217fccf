#!/usr/bin/env node
// The import-boundary rule (docs/architecture.md): core/ never imports electron/, renderer/ or UI
// packages; renderer/ imports from core/ only types (core/api types, the router's type) and, at run
// time, only core/shared/ (sizes and option rules: dependency-free, so nothing else of core is
// bundled into the renderer); core/shared/ imports nothing outside itself (no node:, no packages);
// inside core/, runtime imports follow the layer order shared < host < util < codecs, crypto, workers <
// block < formats, protocols < drivers < jobs, nbd-server < api < cli.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const importRe = /^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.(ts|tsx|mts)$/.test(name)) out.push(p);
  }
  return out;
}

const problems = [];
function check(layer, rule) {
  let files = [];
  try { files = walk(join(root, layer)); } catch { return; }
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(importRe)) {
      const typeOnly = Boolean(m[2]);
      const spec = m[3] ?? m[4] ?? m[5];
      const why = rule(spec, typeOnly, f);
      if (why) problems.push(`${relative(root, f)}: imports '${spec}': ${why}`);
    }
  }
}

check('core', (spec) => {
  if (/^(electron|react|react-dom|zustand|@tanstack\/|@xyflow\/)/.test(spec)) return 'core/ must not depend on UI or Electron packages';
  if (/(^|\/)(electron|renderer)\//.test(spec) && spec.startsWith('.')) return 'core/ must not import electron/ or renderer/';
  return null;
});
check('renderer', (spec, typeOnly) => {
  if (spec === 'electron' || /(^|\/)electron\//.test(spec)) return 'renderer/ must not import electron';
  if (/(^|\/)core\//.test(spec) && !typeOnly && !/(^|\/)core\/shared\/[^/]+\.ts$/.test(spec)) return 'renderer/ may import only types from core/ (and core/shared/)';
  return null;
});
check('core/shared', (spec, typeOnly) => {
  if (typeOnly) return null;
  if (!/^\.\/[^/]+\.ts$/.test(spec)) return 'core/shared/ is dependency-free: it may import only its own files';
  return null;
});
// The inner order of core/ (docs/architecture.md "Layers"): a module's runtime imports reach only
// its own layer or lower ones, so no import circle runs between layers. Type-only imports are
// free (they vanish at run time). electron/ sits beside cli/, on top of core/api.
const CORE_RANK = { shared: 0, 'errors.ts': 0, host: 1, util: 2, codecs: 3, crypto: 3, workers: 3, block: 4, formats: 5, protocols: 5, drivers: 6, jobs: 7, 'nbd-server': 7, api: 8, cli: 9 };
const coreLayer = (abs) => {
  const rel = relative(join(root, 'core'), abs);
  return rel.startsWith('..') ? undefined : rel.split('/')[0];
};
{
  for (const f of walk(join(root, 'core'))) {
    const from = coreLayer(f);
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(importRe)) {
      const spec = m[3] ?? m[4] ?? m[5];
      if (m[2] || !spec.startsWith('.')) continue;
      const to = coreLayer(join(dirname(f), spec));
      if (to === undefined || from === undefined) continue;
      if (!(from in CORE_RANK) || !(to in CORE_RANK)) {
        problems.push(`${relative(root, f)}: imports '${spec}': core/${from in CORE_RANK ? to : from} has no place in the layer order (scripts/check-layers.mjs CORE_RANK)`);
      } else if (CORE_RANK[to] > CORE_RANK[from]) {
        problems.push(`${relative(root, f)}: imports '${spec}': core/${from} must not import core/${to} (a higher layer)`);
      }
    }
  }
}

// A node's driver instance (BlockNode.impl) belongs to the block layer and the drivers: jobs, the
// CLI, the service and the apps use BlockNode's own methods, which check support and read-only once.
for (const layer of ['core/jobs', 'core/cli', 'core/api', 'electron', 'renderer']) {
  let files = [];
  try { files = walk(join(root, layer)); } catch { continue; }
  for (const f of files) {
    const lines = readFileSync(f, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (/\.impl\b/.test(line.replace(/\/\/.*$/, ''))) problems.push(`${relative(root, f)}:${i + 1}: reads a node's driver instance (.impl): use BlockNode's methods`);
    });
  }
}

if (problems.length) {
  console.error('layer rule broken:\n' + problems.join('\n'));
  process.exit(1);
}
console.log('layer rule: ok');
