// "Resize" (qemu-img resize [--shrink]): a new virtual size with units. Growing is safe; shrinking
// cuts off the end of the disk, so it needs the explicit "shrink" box (as qemu-img needs --shrink)
// and says what it does.

import { useState } from 'react';
import { api } from '../api-client.ts';
import { useLibrary } from '../stores/library.ts';
import { useUi } from '../stores/ui.ts';
import { basename, formatBytes } from '../util/format.ts';
import { Dialog } from './Dialog.tsx';
import { SizeField, sizeBytes, type SizeValue } from './SizeField.tsx';
import { OperationPreview } from './safety/OperationPreview.tsx';
import { FormError } from './FormDialog.tsx';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

function initialSize(bytes: number | undefined): SizeValue {
  if (!bytes) return { amount: '', unit: GIB };
  if (bytes % GIB === 0) return { amount: String(bytes / GIB), unit: GIB };
  if (bytes % MIB === 0) return { amount: String(bytes / MIB), unit: MIB };
  return { amount: String(bytes), unit: 1 };
}

export function ResizeDialog({ image, onClose }: { image: string; onClose(): void }) {
  const entry = useLibrary((s) => s.entries.find((e) => e.path === image));
  const refresh = useLibrary((s) => s.refresh);
  const notify = useUi((s) => s.notify);
  const [size, setSize] = useState<SizeValue>(() => initialSize(entry?.virtualSize));
  const [shrink, setShrink] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const bytes = sizeBytes(size);
  const current = entry?.virtualSize ?? 0;
  const shrinking = bytes !== undefined && bytes < current;

  const submit = async () => {
    if (bytes === undefined) return setError('Enter the new size.');
    if (shrinking && !shrink) return setError('The new size is smaller than the disk: tick "Shrink" to cut off its end.');
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.resize({ image: { filename: image, ...(entry?.format ? { format: entry.format } : {}) }, size: bytes, ...(shrinking ? { shrink: true } : {}) });
      notify(`Image resized: ${basename(image)} is now ${formatBytes(r.newSize)}.`);
      await refresh();
      onClose();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };

  return (
    <Dialog
      title={`Resize ${basename(image)}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className={shrinking ? 'primary danger' : 'primary'} disabled={busy} onClick={() => void submit()}>
            Resize
          </button>
        </>
      }
    >
      <p className="muted">Current virtual size: {formatBytes(current)}</p>
      <SizeField label="New virtual size" value={size} onChange={setSize} />
      {shrinking && (
        <div className="field field-check">
          <input id="resize-shrink" type="checkbox" checked={shrink} onChange={(e) => setShrink(e.target.checked)} />
          <label htmlFor="resize-shrink">Shrink (--shrink)</label>
          <p className="help">Data past the new end is lost. Shrink the partitions and file systems inside the guest first.</p>
        </div>
      )}
      {shrinking && bytes !== undefined && <OperationPreview op={{ kind: 'resize', image: { filename: image, ...(entry?.format ? { format: entry.format } : {}) }, size: bytes }} />}
      <FormError error={error} className="form-error" />
    </Dialog>
  );
}
