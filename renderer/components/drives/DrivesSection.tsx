// The Drives section of the library sidebar (issue #19): the host's disks, loop devices and
// optical drives (model, size, removable, mounted filesystems, the system disk marked), with
// "Image this drive" (convert to any format, progress and cancel in the jobs panel, then verify
// with compare) and "Write image to drive" with balenaEtcher's safety: the system disk and
// mounted drives cannot be chosen (and the server refuses them too), the user types the drive's
// name and confirms its model and size, and the write is verified afterwards. Without access to
// raw devices it says plainly that the server's user lacks it (browser mode); the desktop app
// offers "Authorize…" instead: the one job runs with administrator rights the OS grants
// (electron/elevate.ts), with the same progress, cancel and verification.

import { useEffect, useId, useState } from 'react';
import { api, isElectron } from '../../api-client.ts';
import type { DriveView } from '../../../core/api/routes-drives.ts';
import { Dialog } from '../Dialog.tsx';
import { useFormats } from '../../stores/formats.ts';
import { useUi } from '../../stores/ui.ts';
import { trackJob } from '../../jobs-actions.ts';
import { formatBytes } from '../../util/format.ts';

type Action = { kind: 'image' | 'write'; drive: DriveView } | null;

/** Why this drive cannot be written (shown, and the write button is disabled), or undefined. */
export function driveWriteBlock(d: DriveView): string | undefined {
  if (d.system) return 'System disk: never written';
  if (d.mountpoints.length) return `Mounted (${d.mountpoints.join(', ')}): unmount first`;
  if (d.readOnly) return 'Read-only';
  if (d.access !== 'read-write' && !isElectron()) return accessText(d);
  return undefined;
}

/** The desktop app asks the OS for administrator rights for this job (browser mode cannot). */
export function needsAuthorization(d: DriveView, kind: 'image' | 'write'): boolean {
  return isElectron() && (kind === 'image' ? d.access === 'none' : d.access !== 'read-write');
}

function accessText(d: DriveView): string {
  if (isElectron()) return `Your user ${d.access === 'none' ? 'may not open' : 'may only read'} ${d.path}: Platter asks for administrator rights (Authorize…) when you ${d.access === 'none' ? 'image or write' : 'write'} it`;
  return d.access === 'none'
    ? `The server's user lacks access to ${d.path} (browser mode: start the server as a user who may open raw disks)`
    : `The server's user may only read ${d.path}`;
}

export function DrivesSection() {
  const [drives, setDrives] = useState<DriveView[] | undefined>();
  const [error, setError] = useState<string>();
  const [action, setAction] = useState<Action>(null);
  const refresh = async () => {
    try {
      setDrives(await api.drivesList({}));
      setError(undefined);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    void refresh();
  }, []);

  return (
    <section className="drives" aria-label="Drives">
      <div className="sidebar-head drives-head">
        <h2>Drives</h2>
        <button type="button" className="icon-button subtle" aria-label="Refresh drives" onClick={() => void refresh()}>
          ↻
        </button>
      </div>
      {error && <p className="small error">{error}</p>}
      <ul className="drive-list">
        {drives?.map((d) => {
          const block = driveWriteBlock(d);
          return (
            <li key={d.path} className="drive" aria-label={`Drive ${d.path}`}>
              <div className="drive-title">
                <span className="drive-model" title={d.model}>
                  {d.model}
                </span>
                <span className="drive-size">{formatBytes(d.size)}</span>
              </div>
              <div className="drive-meta small muted">
                {d.path}
                {d.removable && ' · removable'}
                {d.type === 'rom' && ' · optical'}
                {d.system && <strong className="drive-badge"> · system disk</strong>}
                {d.mountpoints.length > 0 && !d.system && <span> · mounted at {d.mountpoints.join(', ')}</span>}
              </div>
              {(d.access === 'none' || (isElectron() && d.access === 'read-only' && !block)) && <p className="small warning">{accessText(d)}</p>}
              <div className="drive-actions">
                <button type="button" disabled={d.access === 'none' && !isElectron()} aria-label={`Image drive ${d.path}`} onClick={() => setAction({ kind: 'image', drive: d })}>
                  Image this drive…
                </button>
                <button type="button" disabled={block !== undefined} title={block} aria-label={`Write image to drive ${d.path}`} onClick={() => setAction({ kind: 'write', drive: d })}>
                  Write image to drive…
                </button>
              </div>
            </li>
          );
        })}
        {drives && drives.length === 0 && <li className="muted small">No drives found.</li>}
      </ul>
      {action?.kind === 'image' && <ImageDriveDialog drive={action.drive} onClose={() => setAction(null)} />}
      {action?.kind === 'write' && <WriteDriveDialog drive={action.drive} onClose={() => setAction(null)} onDone={() => void refresh()} />}
    </section>
  );
}

