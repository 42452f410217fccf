// A crash-test child: opens an image read-write through Platter and performs the op sequence,
// printing "F <index>" after every flush that completed, and "S <index>" / "E <index>" around
// snapshot operations. The parent kills it with SIGKILL.
import { openImage } from '../../core/drivers/open.ts';
import { opSequence } from './ops.ts';

const [path, format, seedText, snapshotsText] = process.argv.slice(2);
const ops = opSequence(Number(seedText), snapshotsText === '1');
const node = await openImage(path!, { format: format!, warn: () => {} });
const deleted = new Set<string>();
for (let i = 0; i < ops.length; i++) {
  const op = ops[i]!;
  try {
    switch (op.kind) {
      case 'write':
        await node.write(op.offset, Buffer.alloc(op.length, op.pattern));
        break;
      case 'zero':
        await node.writeZeroes(op.offset, op.length, { mayUnmap: true });
        break;
      case 'discard':
        await node.discard(op.offset, op.length);
        break;
      case 'flush':
        await node.flush();
        process.stdout.write(`F ${i}\n`);
        break;
      case 'snapshot-create':
        process.stdout.write(`S ${i}\n`);
        await node.impl.snapshots?.create({ name: op.name, dateSec: Math.floor(Date.now() / 1000), dateNsec: 0 });
        process.stdout.write(`E ${i}\n`);
        break;
      case 'snapshot-delete':
        if (!deleted.has(op.name)) {
          deleted.add(op.name);
          process.stdout.write(`S ${i}\n`);
          await node.impl.snapshots?.delete(op.name).catch(() => {});
          process.stdout.write(`E ${i}\n`);
        }
        break;
    }
  } catch (e) {
    process.stderr.write(`op ${i} (${op.kind}) failed: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
await node.close();
process.stdout.write('DONE\n');
