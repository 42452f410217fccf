// Toolbar buttons for issue #16's views: the allocation map and the compare, amend, rebase and
// bench forms, each acting on the selected image.

import { selectedEntry, useLibrary } from '../../stores/library.ts';
import { useViews, type ViewsDialog } from '../../stores/views.ts';

const BUTTONS: [Exclude<ViewsDialog, null>, string][] = [
  ['map', 'Allocation map…'],
  ['compare', 'Compare…'],
  ['amend', 'Amend…'],
  ['rebase', 'Rebase…'],
  ['bench', 'Bench…'],
];

export function ViewsActions() {
  const entry = useLibrary(selectedEntry);
  const open = useViews((s) => s.open);
  const disabled = !entry || Boolean(entry.error);
  return (
    <>
      {BUTTONS.map(([kind, label]) => (
        <button key={kind} type="button" disabled={disabled} onClick={() => entry && open(kind, entry.path)}>
          {label}
        </button>
      ))}
    </>
  );
}
