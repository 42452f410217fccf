// Every protocol driver, one line each.
import type { ProtocolDriver } from '../block/types.ts';
import { fileDriver } from './file/index.ts';
import { blkdebugDriver } from './blkdebug/index.ts';
import { quorumDriver } from './quorum/index.ts';

export const PROTOCOL_DRIVERS: readonly ProtocolDriver[] = [
  fileDriver,
  blkdebugDriver,
  quorumDriver,
];
