// koffi, the FFI the host modules reach libc / kernel32 through, loaded on first use and, where
// it can be, straight from its native addon. koffi's entry module finds that addon by reading
// the ELF header of the node binary (to tell glibc from musl), resolving package.json files and
// wrapping deprecated names: 20 ms of every CLI start against 5 ms for loading the addon itself,
// which exports the same functions. The platform package's layout is koffi's own
// (@koromix/koffi-<os>-<arch>/<os or musl>_<arch>/koffi.node); when it cannot be loaded (another
// layout, an Electron asar archive), the public entry is used, as before.
import { createRequire } from 'node:module';
import type KoffiModule from 'koffi';

export type Koffi = typeof KoffiModule;

const requireHere = createRequire(import.meta.url);
let loaded: Koffi | undefined;
/** How koffi was loaded: 'addon' (directly) or 'entry' (koffi's own module); for tests. */
export let koffiLoadedFrom: 'addon' | 'entry' | undefined;

export function koffi(): Koffi {
  if (loaded) return loaded;
  const { platform, arch } = process;
  // glibc first on Linux: a musl addon fails to load under glibc and the other way round.
  const dirs = platform === 'linux' ? [`linux_${arch}`, `musl_${arch}`] : [`${platform}_${arch}`];
  for (const dir of dirs) {
    try {
      const addon = requireHere(`@koromix/koffi-${platform}-${arch}/${dir}/koffi.node`) as Partial<Koffi>;
      if (typeof addon.load === 'function' && typeof addon.address === 'function' && typeof addon.decode === 'function') {
        koffiLoadedFrom = 'addon';
        return (loaded = addon as Koffi);
      }
    } catch {
      // Not this one: try the next, then koffi's entry module.
    }
  }
  koffiLoadedFrom = 'entry';
  return (loaded = requireHere('koffi') as Koffi);
}
