#!/usr/bin/env node
// The import-boundary rule (docs/architecture.md): core/ never imports electron/, renderer/ or UI
// packages; renderer/ imports from core/ only types (core/api types, the router's type) and, at run
// time, only core/shared/ (sizes and option rules: dependency-free, so nothing else of core is
// bundled into the renderer); core/shared/ imports nothing outside itself (no node:, no packages).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

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
if (problems.length) {
  console.error('layer rule broken:\n' + problems.join('\n'));
  process.exit(1);
}
console.log('layer rule: ok');
