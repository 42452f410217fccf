// The fallback HostOps: no sparse queries, no locks, no hole punching. Used where the OS module
// is missing; callers then treat files as fully allocated and skip locking with a warning.
import type { HostOps } from './index.ts';

export function createPortableHost(): HostOps {
  return {
    platform: 'portable',
    seekData: () => undefined,
    seekHole: () => undefined,
    punchHole: async () => false,
    zeroRange: async () => false,
    allocate: async () => false,
    setNoCow: () => false,
    setLock: () => true,
    testLock: () => false,
    ofdLocksSupported: false,
    deviceSize: () => undefined,
  };
}
