// Virtual FAT sources (#20): "New image from folder…" converts fat:[floppy:][12:|16:|32:][label=X:]DIR
// into a new image (progress in the jobs panel), and "Add FAT folder…" puts the fat: view of a
// folder in the library (read-only: details, convert from it).

import { useId, useMemo, useState } from 'react';
import { api } from '../../api-client.ts';
import { useFormats } from '../../stores/formats.ts';
import { useLibrary } from '../../stores/library.ts';
import { trackJob } from '../../jobs-actions.ts';
import { basename, joinPath } from '../../util/format.ts';
import { FormDialog, FormError } from '../FormDialog.tsx';

export interface FatChoice {
  dir: string;
  floppy: boolean;
  fatType: '' | '12' | '16' | '32';
  label: string;
}

/** QEMU 7.2's vvfat name: fat:[floppy:][12:|16:|32:][label=NAME:]DIR. */
export function fatName(c: FatChoice): string {
  return `fat:${c.floppy ? 'floppy:' : ''}${c.fatType ? `${c.fatType}:` : ''}${c.label.trim() ? `label=${c.label.trim()}:` : ''}${c.dir.trim()}`;
}

function fatProblems(c: FatChoice): string[] {
  const p: string[] = [];
  if (!c.dir.trim()) p.push('Choose the folder whose files go on the FAT disk.');
  if (c.label.trim().length > 11) p.push('A FAT volume label has at most 11 characters.');
  if (/:/.test(c.label)) p.push('The label cannot contain ":".');
  if (c.floppy && c.fatType === '32') p.push('A floppy is FAT12 (1.44 MB) or FAT16 (2.88 MB), not FAT32.');
  return p;
}

function FatFields({ id, value, onChange }: { id: string; value: FatChoice; onChange(v: FatChoice): void }) {
  return (
    <>
      <div className="field span-2">
        <label htmlFor={`${id}-src`}>Source folder</label>
        <input id={`${id}-src`} type="text" value={value.dir} spellCheck={false} placeholder="/home/me/files-for-the-vm" onChange={(e) => onChange({ ...value, dir: e.target.value })} />
        <p className="help">A folder on the machine running Platter. Its tree is read as it is now; nothing in it is changed.</p>
      </div>
      <div className="field">
        <label htmlFor={`${id}-medium`}>Medium</label>
        <select id={`${id}-medium`} value={value.floppy ? 'floppy' : 'disk'} onChange={(e) => onChange({ ...value, floppy: e.target.value === 'floppy' })}>
          <option value="disk">Hard disk (MBR, 504 MiB)</option>
          <option value="floppy">Floppy (1.44 MB / 2.88 MB)</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-fat`}>FAT type</label>
        <select id={`${id}-fat`} value={value.fatType} onChange={(e) => onChange({ ...value, fatType: e.target.value as FatChoice['fatType'] })}>
          <option value="">Default (FAT16 disk, FAT12 floppy)</option>
          <option value="12">FAT12</option>
          <option value="16">FAT16</option>
          <option value="32">FAT32</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-label`}>Volume label</label>
        <input id={`${id}-label`} type="text" value={value.label} maxLength={11} spellCheck={false} placeholder="QEMU VVFAT" onChange={(e) => onChange({ ...value, label: e.target.value })} />
      </div>
    </>
  );
}

const initialChoice: FatChoice = { dir: '', floppy: false, fatType: '', label: '' };

export function NewFromFolderDialog({ onClose }: { onClose(): void }) {
  const id = useId();
  const allFormats = useFormats((s) => s.formats);
  const formats = useMemo(() => allFormats.filter((f) => f.canCreate), [allFormats]);
  const allRoots = useLibrary((s) => s.roots);
  const roots = allRoots.filter((r) => !r.includes(':'));
  const [choice, setChoice] = useState<FatChoice>(initialChoice);
  const [dir, setDir] = useState(roots[0] ?? '');
  const [name, setName] = useState('');
  const [formatName, setFormatName] = useState('raw');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const fileName = name.trim() || `${basename(choice.dir.trim().replace(/\/+$/, '')) || 'folder'}.${formatName === 'raw' ? 'img' : formatName}`;
  const target = joinPath(dir.trim(), fileName);

  const submit = async () => {
    const problems = [...fatProblems(choice), ...(!dir.trim() ? ['Choose the folder for the new image.'] : []), ...(/[/\\]/.test(fileName) ? ['Enter a file name (without a folder).'] : [])];
    if (problems.length) return setError(problems[0]);
    setBusy(true);
    setError(undefined);
    try {
      const source = fatName(choice);
      const { jobId } = await api.convert({ source: { filename: source, format: 'raw' }, target: { filename: target, format: formatName } });
      void trackJob(jobId, { refreshLibrary: true, addRoot: dir.trim(), select: target, doneText: `Made ${fileName} from ${choice.dir.trim()}` });
      onClose();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };

  return (
    <FormDialog title="New image from folder" onClose={onClose} action="Create image" busy={busy} onSubmit={submit}>
        <FatFields id={id} value={choice} onChange={setChoice} />
        <div className="field">
          <label htmlFor={`${id}-ofmt`}>Image format</label>
          <select id={`${id}-ofmt`} value={formatName} onChange={(e) => setFormatName(e.target.value)}>
            {formats.map((f) => (
              <option key={f.name} value={f.name}>
                {f.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-dir`}>Save in folder</label>
          <input id={`${id}-dir`} type="text" value={dir} spellCheck={false} onChange={(e) => setDir(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-name`}>File name</label>
          <input id={`${id}-name`} type="text" value={name} spellCheck={false} placeholder={fileName} onChange={(e) => setName(e.target.value)} />
        </div>
        <p className="span-2 help mono">{choice.dir.trim() ? `${fatName(choice)} → ${target}` : ''}</p>
        <FormError error={error} />
    </FormDialog>
  );
}

export function AddFatDialog({ onClose }: { onClose(): void }) {
  const id = useId();
  const addRoots = useLibrary((s) => s.addRoots);
  const select = useLibrary((s) => s.select);
  const [choice, setChoice] = useState<FatChoice>(initialChoice);
  const [error, setError] = useState<string>();
  const submit = () => {
    const problems = fatProblems(choice);
    if (problems.length) return setError(problems[0]);
    const n = fatName(choice);
    addRoots([n]);
    select(n);
    onClose();
  };
  return (
    <FormDialog title="Add FAT folder" onClose={onClose} action="Add to library" onSubmit={submit}>
        <FatFields id={id} value={choice} onChange={setChoice} />
        <p className="span-2 help">The folder shows as a read-only FAT disk (fat:): see its details, or convert it into an image.</p>
        <FormError error={error} />
    </FormDialog>
  );
}
