// The `platter` command line: a qemu-img 7.2 drop-in (same subcommands, flags, output shapes and
// exit codes). Thin by design: parse arguments, call core/api (or the job for
// the CLI-only dd/bench), print. Errors are one "<program>: <message>" line (program.ts) on stderr and a
// non-zero exit; a JS stack trace is shown only with --debug.

import { setFlagsFromString } from 'node:v8';
import { stat } from 'node:fs';
import { BlockError, redactSecrets } from '../errors.ts';
import type { PlatterService, JobHandle } from '../api/service.ts';
// The implementation directly, without the zod schemas: the CLI builds well-formed inputs itself,
// and loading zod is a noticeable part of a CLI start.
import { implementService } from '../api/implementation.ts';
import { COMMANDS, StatusError, type CommandContext } from './commands.ts';
import { ProgressPrinter, type ProgressDisplay } from './progress.ts';
import { usageError } from './args.ts';
import { PROGRAM, errorText } from './program.ts';
import { CLI_V8_FLAGS } from './v8-flags.ts';
import { hostOps } from '../host/index.ts';

export { PROGRAM };
/** The qemu-img version whose interface this CLI follows. */
export const QEMU_COMPAT_VERSION = '7.2';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const defaultIo: CliIo = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

function usage(): string {
  return [
    `${PROGRAM}: a qemu-img compatible disk image utility (TypeScript, qemu-img ${QEMU_COMPAT_VERSION} interface)`,
    `usage: ${PROGRAM} [standard options] command [command options]`,
    '',
    "    '-h', '--help'       display this help and exit",
    "    '-V', '--version'    output version information and exit",
    "    '--debug'            show the stack trace of an internal error",
    '',
    'Command syntax:',
    ...Object.values(COMMANDS).map((c) => `  ${c.syntax}`),
    '',
    "See 'qemu-img --help' for the meaning of every option: they are the same.",
    '',
  ].join('\n');
}


export async function main(argv: string[], givenIo: CliIo = defaultIo): Promise<number> {
  if (givenIo === defaultIo) setFlagsFromString(CLI_V8_FLAGS);
  // A password the user typed (iscsi://user%password@..., password=...) is never printed.
  const io: CliIo = { stdout: (s) => givenIo.stdout(redactSecrets(s)), stderr: (s) => givenIo.stderr(redactSecrets(s)) };
  let debug = false;
  const args = [...argv];
  while (args[0] === '--debug') {
    debug = true;
    args.shift();
  }
  if (process.env.PLATTER_DEBUG === '1') debug = true;
  const cmd = args[0];
  if (cmd === undefined) {
    return reportError(usageError('Not enough arguments'), io, debug, 1);
  }
  if (cmd === '-h' || cmd === '--help') {
    io.stdout(usage());
    return 0;
  }
  if (cmd === '-V' || cmd === '--version') {
    io.stdout(`${PROGRAM} version 0.1.0 (qemu-img ${QEMU_COMPAT_VERSION} compatible)\n`);
    return 0;
  }
  const command = COMMANDS[cmd];
  if (!command) {
    io.stderr(errorText(`Command not found: ${cmd}`));
    return 1;
  }
  let service: PlatterService | undefined;
  // Warnings worded "warning: ..." are QEMU's warn_report, "error_report: ..." its error_report:
  // both carry the program's name.
  const warn = (m: string) => io.stderr(m.startsWith('warning: ') ? errorText(m) : m.startsWith('error_report: ') ? errorText(m.slice('error_report: '.length)) : `${m}\n`);
  const ctx: CommandContext = {
    io,
    get service() {
      service ??= implementService({ warn, warnReport: (m) => io.stderr(errorText(`warning: ${m}`)), validate: false });
      return service;
    },
    warn,
    runJob: async <T>(h: JobHandle<T>, progress: boolean, display?: ProgressDisplay) => {
      // This process's main thread dispatches every request of the job: its helper threads (the
      // I/O pool, V8's) should not preempt it each time it wakes one (measured on 2 cores: 1,700
      // involuntary context switches per 1.25 GiB convert, 200 without; wall time 5-8% less).
      if (givenIo === defaultIo) {
        // libuv starts its I/O pool at the first request that needs one (with the ES module
        // loader that is before this code runs; a CommonJS bundle's first is the job's): make
        // sure its threads exist before they are marked.
        await new Promise<void>((resolve) => stat('.', () => resolve()));
        hostOps().batchHelperThreads();
      }
      const printer = new ProgressPrinter(progress, io.stdout, display);
      printer.start();
      const off = h.onProgress((p) => printer.update(p.done, p.total));
      // Ctrl-C and kill(1) cancel the job, which removes what it created (a staged target).
      const onSigint = () => h.cancel();
      process.once('SIGINT', onSigint);
      process.once('SIGTERM', onSigint);
      try {
        const r = await h.result;
        printer.end();
        return r;
      } finally {
        off();
        process.removeListener('SIGINT', onSigint);
        process.removeListener('SIGTERM', onSigint);
      }
    },
  };
  try {
    return await command.run(args.slice(1), ctx);
  } catch (e) {
    return reportError(e, io, debug, command.errorStatus ?? 1);
  } finally {
    await service?.close().catch(() => {});
  }
}

function reportError(e: unknown, io: CliIo, debug: boolean, status: number): number {
  if (e instanceof StatusError) {
    if (e.message) io.stderr(errorText(e.message));
    return e.status;
  }
  if (e instanceof BlockError) {
    for (const m of e.reportedBefore ?? []) io.stderr(errorText(m));
    io.stderr(errorText(e.message));
    if (e.hint) io.stderr(e.hint); // as QEMU prints it: its own line ends, or none
    if (debug && e.stack) io.stderr(`${e.stack}\n`);
    return e.code === 'Usage' ? 1 : status;
  }
  const err = e as Error;
  io.stderr(errorText(`internal error: ${err?.message ?? String(e)}${debug ? '' : ' (run with --debug for details)'}`));
  if (debug && err?.stack) io.stderr(`${err.stack}\n`);
  return status;
}
