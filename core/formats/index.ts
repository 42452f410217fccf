// Every format driver, one line each. Order does not matter: probing picks
// the highest score, raw last.
import type { FormatDriver } from '../block/types.ts';
import { rawDriver } from './raw/index.ts';
import { qcow2Driver } from './qcow2/index.ts';
import { luksDriver } from './luks/index.ts';
import { vpcDriver } from './vpc/index.ts';
import { vhdxDriver } from './vhdx/index.ts';
import { vdiDriver } from './vdi/index.ts';
import { qcowDriver } from './qcow/index.ts';
import { qedDriver } from './qed/index.ts';
import { vmdkDriver } from './vmdk/index.ts';
import { bochsDriver } from './bochs/index.ts';
import { cloopDriver } from './cloop/index.ts';
import { dmgDriver } from './dmg/index.ts';
import { parallelsDriver } from './parallels/index.ts';

export const FORMAT_DRIVERS: readonly FormatDriver[] = [
  rawDriver,
  qcow2Driver,
  luksDriver,
  vpcDriver,
  vhdxDriver,
  vdiDriver,
  qcowDriver,
  qedDriver,
  vmdkDriver,
  bochsDriver,
  cloopDriver,
  dmgDriver,
  parallelsDriver,
];
