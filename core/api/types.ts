// The data shapes of Platter's service API (docs/architecture.md "core/api"): what the CLI and the
// desktop app exchange with core. Results mirror qemu-img's --output=json shapes (same kebab-case
// keys, qemu-img.c / qapi/block-core.json ImageInfo, ImageCheck, MapEntry, BlockMeasureInfo), so
// the CLI prints them as they are and the GUI shows what a qemu-img user expects. Plain data only:
// everything here survives structured clone and JSON (IPC, WebSocket).

import type { MapEntryLike } from '../shared/allocation-map.ts';

/** Progress of a job, as every job reports it. */
export interface JobProgress {
  /** Units done (bytes for data jobs). */
  done: number;
  /** Units in all; may grow while the job learns more (qemu-img's progress does too). */
  total: number;
  /** What the job is doing now, in words ("copying", "comparing", "checking"). */
  phase?: string;
}

/** One internal snapshot (qemu-img info "snapshots" items; qapi SnapshotInfo). */
export interface SnapshotInfoJson {
  id: string;
  name: string;
  'vm-state-size': number;
  'date-sec': number;
  'date-nsec': number;
  'vm-clock-sec': number;
  'vm-clock-nsec': number;
  icount?: number;
}

/** qemu-img info --output=json (qapi ImageInfo). */
export interface ImageInfo {
  'virtual-size': number;
  filename: string;
  format: string;
  'cluster-size'?: number;
  'actual-size'?: number;
  'dirty-flag'?: boolean;
  encrypted?: boolean;
  'format-specific'?: { type: string; data: Record<string, unknown> };
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  snapshots?: SnapshotInfoJson[];
  children?: { name: string; info: ImageInfo }[];
}

/** qemu-img check --output=json (qapi ImageCheck), plus the findings in words. */
export interface CheckReport {
  filename: string;
  format: string;
  'check-errors': number;
  'image-end-offset'?: number;
  corruptions?: number;
  leaks?: number;
  'corruptions-fixed'?: number;
  'leaks-fixed'?: number;
  'total-clusters'?: number;
  'allocated-clusters'?: number;
  'fragmented-clusters'?: number;
  'compressed-clusters'?: number;
  /** Findings in words (qemu-img prints these on stderr/stdout as "ERROR ..." / "Leaked ..."). */
  messages: string[];
  /** Which of `messages` (their indexes) qemu-img reports as errors, after its program name
   *  ("qemu-img: ERROR failed to read the snapshot table: ..."). */
  errorReports?: number[];
  /** qemu-img check's exit status for this result: 0 clean, 1 not completed, 2 corrupt, 3 leaks. */
  exitCode: 0 | 1 | 2 | 3;
  /** Leaks/corruptions found before a repair (qemu-img prints "The following inconsistencies were found and repaired"). */
  repaired?: { corruptions: number; leaks: number };
  /** After a repair: the findings of the check run again on the repaired image (qemu-img
   *  prints them after "Double checking the fixed image now..."). */
  recheckMessages?: string[];
  /** The same as errorReports, for recheckMessages. */
  recheckErrorReports?: number[];
  /** The check could not complete (qemu-img: "Check failed: <this>"). */
  failed?: string;
}

/** One qemu-img map --output=json entry (qapi MapEntry). */
export interface MapEntry extends MapEntryLike {
  offset?: number;
  filename?: string;
}

/** qemu-img measure --output=json (qapi BlockMeasureInfo). */
export interface MeasureInfo {
  required: number;
  'fully-allocated': number;
  bitmaps?: number;
}

/** qemu-img compare's answer. */
export interface CompareResult {
  identical: boolean;
  /** First differing byte offset (qemu-img prints "Content mismatch at offset N!"). */
  mismatchOffset?: number;
  /** What qemu-img compare prints on stdout ("Images are identical.", "Content mismatch at offset N!"). */
  message: string;
  /** "Warning: Image size mismatch!" when sizes differ (not strict). */
  warning?: string;
}

export interface ConvertResult {
  target: string;
  format: string;
  /** Bytes read from the source and written to the target. */
  bytesCopied: number;
  /** Bytes skipped as holes or zeros. */
  bytesSkipped: number;
}

export interface CreateResult {
  filename: string;
  format: string;
  size: number;
  /** The options in effect (qemu-img's "Formatting 'x', fmt=... size=..." line lists them). */
  options: Record<string, string | number | boolean>;
}

export interface CommitResult {
  base: string;
  bytesCopied: number;
  emptied: boolean;
}

export interface RebaseResult {
  image: string;
  backingFile: string | null;
  bytesCopied: number;
}

export interface ResizeResult {
  filename: string;
  oldSize: number;
  newSize: number;
}

export interface FormatOptionJson {
  name: string;
  type: 'size' | 'number' | 'bool' | 'string' | 'enum' | 'secret-id' | 'path';
  help: string;
  default?: string | number | boolean;
  values?: string[];
  min?: number;
  max?: number;
  powerOfTwo?: boolean;
  advanced?: boolean;
}

/** A format driver as the GUI's create/convert dialogs need it. */
export interface FormatDescription {
  name: string;
  description: string;
  canCreate: boolean;
  readOnly: boolean;
  supportsBacking: boolean;
  /** convert -c: false, or how compressed clusters are written (FormatDriver.compressedWrites). */
  compression: false | 'any-order' | 'in-order';
  /** The format's encryption (FormatDriver.encryption): how a passphrase is named, when a new
   *  image is LUKS-encrypted, and the LUKS cipher options of its schema, with their defaults. */
  encryption?: {
    keySecret: 'key-secret' | 'encrypt.key-secret';
    luks?: true | { option: string; value: string };
    cipherOptions: FormatOptionJson[];
  };
  createOptions: FormatOptionJson[];
  amendOptions: FormatOptionJson[];
}

/** Events a service emits about its jobs (pushed to the renderer on 'platter:event'). Results and
 *  errors are plain data; no event ever carries secret bytes. */
export type JobEvent =
  | { type: 'job-started'; jobId: string; method: string; label: string }
  | { type: 'job-progress'; jobId: string; progress: JobProgress }
  | { type: 'job-done'; jobId: string; result: unknown }
  | { type: 'job-failed'; jobId: string; error: SerializedError };

/** BlockError.toJSON(), or the same shape for other errors. */
export interface SerializedError {
  name: string;
  kind: string;
  message: string;
  context?: { path?: string; offset?: number; op?: string; node?: string };
  hint?: string;
  /** BlockError.code: what the failure is, for callers that act on it (e.g. 'WrongPassphrase'). */
  code?: string;
}

export type JobState = 'running' | 'done' | 'failed' | 'cancelled';

export interface JobSummary {
  jobId: string;
  method: string;
  label: string;
  state: JobState;
  progress: JobProgress;
}
