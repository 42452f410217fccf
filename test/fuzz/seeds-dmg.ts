// dmg fuzz seeds (qemu-img cannot create dmg): built with the test-side UDIF writer in both table
// forms and with zlib, raw, bzip2 and zero chunks, plus the node-udif fixtures with ADC and LZFSE
// chunks where the shared fixtures are present (a bzip2 stand-in where not).
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/qemu.ts';
import { dmgFromDisk, sampleDisk } from '../helpers/dmg-build.ts';

function fixtureOr(name: string, fallback: () => Buffer): (dir: string) => void {
  return (dir) => {
    const src = join(FIXTURES, 'third-party/node-udif', name);
    if (existsSync(src)) copyFileSync(src, join(dir, name));
    else writeFileSync(join(dir, name), fallback());
  };
}

export const dmgSeedRecipes: { name: string; make(dir: string): void }[] = [
  { name: 'zlib-xml.dmg', make: (d) => writeFileSync(join(d, 'zlib-xml.dmg'), dmgFromDisk(sampleDisk(1 << 20), 'zlib', 256, 'xml')) },
  { name: 'zlib-rsrc.dmg', make: (d) => writeFileSync(join(d, 'zlib-rsrc.dmg'), dmgFromDisk(sampleDisk(1 << 20), 'zlib', 512, 'rsrc')) },
  { name: 'raw-rsrc.dmg', make: (d) => writeFileSync(join(d, 'raw-rsrc.dmg'), dmgFromDisk(sampleDisk(512 << 10), 'raw', 128, 'rsrc')) },
  { name: 'bz2-rsrc.dmg', make: (d) => writeFileSync(join(d, 'bz2-rsrc.dmg'), dmgFromDisk(sampleDisk(1 << 20), 'bzip2', 512, 'rsrc')) },
  { name: 'compression-lzfse.dmg', make: fixtureOr('compression-lzfse.dmg', () => dmgFromDisk(sampleDisk(1 << 20), 'bzip2', 256, 'xml')) },
  { name: 'compression-adc.dmg', make: fixtureOr('compression-adc.dmg', () => dmgFromDisk(sampleDisk(1 << 20), 'raw', 64, 'xml')) },
];
