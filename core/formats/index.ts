// Every format driver, one line each (STYLE.md rule 1). Order does not matter: probing picks
// the highest score, raw last.
import type { FormatDriver } from '../block/types.ts';
import { rawDriver } from './raw/index.ts';

export const FORMAT_DRIVERS: readonly FormatDriver[] = [
  rawDriver,
];
