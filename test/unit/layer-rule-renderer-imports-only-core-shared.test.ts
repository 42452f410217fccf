// The layer rule (scripts/check-layers.mjs) on a small tree of its own: the renderer may import
// types from core/ and, at run time, only core/shared/ (sizes and option rules); core/shared/
// imports nothing outside itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { tempDir } from '../helpers/qemu.ts';

const SCRIPT = resolve(import.meta.dirname, '../../scripts/check-layers.mjs');

function layerRule(files: Record<string, string>): { ok: boolean; out: string } {
  const t = tempDir('platter-layers-');
  try {
    mkdirSync(join(t.dir, 'scripts'));
    copyFileSync(SCRIPT, join(t.dir, 'scripts/check-layers.mjs'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(t.dir, path)), { recursive: true });
      writeFileSync(join(t.dir, path), text);
    }
    const r = spawnSync(process.execPath, [join(t.dir, 'scripts/check-layers.mjs')], { encoding: 'utf8' });
    return { ok: r.status === 0, out: r.stdout + r.stderr };
  } finally {
    t.cleanup();
  }
}

const shared = { 'core/shared/sizes.ts': 'export const a = 1;\n', 'core/shared/options.ts': "import { a } from './sizes.ts';\nexport const b = a;\n" };

test('the renderer may import core/shared at run time and other core modules as types only', () => {
  assert.ok(layerRule({ ...shared, 'renderer/a.ts': "import { a } from '../core/shared/sizes.ts';\nimport type { X } from '../core/api/app-router.ts';\n" }).ok);
  const bad = layerRule({ ...shared, 'renderer/a.ts': "import { serviceRouter } from '../core/api/router.ts';\n" });
  assert.equal(bad.ok, false);
  assert.match(bad.out, /renderer\/a\.ts: imports '\.\.\/core\/api\/router\.ts': renderer\/ may import only types from core\//);
});

test('core/shared imports nothing outside itself', () => {
  for (const spec of ['node:fs', 'zod', '../errors.ts', '../block/options-schema.ts']) {
    const r = layerRule({ ...shared, 'core/shared/extra.ts': `import { x } from '${spec}';\n` });
    assert.equal(r.ok, false, spec);
    assert.match(r.out, /core\/shared\/ is dependency-free/, spec);
  }
});
