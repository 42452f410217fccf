// The private channel between the desktop app's main process and its elevated drive helper
// (docs/architecture.md "Elevated drive jobs"). The app makes a directory only its user may
// enter (0700), writes a one-time random token into it (0600) and listens there: a unix socket
// `channel.sock` (POSIX) or a named pipe whose name is in the file `pipe` (Windows). The helper,
// started with administrator rights and `--channel DIR`, reads the token, connects and presents
// it; the app answers with the one job to run; the helper streams progress and ends with a
// result or an error; the app may send cancel. Messages are JSON, one per line, each at most
// MAX_LINE bytes, and both sides validate every message with the schemas below: anything else
// ends the conversation.

import { z } from 'zod';
import type { Socket } from 'node:net';
import { BlockError, type BlockErrorKind } from '../errors.ts';
import { drivesImageInput, drivesWriteInput } from './routes-drives.ts';

export const PROTOCOL_VERSION = 1;
/** The longest message line either side accepts. */
export const MAX_LINE = 64 * 1024;
export const TOKEN_FILE = 'token';
export const SOCKET_FILE = 'channel.sock';
export const PIPE_FILE = 'pipe';
/** A named pipe's name as the app makes it (Windows). */
export const PIPE_NAME = /^\\\\\.\\pipe\\platter-elevated-[0-9a-f]{32}$/;
export const TOKEN = /^[0-9a-f]{64}$/;

const KINDS = ['InvalidImage', 'Unsupported', 'Corrupt', 'Locked', 'NotFound', 'Permission', 'Cancelled', 'InvalidArgument', 'Io'] as const satisfies readonly BlockErrorKind[];
const text = (max: number) => z.string().max(max);

/** The job, as the helper receives it: the same inputs the app's methods take. */
export const elevatedJob = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('image'), input: drivesImageInput }),
  z.strictObject({ kind: z.literal('write'), input: drivesWriteInput }),
]);

/** What the helper may say. */
export const helperMessage = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('hello'), v: z.literal(PROTOCOL_VERSION), token: z.string().regex(TOKEN) }),
  z.strictObject({ t: z.literal('progress'), done: z.number().int().nonnegative(), total: z.number().int().nonnegative(), phase: text(200).optional() }),
  z.strictObject({ t: z.literal('result'), result: z.strictObject({ verified: z.boolean().optional(), message: text(4000).optional() }) }),
  z.strictObject({
    t: z.literal('error'),
    error: z.strictObject({
      kind: z.enum(KINDS),
      message: text(4000),
      code: text(100).optional(),
      context: z.strictObject({ path: text(4096).optional(), offset: z.number().optional(), op: text(100).optional(), node: text(200).optional() }).optional(),
    }),
  }),
]);
export type HelperMessage = z.infer<typeof helperMessage>;

/** What the app may say. */
export const appMessage = z.discriminatedUnion('t', [z.strictObject({ t: z.literal('start'), job: elevatedJob }), z.strictObject({ t: z.literal('cancel') })]);
export type AppMessage = z.infer<typeof appMessage>;

/** Send one message (one line). */
export function sendMessage(socket: Socket, message: HelperMessage | AppMessage, done?: () => void): void {
  if (socket.destroyed || !socket.writable) return;
  socket.write(`${JSON.stringify(message)}\n`, done ? () => done() : undefined);
}

/**
 * Read `socket` as lines of JSON checked against `schema`: each valid message goes to
 * `onMessage`; the first bad one (too long, not JSON, not one of the schema's messages) goes to
 * `onBad` with the reason, and nothing after it is read.
 */
export function readMessages<T>(socket: Socket, schema: z.ZodType<T>, onMessage: (m: T) => void, onBad: (why: string) => void): void {
  let buffered = '';
  let bad = false;
  const fail = (why: string) => {
    bad = true;
    socket.off('data', onData);
    onBad(why);
  };
  const onData = (chunk: Buffer) => {
    if (bad) return;
    buffered += chunk.toString('utf8');
    for (;;) {
      const nl = buffered.indexOf('\n');
      if (nl < 0) break;
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.length > MAX_LINE) return fail(`a message longer than ${MAX_LINE} bytes`);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        return fail('a message that is not JSON');
      }
      const r = schema.safeParse(value);
      if (!r.success) return fail(`a malformed message (${r.error.issues[0]?.path.join('.') || 'message'}: ${r.error.issues[0]?.message ?? 'invalid'})`);
      onMessage(r.data);
      if (bad) return;
    }
    if (buffered.length > MAX_LINE) fail(`a message longer than ${MAX_LINE} bytes`);
  };
  socket.on('data', onData);
}

/** The helper's error as a BlockError again (its kind, words and context). */
export function errorFromHelper(e: Extract<HelperMessage, { t: 'error' }>['error']): BlockError {
  const ctx = e.context ?? {};
  return new BlockError(e.kind, e.message, {
    ...(ctx.path !== undefined ? { path: ctx.path } : {}),
    ...(ctx.offset !== undefined ? { offset: ctx.offset } : {}),
    ...(ctx.op !== undefined ? { op: ctx.op } : {}),
    ...(ctx.node !== undefined ? { node: ctx.node } : {}),
  });
}
