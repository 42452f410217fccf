// QED consistency check (qed_spec.txt "Consistency checking"; QEMU block/qed-check.c): walk the L1
// and every L2 table, mark the clusters they use, and report entries that point outside the file
// (corruptions) and file clusters nothing uses (leaks). With repair, invalid entries are cleared
// (the cluster then reads from the backing file, as if never written) and leaked clusters at the
// end of the file are cut off. QEMU runs this on open when the need-check feature is set.

import type { BlockNode } from '../../block/node.ts';
import type { CheckResult } from '../../block/types.ts';
import { QED_ZERO_CLUSTER, encodeEntries, isValidClusterOffset, isValidTableOffset, type OffsetRules, type QedTable } from './table.ts';

export interface QedCheckInput {
  file: BlockNode;
  rules: OffsetRules;
  tableBytes: number;
  tableEntries: number;
  l1TableOffset: number;
  imageSize: number;
  /** The in-memory L1 table (entries cleared by a repair are cleared here too). */
  l1: QedTable;
  /** Reads an L2 table from disk (not from a cache). */
  readL2(offset: number): Promise<QedTable>;
  repair: boolean;
}

export interface QedCheckOutcome {
  result: CheckResult;
  /** Offsets of L2 tables rewritten by the repair (drop them from any cache). */
  rewrittenL2: number[];
  /** The file length after cutting trailing leaks (undefined: unchanged). */
  truncatedTo?: number;
}

/** A bitmap of the file's clusters. */
class ClusterBitmap {
  readonly #bits: Uint8Array;
  constructor(readonly count: number) {
    this.#bits = new Uint8Array(Math.ceil(count / 8));
  }
  set(first: number, n: number): void {
    for (let i = first; i < first + n && i < this.count; i++) this.#bits[i >> 3]! |= 1 << (i & 7);
  }
  has(i: number): boolean {
    return (this.#bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }
}

export async function checkQed(input: QedCheckInput): Promise<QedCheckOutcome> {
  const { file, rules, repair } = input;
  const cs = rules.clusterSize;
  const result: CheckResult = {
    corruptions: 0,
    leaks: 0,
    checkErrors: 0,
    corruptionsFixed: 0,
    leaksFixed: 0,
    totalClusters: Math.ceil(input.imageSize / cs),
    allocatedClusters: 0,
    fragmentedClusters: 0,
    messages: [],
  };
  const rewrittenL2: number[] = [];
  const nclusters = rules.fileSize / cs;
  const used = new ClusterBitmap(nclusters);
  const tableClusters = input.tableBytes / cs;
  used.set(0, rules.headerBytes / cs);
  used.set(input.l1TableOffset / cs, tableClusters);

  const invalid = (what: string, fixedNote: string) => {
    if (repair) {
      result.corruptionsFixed++;
      result.messages.push(`Repairing ${what}: ${fixedNote}`);
    } else {
      result.corruptions++;
      result.messages.push(`ERROR ${what}`);
    }
  };

  let l1Dirty = false;
  for (let i = 0; i < input.tableEntries; i++) {
    const l2Off = input.l1[i]!;
    if (l2Off === 0n) continue;
    if (!isValidTableOffset(l2Off, input.tableBytes, rules)) {
      invalid(`L1 entry ${i} points to an invalid L2 table offset ${l2Off}`, 'entry cleared');
      if (repair) {
        input.l1[i] = 0n;
        l1Dirty = true;
      }
      continue;
    }
    const l2Start = Number(l2Off);
    used.set(l2Start / cs, tableClusters);
    let table: QedTable;
    try {
      table = await input.readL2(l2Start);
    } catch (e) {
      result.checkErrors++;
      result.messages.push(`ERROR reading the L2 table at offset ${l2Start}: ${(e as Error).message}`);
      continue;
    }
    let l2Dirty = false;
    let last = 0n;
    for (let j = 0; j < input.tableEntries; j++) {
      const off = table[j]!;
      if (off === 0n || off === QED_ZERO_CLUSTER) continue;
      result.allocatedClusters!++;
      if (last !== 0n && last + BigInt(cs) !== off) result.fragmentedClusters!++;
      last = off;
      if (!isValidClusterOffset(off, rules)) {
        invalid(`L2 table at offset ${l2Start}, entry ${j}, points to an invalid cluster offset ${off}`, 'entry cleared');
        if (repair) {
          table[j] = 0n;
          l2Dirty = true;
        }
        continue;
      }
      used.set(Number(off) / cs, 1);
    }
    if (l2Dirty) {
      await file.write(l2Start, encodeEntries(table, 0, input.tableEntries));
      rewrittenL2.push(l2Start);
    }
  }
  if (l1Dirty) await file.write(input.l1TableOffset, encodeEntries(input.l1, 0, input.tableEntries));

  // Leaks: file clusters past the header that no table uses.
  let lastUsed = -1;
  for (let c = 0; c < nclusters; c++) if (used.has(c)) lastUsed = c;
  const firstData = rules.headerBytes / cs;
  for (let c = firstData; c < nclusters; c++) {
    if (!used.has(c)) result.leaks++;
  }
  let truncatedTo: number | undefined;
  const trailing = nclusters - (lastUsed + 1);
  if (repair && trailing > 0 && result.checkErrors === 0) {
    // Only clusters after the last used one can be given back without moving data.
    truncatedTo = (lastUsed + 1) * cs;
    await file.truncate(truncatedTo, { shrink: true });
    result.leaks -= trailing;
    result.leaksFixed += trailing;
  }
  if (result.leaks > 0) result.messages.push(`${result.leaks} leaked clusters were found on the image (QED cannot reuse them; they are harmless)`);
  return { result, rewrittenL2, ...(truncatedTo !== undefined ? { truncatedTo } : {}) };
}
