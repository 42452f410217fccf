// Seed images for fuzzing, made by the real qemu-img and qemu-io: data patterns, zero writes,
// discards, and per format what the format has (snapshots, compressed clusters, backing files).
// Seeds are made once per machine in a cache folder (they are deterministic enough in content).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runOk } from '../helpers/qemu.ts';
import { buildBochs, bximageConvert, createCompressedFs, patterned } from '../helpers/bochs-cloop.ts';
import { dmgSeedRecipes } from './seeds-dmg.ts';

/** Passphrase for the luks seeds (a test value, not a secret). */
export const FUZZ_PASSPHRASE = 'platter-fuzz';
const SECRET = `secret,id=s0,data=${FUZZ_PASSPHRASE}`;

/** Seeds are 2 MiB: big enough for several tables and clusters, small enough that a case costs
 *  milliseconds. */
const WRITES = ['write -P 0x11 0 64k', 'write -P 0x22 300k 5k', 'write -z 1M 64k', 'write -P 0x33 1023k 3k', 'discard 0 4k'];

interface SeedRecipe {
  name: string;
  make(dir: string): void;
}

function qio(file: string, fmt: string, cmds: string[], extra: string[] = []): void {
  for (const c of cmds) runOk('qemu-io', [...extra, '-f', fmt, '-c', c, file]);
}

function create(dir: string, name: string, fmt: string, size: string, opts: string[] = [], writes = WRITES): string {
  const p = join(dir, name);
  runOk('qemu-img', ['create', '-q', '-f', fmt, ...opts, p, size]);
  if (writes.length) qio(p, fmt, writes);
  return p;
}

