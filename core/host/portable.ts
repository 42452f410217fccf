// The fallback HostOps: no sparse queries, no locks, no hole punching. Used where the OS module
// is missing or fails to load; callers then treat files as fully allocated and skip locking.
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
    locksSupported: false,
    deviceSize: () => undefined,
    deviceBlockSize: () => undefined,
    batchHelperThreads: () => 0,
    setDirectIo: () => false,
  };
}
