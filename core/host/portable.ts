// The fallback HostOps: no sparse queries, no locks, no hole punching. Used where the OS module
// is missing or fails to load; callers then treat files as fully allocated and skip locking.
// A Linux block device's size still comes from sysfs (/sys/dev/block/MAJ:MIN/size, in 512-byte
// sectors): without it a device would open as 0 bytes.
import { fstatSync, readFileSync } from 'node:fs';
import type { HostOps } from './index.ts';

/** A Linux block device's size from sysfs; undefined for anything else. */
export function sysfsBlockDeviceSize(fd: number): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const st = fstatSync(fd);
    if (!st.isBlockDevice()) return undefined;
    // The kernel's dev_t split (new_decode_dev): 12 bits of major, 20 of minor.
    const rdev = BigInt(st.rdev);
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim());
    return Number.isSafeInteger(sectors) && sectors >= 0 ? sectors * 512 : undefined;
  } catch {
    return undefined;
  }
}

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
    deviceSize: sysfsBlockDeviceSize,
    deviceBlockSize: () => undefined,
    batchHelperThreads: () => 0,
    setDirectIo: () => false,
  };
}
