// An API ImageRef (validated input) as the ImageSpec the jobs open.

import type { ImageRef } from './schemas.ts';
import type { ImageSpec } from '../jobs/common.ts';

export function imageSpec(r: ImageRef): ImageSpec {
  return {
    filename: r.filename,
    ...(r.format ? { format: r.format } : {}),
    ...(r.imageOpts ? { imageOpts: true } : {}),
    ...(r.forceShare ? { forceShare: true } : {}),
    ...(r.cache ? { cache: r.cache } : {}),
  };
}
