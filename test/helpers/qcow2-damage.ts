// Damage a qcow2 file the ways repair tests need (qcow2 spec: header fields l1_table_offset at
// 40, refcount_table_offset at 48, cluster_bits at 20; 16-bit refcounts).

import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

function header(fd: number): Buffer {
  const h = Buffer.alloc(104);
  readSync(fd, h, 0, 104, 0);
  return h;
}

/** A leaked cluster: one more cluster at the end of the file with refcount 1, referenced by nothing. */
export function leakCluster(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    const h = header(fd);
    const cs = 1 << h.readUInt32BE(20);
    const size = fstatSync(fd).size;
    const n = Math.ceil(size / cs);
    const rt = Number(h.readBigUInt64BE(48));
    const e = Buffer.alloc(8);
    readSync(fd, e, 0, 8, rt);
    const rb = Number(e.readBigUInt64BE(0));
    const one = Buffer.alloc(2);
    one.writeUInt16BE(1);
    writeSync(fd, one, 0, 2, rb + 2 * n);
    writeSync(fd, Buffer.alloc(cs), 0, cs, n * cs);
  } finally {
    closeSync(fd);
  }
}

/** The first L1 entry moved off its cluster boundary ("L1 entry corrupted", not repairable). */
export function corruptL1(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    const h = header(fd);
    const l1 = Number(h.readBigUInt64BE(40));
    const e = Buffer.alloc(8);
    readSync(fd, e, 0, 8, l1);
    e.writeBigUInt64BE(e.readBigUInt64BE(0) + 512n);
    writeSync(fd, e, 0, 8, l1);
  } finally {
    closeSync(fd);
  }
}
