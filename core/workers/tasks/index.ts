// The registry of worker tasks: one line per module. A task is a pure function of plain data
// (Uint8Array in, Uint8Array out), so it can run on any thread.
import { COMPRESSION_TASKS } from './compression.ts';
import { CRYPTO_TASKS } from './crypto.ts';
import { DMG_TASKS } from './dmg.ts';
import { HASH_TASKS } from './hash.ts';

export const TASKS = {
  ...COMPRESSION_TASKS,
  ...CRYPTO_TASKS,
  ...DMG_TASKS,
  ...HASH_TASKS,
};

export type TaskName = keyof typeof TASKS;
export type TaskInput<T extends TaskName> = Parameters<(typeof TASKS)[T]>[0];
export type TaskOutput<T extends TaskName> = Awaited<ReturnType<(typeof TASKS)[T]>>;
