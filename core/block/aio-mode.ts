// QEMU's aio modes (qapi BlockdevAioOptions: file.aio=, qemu-img bench -i / -n, qemu-nbd --aio):
// how a file's requests are submitted. Platter submits them through libuv's thread pool whatever
// the mode (QEMU's 'threads'); the names and QEMU's rule that Linux AIO needs O_DIRECT are kept.

export const AIO_MODES = ['threads', 'native', 'io_uring'] as const;
export type AioMode = (typeof AIO_MODES)[number];

/** The mode a name stands for, undefined for none. */
export function parseAioMode(text: string): AioMode | undefined {
  return (AIO_MODES as readonly string[]).includes(text) ? (text as AioMode) : undefined;
}
