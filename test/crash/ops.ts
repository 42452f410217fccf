// The deterministic operation sequence a crash-test child performs: the parent regenerates the
// same sequence from the seed to know what every acknowledged flush covers.
import { Rng } from '../fuzz/rng.ts';

export type Op =
  | { kind: 'write'; offset: number; length: number; pattern: number }
  | { kind: 'zero'; offset: number; length: number }
  | { kind: 'discard'; offset: number; length: number }
  | { kind: 'flush' }
  | { kind: 'snapshot-create'; name: string }
  | { kind: 'snapshot-delete'; name: string };

/** Virtual size of crash-test images: small, so verifying the whole content is cheap. */
export const CRASH_IMAGE_SIZE = 8 << 20;
export const OPS_PER_RUN = 4000;

export function opSequence(seed: number, withSnapshots: boolean): Op[] {
  const rng = new Rng(seed);
  const ops: Op[] = [];
  let snaps = 0;
  for (let i = 0; i < OPS_PER_RUN; i++) {
    const r = rng.below(100);
    const offset = rng.chance(0.5) ? rng.below(CRASH_IMAGE_SIZE / 512) * 512 : rng.below(CRASH_IMAGE_SIZE);
    const maxLen = Math.min(CRASH_IMAGE_SIZE - offset, rng.chance(0.2) ? 256 << 10 : 16 << 10);
    const length = Math.max(1, rng.below(maxLen) + 1);
    if (r < 60) ops.push({ kind: 'write', offset, length, pattern: 1 + rng.below(255) });
    else if (r < 68) ops.push({ kind: 'zero', offset, length });
    else if (r < 74) ops.push({ kind: 'discard', offset, length });
    else if (r < 94) ops.push({ kind: 'flush' });
    else if (withSnapshots && r < 97) ops.push({ kind: 'snapshot-create', name: `crash-${seed}-${snaps++}` });
    else if (withSnapshots && snaps > 0) ops.push({ kind: 'snapshot-delete', name: `crash-${seed}-${rng.below(snaps)}` });
    else ops.push({ kind: 'flush' });
  }
  return ops;
}
