// The worker side of pool.ts: receives {id, task, input}, runs the named task, replies with the
// result, transferring result buffers back without a copy.
import { parentPort } from 'node:worker_threads';
import { TASKS } from './tasks/index.ts';

parentPort!.on('message', async (msg: { id: number; task: string; input: unknown }) => {
  try {
    const fn = (TASKS as Record<string, (input: unknown) => unknown>)[msg.task];
    if (!fn) throw new Error(`unknown worker task '${msg.task}'`);
    const value = await fn(msg.input);
    const transfer: ArrayBuffer[] = [];
    collectTransferables(value, transfer);
    parentPort!.postMessage({ id: msg.id, ok: true, value }, transfer);
  } catch (e) {
    const err = e as { kind?: string; message?: string };
    parentPort!.postMessage({ id: msg.id, ok: false, error: { kind: err.kind, message: err.message ?? String(e) } });
  }
});

function collectTransferables(v: unknown, out: ArrayBuffer[]): void {
  if (v instanceof Uint8Array) {
    if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer && !out.includes(v.buffer)) out.push(v.buffer);
  } else if (Array.isArray(v)) for (const x of v) collectTransferables(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) collectTransferables(x, out);
}
