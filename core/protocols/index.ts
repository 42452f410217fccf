// Every protocol driver, one line each.
import type { ProtocolDriver } from '../block/types.ts';
import { fileDriver } from './file/index.ts';
import { nullAioDriver, nullCoDriver } from './null/index.ts';
import { blkdebugDriver } from './blkdebug/index.ts';
import { quorumDriver } from './quorum/index.ts';
import { vvfatDriver } from './vvfat/index.ts';
import { sshDriver } from './ssh/index.ts';
import { iscsiDriver } from './iscsi/index.ts';
import { nbdDriver } from './nbd/index.ts';
import { sheepdogDriver } from './sheepdog/index.ts';
import { hostCdromDriver, hostDeviceDriver } from './host-device/index.ts';
import { glusterDriver } from './gluster/index.ts';
import { nvmeDriver } from './nvme/index.ts';

export const PROTOCOL_DRIVERS: readonly ProtocolDriver[] = [
  fileDriver,
  nullCoDriver,
  nullAioDriver,
  blkdebugDriver,
  quorumDriver,
  vvfatDriver,
  sshDriver,
  iscsiDriver,
  nbdDriver,
  sheepdogDriver,
  hostCdromDriver, hostDeviceDriver, // cdrom first: it wins a tie, as in QEMU
  glusterDriver,
  nvmeDriver,
];