const RECIPES: Record<string, SeedRecipe[]> = {
  qcow2: [
    { name: 'v3.qcow2', make: (d) => void create(d, 'v3.qcow2', 'qcow2', '2M') },
    { name: 'v2-c4k.qcow2', make: (d) => void create(d, 'v2-c4k.qcow2', 'qcow2', '2M', ['-o', 'compat=0.10,cluster_size=4k']) },
    {
      name: 'snap.qcow2',
      make: (d) => {
        const p = create(d, 'snap.qcow2', 'qcow2', '2M', ['-o', 'cluster_size=4k,refcount_bits=4']);
        runOk('qemu-img', ['snapshot', '-c', 's1', p]);
        qio(p, 'qcow2', ['write -P 0x44 0 8k']);
      },
    },
    {
      name: 'compressed.qcow2',
      make: (d) => {
        const src = create(d, 'src.raw', 'raw', '2M', [], ['write -P 0x55 0 1M']);
        runOk('qemu-img', ['convert', '-c', '-O', 'qcow2', src, join(d, 'compressed.qcow2')]);
      },
    },
    {
      name: 'overlay.qcow2',
      make: (d) => {
        create(d, 'base.qcow2', 'qcow2', '2M', [], ['write -P 0x66 0 1M']);
        create(d, 'overlay.qcow2', 'qcow2', '2M', ['-b', 'base.qcow2', '-F', 'qcow2'], ['write -P 0x77 512k 64k']);
      },
    },
  ],
  qcow: [
    { name: 'v1.qcow', make: (d) => void create(d, 'v1.qcow', 'qcow', '2M', [], WRITES.filter((w) => !w.startsWith('discard'))) },
    {
      name: 'overlay1.qcow',
      make: (d) => {
        create(d, 'base1.raw', 'raw', '2M', [], ['write -P 0x66 0 1M']);
        create(d, 'overlay1.qcow', 'qcow', '2M', ['-b', 'base1.raw', '-F', 'raw'], ['write -P 0x77 512k 64k']);
      },
    },
  ],
  qed: [
    { name: 'a.qed', make: (d) => void create(d, 'a.qed', 'qed', '2M') },
    { name: 'c4k.qed', make: (d) => void create(d, 'c4k.qed', 'qed', '2M', ['-o', 'cluster_size=4k,table_size=2']) },
  ],
  vdi: [
    { name: 'dyn.vdi', make: (d) => void create(d, 'dyn.vdi', 'vdi', '2M') },
    { name: 'static.vdi', make: (d) => void create(d, 'static.vdi', 'vdi', '2M', ['-o', 'static=on']) },
  ],
  vpc: [
    { name: 'dyn.vhd', make: (d) => void create(d, 'dyn.vhd', 'vpc', '2M') },
    { name: 'fixed.vhd', make: (d) => void create(d, 'fixed.vhd', 'vpc', '2M', ['-o', 'subformat=fixed']) },
  ],
  vhdx: [
    { name: 'dyn.vhdx', make: (d) => void create(d, 'dyn.vhdx', 'vhdx', '8M', ['-o', 'block_size=1M']) },
  ],
  vmdk: [
    { name: 'sparse.vmdk', make: (d) => void create(d, 'sparse.vmdk', 'vmdk', '2M') },
    {
      name: 'stream.vmdk',
      make: (d) => {
        const src = create(d, 'src-s.raw', 'raw', '2M', [], ['write -P 0x55 0 1M']);
        runOk('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', src, join(d, 'stream.vmdk')]);
      },
    },
    { name: 'flat.vmdk', make: (d) => void create(d, 'flat.vmdk', 'vmdk', '2M', ['-o', 'subformat=monolithicFlat']) },
  ],
  luks: [
    {
      name: 'a.luks',
      make: (d) => {
        const p = join(d, 'a.luks');
        runOk('qemu-img', ['create', '-q', '--object', SECRET, '-f', 'luks', '-o', 'key-secret=s0,iter-time=1', p, '2M']);
        runOk('qemu-io', ['--object', SECRET, '--image-opts', `driver=luks,file.filename=${p},key-secret=s0`, '-c', 'write -P 0x11 0 64k']);
      },
    },
  ],
  raw: [{ name: 'a.raw', make: (d) => void create(d, 'a.raw', 'raw', '1M', [], ['write -P 0x11 0 64k']) }],
  // Read-only formats: qemu-img cannot create them, their own writers (bximage, cloop-utils) do.
  bochs: [
    { name: 'growing.bochs', make: (d) => bximageConvert(create(d, 'src-b.raw', 'raw', '2M'), join(d, 'growing.bochs')) },
    { name: 'v1-4k.bochs', make: (d) => writeFileSync(join(d, 'v1-4k.bochs'), buildBochs({ data: patterned(1 << 20, 7), extentSize: 4096, version: 1 })) },
  ],
  cloop: [
    { name: 'b64k.cloop', make: (d) => createCompressedFs(create(d, 'src-c.raw', 'raw', '2M'), join(d, 'b64k.cloop'), 65536) },
    { name: 'b4k.cloop', make: (d) => createCompressedFs(create(d, 'src-c4.raw', 'raw', '2M'), join(d, 'b4k.cloop'), 4096) },
  ],
  dmg: dmgSeedRecipes,
  parallels: [
    { name: 'a.prl', make: (d) => void create(d, 'a.prl', 'parallels', '2M') },
    { name: 'c4k.prl', make: (d) => void create(d, 'c4k.prl', 'parallels', '2M', ['-o', 'cluster_size=4k']) },
  ],
};

export function fuzzFormats(): string[] {
  return Object.keys(RECIPES);
}

/** Make (once) and list the seed images of a format: [{path, name}] in one folder. */
/** Bump when a recipe changes, so cached seeds are made again. */
const SEED_RECIPES_VERSION = 3;

export function seedImages(format: string, cacheRoot = join(tmpdir(), `platter-fuzz-seeds-v${SEED_RECIPES_VERSION}`)): { dir: string; seeds: string[] } {
  const recipes = RECIPES[format];
  if (!recipes) throw new Error(`no fuzz seeds for format '${format}'`);
  const dir = join(cacheRoot, format);
  const done = join(dir, '.complete');
  if (!existsSync(done)) {
    mkdirSync(dir, { recursive: true });
    for (const r of recipes) r.make(dir);
    writeFileSync(done, '');
  }
  return { dir, seeds: recipes.map((r) => join(dir, r.name)) };
}
