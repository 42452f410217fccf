// QEMU's cache modes (block.c bdrv_parse_cache_mode; qemu-img's -t cache and -T src_cache,
// qemu-nbd --cache, cache= in options): what each means for the node's file, O_DIRECT
// (cache.direct) and whether flushes are dropped (cache.no-flush).

export const CACHE_MODES = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

export interface CacheFlags {
  direct: boolean;
  noFlush: boolean;
}

export const CACHE_MODE_FLAGS: Readonly<Record<CacheMode, CacheFlags>> = {
  none: { direct: true, noFlush: false },
  directsync: { direct: true, noFlush: false },
  writeback: { direct: false, noFlush: false },
  writethrough: { direct: false, noFlush: false },
  unsafe: { direct: false, noFlush: true },
};

/** bdrv_parse_cache_mode: the mode a name stands for ("off" is "none"), undefined for none. */
export function parseCacheMode(text: string): CacheMode | undefined {
  if (text === 'off') return 'none';
  return (CACHE_MODES as readonly string[]).includes(text) ? (text as CacheMode) : undefined;
}
