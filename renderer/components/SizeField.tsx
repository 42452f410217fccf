// A virtual-size field: a number and a binary unit (B, KiB, MiB, GiB, TiB), as bytes.

import { useId } from 'react';
import { SIZE_UNITS } from '../util/format.ts';

export interface SizeValue {
  amount: string;
  unit: number;
}

export function sizeBytes(v: SizeValue): number | undefined {
  if (!/^\d+(\.\d+)?$/.test(v.amount.trim())) return undefined;
  const n = Math.round(Number(v.amount) * v.unit);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export function SizeField({ value, onChange, label = 'Virtual size' }: { value: SizeValue; onChange(v: SizeValue): void; label?: string }) {
  const id = useId();
  const bad = value.amount !== '' && sizeBytes(value) === undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <div className="size-field">
        <input id={id} type="text" inputMode="decimal" value={value.amount} aria-invalid={bad || undefined} onChange={(e) => onChange({ ...value, amount: e.target.value })} />
        <select aria-label={`${label} unit`} value={value.unit} onChange={(e) => onChange({ ...value, unit: Number(e.target.value) })}>
          {SIZE_UNITS.map((u) => (
            <option key={u.label} value={u.factor}>
              {u.label}
            </option>
          ))}
        </select>
      </div>
      {bad && <p className="help error">Enter a number, such as 20 or 1.5</p>}
    </div>
  );
}
