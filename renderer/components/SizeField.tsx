// A virtual-size field: a number and a binary unit (B, KiB, MiB, GiB, TiB), as bytes.

import { useId } from 'react';
import { checkImageSize } from '../../core/shared/sizes.ts';
import { SIZE_UNITS } from '../util/format.ts';

export interface SizeValue {
  amount: string;
  unit: number;
}

/** The amount and unit as qemu-img's size text ("20" GiB -> "20G"), checked by the CLI's parser:
 *  the bytes, or qemu-img's message. */
export function checkSize(v: SizeValue): { bytes: number } | { error: string } {
  const suffix = SIZE_UNITS.find((u) => u.factor === v.unit)?.suffix ?? '';
  const r = checkImageSize(`${v.amount}${suffix}`);
  if ('error' in r) return { error: r.error };
  if (r.bytes > BigInt(Number.MAX_SAFE_INTEGER)) return { error: `Image size ${r.bytes} is beyond what Platter can address exactly` };
  return { bytes: Number(r.bytes) };
}

export function sizeBytes(v: SizeValue): number | undefined {
  const r = checkSize(v);
  return 'bytes' in r ? r.bytes : undefined;
}

export function SizeField({ value, onChange, label = 'Virtual size' }: { value: SizeValue; onChange(v: SizeValue): void; label?: string }) {
  const id = useId();
  const checked = value.amount === '' ? undefined : checkSize(value);
  const bad = checked && 'error' in checked ? checked.error : undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <div className="size-field">
        <input id={id} type="text" inputMode="decimal" value={value.amount} aria-invalid={bad ? true : undefined} onChange={(e) => onChange({ ...value, amount: e.target.value })} />
        <select aria-label={`${label} unit`} value={value.unit} onChange={(e) => onChange({ ...value, unit: Number(e.target.value) })}>
          {SIZE_UNITS.map((u) => (
            <option key={u.label} value={u.factor}>
              {u.label}
            </option>
          ))}
        </select>
      </div>
      {bad && <p className="help error">{bad}</p>}
    </div>
  );
}
