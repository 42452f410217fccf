// Child of the parallels SIGKILL test (parallels-qemu.test.ts): opens a parallels image read-write
// and writes 64 KiB clusters of pattern i (i = 1, 2, ...) at cluster (i * 7) mod 96, flushing after
// every 10th write and printing "F <i>" once that flush is done, until killed.
import { openImage } from '../../core/drivers/open.ts';

const node = await openImage(process.argv[2]!, { format: 'parallels', warn: () => {} });
for (let i = 1; ; i++) {
  await node.write(((i * 7) % 96) * 65536, Buffer.alloc(65536, i & 255));
  if (i % 10 === 0) {
    await node.flush();
    process.stdout.write(`F ${i}\n`);
  }
}
