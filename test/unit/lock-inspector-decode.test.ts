// The lock inspector's decoding of /proc/locks lines (core/api/safety/locks.ts): QEMU's lock
// bytes 100+bit (held) and 200+bit (not shared), as qemu-nbd takes them on a qcow2 image.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLockBytes, parseLockLine } from '../../core/api/safety/locks.ts';

test('OFD and POSIX lines of /proc/locks parse, and QEMU lock bytes decode to permission names', () => {
  const lines = ['1: OFDLCK ADVISORY  READ -1 fe:00:2179617 203 203', '2: OFDLCK ADVISORY  READ -1 fe:00:2179617 201 201', '3: OFDLCK ADVISORY  READ -1 fe:00:2179617 103 103', '4: OFDLCK ADVISORY  READ -1 fe:00:2179617 100 101'].map(parseLockLine);
  assert.deepEqual(lines[3], { kind: 'ofd', pid: -1, major: 0xfe, minor: 0, inode: 2179617, start: 100, end: 101 });
  assert.deepEqual(decodeLockBytes(lines.map((l) => l!)), { holds: ['consistent read', 'write', 'resize'], blocks: ['write', 'resize'] });
  assert.deepEqual(parseLockLine('lock:\t5: POSIX  ADVISORY  READ 4242 08:01:77 100 100'), { kind: 'posix', pid: 4242, major: 8, minor: 1, inode: 77, start: 100, end: 100 });
  assert.equal(parseLockLine('6: FLOCK  ADVISORY  WRITE 99 08:01:77 0 EOF'), undefined);
});
