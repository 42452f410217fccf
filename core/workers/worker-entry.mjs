// Worker thread entry: when running from TypeScript sources, register tsx first; a bundled build
// (Electron) replaces this file with its compiled twin.
import { register } from 'tsx/esm/api';

register();
await import('./worker-main.ts');
