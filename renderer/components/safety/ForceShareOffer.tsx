// Check on an image another process holds (#16 item 2): say who holds it and offer a read-only
// check with force-share (-U), explaining what that means.

import { useLockReport } from './LockInspector.tsx';

export function ForceShareOffer({ path, onCheck }: { path: string; onCheck(): void }) {
  const report = useLockReport(path);
  return (
    <section className="notice-inline force-share" aria-label="Image in use">
      <p>
        <strong>This image is in use.</strong> {report ? report.summary : 'Another process holds its lock.'}
      </p>
      <p>
        A normal check (and every repair) needs the image to itself. A read-only check with force-share (<code>qemu-img check -U</code>) opens it without the lock and
        changes nothing, but the holder may be writing while it reads, so what it reports can be out of date: leaks or errors that are only writes in flight, or a
        problem it misses.
      </p>
      <button type="button" onClick={onCheck}>
        Check read-only (-U)
      </button>
    </section>
  );
}