function ImageDriveDialog({ drive, onClose }: { drive: DriveView; onClose(): void }) {
  const id = useId();
  const formats = useFormats((s) => s.formats);
  const load = useFormats((s) => s.load);
  const notify = useUi((s) => s.notify);
  const [format, setFormat] = useState('qcow2');
  const [target, setTarget] = useState('');
  const [verify, setVerify] = useState(true);
  const authorize = needsAuthorization(drive, 'image');
  useEffect(() => {
    void load();
  }, [load]);
  const writable = formats.filter((f) => f.canCreate).map((f) => f.name);
  const submit = async () => {
    if (!target.trim()) return;
    try {
      const { jobId } = await api.drivesImage({ drive: drive.path, target: { filename: target.trim(), format }, verify, elevate: authorize });
      onClose();
      const r = (await trackJob(jobId, { refreshLibrary: true })) as { verified?: boolean; message?: string } | undefined;
      if (r) notify(r.verified === false ? `Imaged ${drive.path}, but verification FAILED: ${r.message ?? 'contents differ'}` : `Imaged ${drive.path} into ${target.trim()}${r.verified ? ' (verified: identical)' : ''}`, r.verified === false ? 'error' : 'info');
    } catch (e) {
      notify((e as Error).message, 'error');
    }
  };
  return (
    <Dialog
      title={`Image ${drive.path}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="primary" disabled={!target.trim()} onClick={() => void submit()}>
            {authorize ? 'Authorize…' : 'Image drive'}
          </button>
        </>
      }
    >
      <p>
        Copies every byte of <strong>{drive.model}</strong> ({formatBytes(drive.size)}, {drive.path}) into a new image. Progress and Cancel are in the jobs panel.
      </p>
      {authorize && <AuthorizeNote drive={drive} what="read it into an image in a folder you own" />}
      <div className="field">
        <label htmlFor={`${id}-target`}>New image file</label>
        <input id={`${id}-target`} type="text" value={target} spellCheck={false} placeholder="/srv/images/usb-stick.qcow2" onChange={(e) => setTarget(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-format`}>Format</label>
        <select id={`${id}-format`} value={format} onChange={(e) => setFormat(e.target.value)}>
          {(writable.length ? writable : ['qcow2', 'raw']).map((f) => (
            <option key={f} value={f}>
              {f}
            </option>
          ))}
        </select>
      </div>
      <label className="checkbox">
        <input type="checkbox" checked={verify} onChange={(e) => setVerify(e.target.checked)} /> Verify afterwards (compare the image with the drive)
      </label>
    </Dialog>
  );
}

function WriteDriveDialog({ drive, onClose, onDone }: { drive: DriveView; onClose(): void; onDone(): void }) {
  const id = useId();
  const notify = useUi((s) => s.notify);
  const [image, setImage] = useState('');
  const [typed, setTyped] = useState('');
  const [sure, setSure] = useState(false);
  const confirmed = typed.trim() === drive.name && sure && image.trim() !== '';
  const authorize = needsAuthorization(drive, 'write');
  const submit = async () => {
    if (!confirmed) return;
    try {
      const { jobId } = await api.drivesWrite({ image: { filename: image.trim() }, drive: drive.path, confirm: { model: drive.model, size: drive.size }, verify: true, elevate: authorize });
      onClose();
      const r = (await trackJob(jobId)) as { verified?: boolean; message?: string } | undefined;
      if (r) notify(r.verified ? `Wrote ${image.trim()} to ${drive.path} (verified)` : `Wrote ${image.trim()} to ${drive.path}, but verification FAILED: ${r.message ?? 'contents differ'}`, r.verified ? 'info' : 'error');
      onDone();
    } catch (e) {
      notify((e as Error).message, 'error');
    }
  };
  return (
    <Dialog
      alert
      title={`Write image to ${drive.path}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="primary danger" disabled={!confirmed} onClick={() => void submit()}>
            {authorize ? 'Authorize…' : 'Erase and write'}
          </button>
        </>
      }
    >
      <p className="warning">
        Everything on <strong>{drive.model}</strong> — {formatBytes(drive.size)} ({drive.size} bytes), {drive.path} — will be overwritten.
      </p>
      <div className="field">
        <label htmlFor={`${id}-image`}>Image to write</label>
        <input id={`${id}-image`} type="text" value={image} spellCheck={false} placeholder="/srv/images/installer.qcow2" onChange={(e) => setImage(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-confirm`}>Type the drive's name ({drive.name}) to confirm</label>
        <input id={`${id}-confirm`} type="text" value={typed} spellCheck={false} autoComplete="off" onChange={(e) => setTyped(e.target.value)} />
      </div>
      <label className="checkbox">
        <input type="checkbox" checked={sure} onChange={(e) => setSure(e.target.checked)} /> I confirm this is {drive.model}, {formatBytes(drive.size)}, and its data may be erased
      </label>
      {authorize && <AuthorizeNote drive={drive} what="write the image onto it" />}
      <p className="small muted">The written range is verified against the image afterwards.</p>
    </Dialog>
  );
}

/** Says what Authorize… does: the OS's own dialog, for this one job only. */
function AuthorizeNote({ drive, what }: { drive: DriveView; what: string }) {
  return (
    <p className="small authorize-note" role="note">
      Your user may not {drive.access === 'none' ? 'open' : 'write'} {drive.path}. <strong>Authorize…</strong> asks your system for administrator rights to {what}; only this one job runs with them, and it shows its progress and can be cancelled like any other.
    </p>
  );
}
