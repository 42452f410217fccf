// The lock inspector (#16 item 2): who holds an image in use (process id and command line, from
// /proc on Linux) and with which of QEMU's permissions, decoded from its lock bytes. Shown in the
// details pane and as the tooltip of the table's "in use" badge (read when the pointer comes).

import { useEffect, useState } from 'react';
import type { LockReport } from '../../../core/api/safety/locks.ts';
import { api } from '../../api-client.ts';

export function useLockReport(path: string | undefined, when = true): LockReport | undefined {
  const [report, setReport] = useState<LockReport>();
  useEffect(() => {
    setReport(undefined);
    if (!path || !when) return;
    let live = true;
    api
      .lockInspect({ path })
      .then((r) => live && setReport(r))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [path, when]);
  return report;
}

/** The holders of an image's lock, for the details pane. */
export function LockInspector({ path }: { path: string }) {
  const report = useLockReport(path);
  return (
    <section className="lock-inspector" aria-label="Lock holders">
      <h3>Who holds it</h3>
      {!report ? (
        <p className="muted">Looking…</p>
      ) : !report.supported ? (
        <p className="muted">{report.summary}</p>
      ) : report.holders.length === 0 ? (
        <p className="muted">{report.summary}</p>
      ) : (
        <ul className="lock-holders">
          {report.holders.map((h, i) => (
            <li key={`${h.pid ?? 'x'}-${i}`}>
              <div>
                {h.pid !== undefined ? (
                  <>
                    <strong>pid {h.pid}</strong> <code className="mono">{h.command ?? '(command line not readable)'}</code>
                  </>
                ) : (
                  <strong>a process of another user (not readable)</strong>
                )}
              </div>
              <div>
                Holds: {h.holds.length ? h.holds.map((p) => <span key={p} className="badge perm">{p}</span>) : <span className="muted">nothing</span>}
              </div>
              <div>
                Does not share: {h.blocks.length ? h.blocks.map((p) => <span key={p} className="badge perm bad">{p}</span>) : <span className="muted">nothing (others may do anything)</span>}
              </div>
            </li>
          ))}
        </ul>
      )}
      <p className="help">Read from QEMU's lock bytes (100+bit held, 200+bit not shared) in /proc/locks. While a holder does not share "write", other programs can only open the image read-only with force-share (-U).</p>
    </section>
  );
}

/** The table's lock cell: "in use" gets the holders as its tooltip, read on hover. */
export function LockBadge({ path, lock }: { path: string; lock: string }) {
  const [hover, setHover] = useState(false);
  const report = useLockReport(path, hover && lock === 'in-use');
  const title = lock !== 'in-use' ? undefined : report ? report.summary : 'In use by another process (hover to see who)';
  return (
    <span className={`lock-state ${lock}`} title={title} onMouseEnter={() => setHover(true)} onFocus={() => setHover(true)}>
      {lock === 'in-use' ? 'in use' : lock}
    </span>
  );
}
