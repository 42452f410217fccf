// Mutation strategies over a seed image: set a structured field to an interesting value, nudge
// it, flip its bits, corrupt random bytes in the metadata area, truncate the file. Checksums are
// recomputed on half the cases so the mutation reaches past the checksum check.
import { Rng } from './rng.ts';
import { FUZZ_SPECS, interestingValues, readField, writeField, type Field } from './fields.ts';

export interface Mutation {
  image: Buffer;
  /** What was done, for the failure report. */
  description: string[];
}

/** Bytes at the start of an image that hold headers and tables (where random flips matter). */
const METADATA_WINDOW = 256 * 1024;

export function mutate(format: string, seed: Buffer, rng: Rng): Mutation {
  const image = Buffer.from(seed);
  const spec = FUZZ_SPECS[format];
  const fields: Field[] = spec ? spec.fields(seed) : [];
  const description: string[] = [];
  const steps = 1 + rng.below(3);
  for (let s = 0; s < steps; s++) {
    const strategy = fields.length ? rng.below(10) : 7 + rng.below(3);
    if (strategy < 4) {
      const f = rng.pick(fields);
      const v = rng.pick(interestingValues(f.size, image.length));
      writeField(image, f, v);
      description.push(`${f.name}=${v}`);
    } else if (strategy < 6) {
      const f = rng.pick(fields);
      const old = readField(image, f);
      const delta = BigInt(rng.below(1024) + 1) * (rng.chance(0.5) ? 1n : -1n) * (rng.chance(0.3) ? 512n : 1n);
      writeField(image, f, old + delta);
      description.push(`${f.name}${delta >= 0n ? '+' : ''}${delta}`);
    } else if (strategy < 7) {
      const f = rng.pick(fields);
      const bit = BigInt(rng.below(f.size * 8));
      writeField(image, f, readField(image, f) ^ (1n << bit));
      description.push(`${f.name}^bit${bit}`);
    } else if (strategy < 9) {
      const window = Math.min(image.length, METADATA_WINDOW);
      const n = 1 + rng.below(8);
      for (let i = 0; i < n; i++) {
        const at = rng.below(window);
        image[at] = rng.below(256);
        description.push(`byte@${at}`);
      }
    } else {
      const cut = rng.below(image.length);
      description.push(`truncate@${cut}`);
      return finish(format, image.subarray(0, cut), description, rng);
    }
  }
  return finish(format, image, description, rng);
}

function finish(format: string, image: Buffer, description: string[], rng: Rng): Mutation {
  const spec = FUZZ_SPECS[format];
  if (spec?.fixChecksums && image.length >= 512 && rng.chance(0.5)) {
    spec.fixChecksums(image);
    description.push('checksums fixed');
  }
  return { image: Buffer.from(image), description };
}
