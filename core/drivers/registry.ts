// The driver registry (above the drivers and the block layer): one list of formats and one of
// protocols. A new driver is a folder under
// core/formats or core/protocols and one line in its index.ts.
import type { FormatDriver, ProtocolDriver } from '../block/types.ts';
import { FORMAT_DRIVERS } from '../formats/index.ts';
import { PROTOCOL_DRIVERS } from '../protocols/index.ts';

export function formatDrivers(): readonly FormatDriver[] {
  return FORMAT_DRIVERS;
}

export function protocolDrivers(): readonly ProtocolDriver[] {
  return PROTOCOL_DRIVERS;
}

export function findFormat(name: string): FormatDriver | undefined {
  return FORMAT_DRIVERS.find((d) => d.name === name);
}

export function findProtocol(name: string): ProtocolDriver | undefined {
  return PROTOCOL_DRIVERS.find((d) => d.name === name);
}

/** QEMU's find_hdev_driver: the protocol whose device probe scores a plain name highest, if any. */
export function probeDeviceDriver(filename: string): string | undefined {
  let best: ProtocolDriver | undefined;
  let bestScore = 0;
  for (const d of PROTOCOL_DRIVERS) {
    const score = d.probeDevice?.(filename) ?? 0;
    if (score > bestScore) [best, bestScore] = [d, score];
  }
  return best?.name;
}
