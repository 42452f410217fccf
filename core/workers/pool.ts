// A pool of worker_threads for CPU-heavy work (compression, encryption, key derivation, hashing),
// so the main thread never runs it (docs/architecture.md "core/jobs"; spread
// compression over every core). Tasks are named functions in tasks/index.ts; a call sends its
// input buffers by transfer (the caller gives up ownership) and gets fresh buffers back.

import type { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { BlockError } from '../errors.ts';
import type { TaskName, TaskInput, TaskOutput } from './tasks/index.ts';

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

interface Slot {
  worker: Worker;
  busy: number;
}

interface Queued {
  id: number;
  task: string;
  input: unknown;
  transfer: ArrayBuffer[];
}

/**
 * Where the worker entry lives. Beside the CLI's CommonJS bundle: its CommonJS twin, which a worker
 * starts without Node's ES module loader (measured: ready in 165-220 ms instead of 370-850 ms for
 * two workers on a loaded 2-CPU machine; a decompressing convert waits for its first worker).
 * Otherwise the .mjs shim (TypeScript through tsx from source; Electron's compiled twin).
 */
function workerEntry(): URL {
  const cjs = new URL('./worker-entry.cjs', import.meta.url);
  return existsSync(cjs) ? cjs : new URL('./worker-entry.mjs', import.meta.url);
}
/** node:worker_threads, loaded with the first worker: a command that never compresses or
 *  encrypts does not pay for loading it. */
const requireHere = createRequire(import.meta.url);
let WorkerClass: typeof Worker | undefined;

export class WorkerPool {
  readonly size: number;
  #slots: Slot[] = [];
  #pending = new Map<number, Pending>();
  #queue: Queued[] = [];
  #nextId = 1;
  #closed = false;
  /** Requests in flight per worker before queueing (keeps every core fed without hoarding). */
  static readonly PER_WORKER_DEPTH = 2;

  constructor(size = Math.max(1, Math.min(availableParallelism(), 8))) {
    this.size = size;
  }

  #spawn(): Slot {
    WorkerClass ??= (requireHere('node:worker_threads') as typeof import('node:worker_threads')).Worker;
    const worker = new WorkerClass(workerEntry());
    worker.unref();
    const slot: Slot = { worker, busy: 0 };
    worker.on('message', (msg: { id: number; ok: boolean; value?: unknown; error?: { kind?: string; message: string } }) => {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      slot.busy--;
      if (msg.ok) p.resolve(msg.value);
      else p.reject(msg.error?.kind ? new BlockError(msg.error.kind as BlockError['kind'], msg.error.message) : new Error(msg.error?.message ?? 'worker task failed'));
      this.#drain();
    });
    worker.on('error', (err) => {
      // A crashed worker fails its requests; the slot is replaced on next use.
      this.#slots = this.#slots.filter((s) => s !== slot);
      for (const [id, p] of this.#pending) {
        if ((p as Pending & { slot?: Slot }).slot === slot) {
          this.#pending.delete(id);
          p.reject(err);
        }
      }
      this.#drain();
    });
    this.#slots.push(slot);
    return slot;
  }

  #pick(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.#slots) if (!best || s.busy < best.busy) best = s;
    if ((!best || best.busy > 0) && this.#slots.length < this.size) return this.#spawn();
    if (best && best.busy < WorkerPool.PER_WORKER_DEPTH) return best;
    return undefined;
  }

  #drain(): void {
    while (this.#queue.length > 0) {
      const slot = this.#pick();
      if (!slot) return;
      const q = this.#queue.shift()!;
      slot.busy++;
      const p = this.#pending.get(q.id) as (Pending & { slot?: Slot }) | undefined;
      if (p) p.slot = slot;
      if (slot.busy === 1) slot.worker.ref();
      slot.worker.postMessage({ id: q.id, task: q.task, input: q.input }, q.transfer);
    }
    for (const s of this.#slots) if (s.busy === 0) s.worker.unref();
  }

  /** Run a named task. Buffers listed in `transfer` are moved to the worker (do not reuse them). */
  run<T extends TaskName>(task: T, input: TaskInput<T>, transfer: ArrayBuffer[] = []): Promise<TaskOutput<T>> {
    if (this.#closed) return Promise.reject(new Error('worker pool is closed'));
    const id = this.#nextId++;
    const promise = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    this.#queue.push({ id, task, input, transfer });
    this.#drain();
    return promise as Promise<TaskOutput<T>>;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
    this.#slots = [];
  }
}

let shared: WorkerPool | undefined;
/** The process-wide pool (one per process, sized to the cores). */
export function sharedWorkerPool(): WorkerPool {
  shared ??= new WorkerPool();
  return shared;
}
