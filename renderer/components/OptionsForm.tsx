// A form generated from a format's option schema (FormatOptionJson: the same OptionSpec the CLI's
// `-o` parser uses): one labelled control per option with its help text, allowed values and
// validation; options marked advanced are folded. Values are kept as text/booleans and turned into
// the service's `options` record by optionsToSend().

import { useId } from 'react';
import type { FormatOptionJson } from '../../core/api/types.ts';
import { checkOptionText } from '../../core/shared/options.ts';
import { formatBytes, parseSize } from '../util/format.ts';

export type FormValues = Record<string, string | boolean>;

/** The value a control starts with: the schema's default. */
export function initialValues(schema: FormatOptionJson[]): FormValues {
  const out: FormValues = {};
  for (const o of schema) {
    if (o.type === 'bool') out[o.name] = o.default === true;
    else out[o.name] = o.default === undefined ? '' : String(o.default);
  }
  return out;
}

/** A message in words when `value` breaks the option's rules (qemu-img's words: the same check
 *  the CLI's -o parser makes, plus the range rules a driver checks later); undefined when fine. */
export function validateOption(o: FormatOptionJson, value: string | boolean): string | undefined {
  if (typeof value === 'boolean' || value === '') return undefined;
  if (o.type !== 'size' && o.type !== 'number' && o.type !== 'enum') return undefined;
  return checkOptionText(o, value, { form: true }).error;
}

/** The options to send: only those the user changed from the default (as qemu-img -o lists them). */
export function optionsToSend(schema: FormatOptionJson[], values: FormValues): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const o of schema) {
    const v = values[o.name];
    if (v === undefined || v === '') continue;
    const def = o.type === 'bool' ? o.default === true : o.default === undefined ? '' : String(o.default);
    if (v === def) continue;
    if (o.type === 'size') out[o.name] = parseSize(v as string) ?? (v as string);
    else if (o.type === 'number') out[o.name] = Number(v);
    else out[o.name] = v;
  }
  return out;
}

export function formErrors(schema: FormatOptionJson[], values: FormValues): string[] {
  return schema.map((o) => validateOption(o, values[o.name] ?? '')).filter((x): x is string => Boolean(x));
}

function OptionControl({ o, value, onChange }: { o: FormatOptionJson; value: string | boolean; onChange(v: string | boolean): void }) {
  const id = useId();
  const helpId = `${id}-help`;
  const error = validateOption(o, value);
  const label = o.name;
  if (o.type === 'bool') {
    return (
      <div className="field field-check">
        <input id={id} type="checkbox" checked={value === true} aria-describedby={helpId} onChange={(e) => onChange(e.target.checked)} />
        <label htmlFor={id}>{label}</label>
        <p id={helpId} className="help">
          {o.help}
        </p>
      </div>
    );
  }
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {o.type === 'enum' && o.values ? (
        <select id={id} value={String(value)} aria-describedby={helpId} onChange={(e) => onChange(e.target.value)}>
          {o.default === undefined && <option value="">(default)</option>}
          {o.values.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
      ) : (
        <input
          id={id}
          type="text"
          inputMode={o.type === 'number' ? 'numeric' : undefined}
          value={String(value)}
          placeholder={o.default !== undefined ? String(o.default) : o.type === 'size' ? 'e.g. 64K' : ''}
          aria-describedby={helpId}
          aria-invalid={error ? true : undefined}
          spellCheck={false}
          onChange={(e) => onChange(e.target.value)}
        />
      )}
      <p id={helpId} className={error ? 'help error' : 'help'}>
        {error ?? o.help}
        {!error && o.type === 'size' && (o.min !== undefined || o.max !== undefined) && (
          <span className="range">
            {' '}
            ({o.min !== undefined ? formatBytes(o.min) : ''}–{o.max !== undefined ? formatBytes(o.max) : ''}
            {o.powerOfTwo ? ', power of two' : ''})
          </span>
        )}
      </p>
    </div>
  );
}

export function OptionsForm({ schema, values, onChange, title = 'Format options', advancedLabel = 'Advanced options' }: { schema: FormatOptionJson[]; values: FormValues; onChange(v: FormValues): void; title?: string; advancedLabel?: string }) {
  const basic = schema.filter((o) => !o.advanced);
  const advanced = schema.filter((o) => o.advanced);
  const set = (name: string) => (v: string | boolean) => onChange({ ...values, [name]: v });
  if (schema.length === 0) return <p className="muted">This format has no options.</p>;
  return (
    <fieldset className="options">
      <legend>{title}</legend>
      <div className="options-grid">
        {basic.map((o) => (
          <OptionControl key={o.name} o={o} value={values[o.name] ?? ''} onChange={set(o.name)} />
        ))}
      </div>
      {advanced.length > 0 && (
        <details className="advanced">
          <summary>
            {advancedLabel} ({advanced.length})
          </summary>
          <div className="options-grid">
            {advanced.map((o) => (
              <OptionControl key={o.name} o={o} value={values[o.name] ?? ''} onChange={set(o.name)} />
            ))}
          </div>
        </details>
      )}
    </fieldset>
  );
}
