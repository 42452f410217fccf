// The open dialog of issue #16's views (one mount point in App.tsx).

import { useLibrary } from '../../stores/library.ts';
import { useViews } from '../../stores/views.ts';
import { AllocationMapDialog } from './AllocationMap.tsx';
import { AmendDialog, BenchDialog, CompareDialog, RebaseDialog } from './Forms.tsx';

export function ViewsDialogs() {
  const dialog = useViews((s) => s.dialog);
  const target = useViews((s) => s.target);
  const close = useViews((s) => s.close);
  const entry = useLibrary((s) => s.entries.find((e) => e.path === target));
  if (!target) return null;
  switch (dialog) {
    case 'map':
      return <AllocationMapDialog image={target} {...(entry?.format ? { format: entry.format } : {})} onClose={close} />;
    case 'compare':
      return <CompareDialog image={target} onClose={close} />;
    case 'amend':
      return <AmendDialog image={target} onClose={close} />;
    case 'rebase':
      return <RebaseDialog image={target} onClose={close} />;
    case 'bench':
      return <BenchDialog image={target} onClose={close} />;
    default:
      return null;
  }
}
