// `npm run serve`: Platter in browser mode, for headless hosts (and wherever Electron's binary is
// missing). Serves dist/renderer and the service on 127.0.0.1 and prints the URL with its token.
//   node --import tsx electron/serve.ts [--port N] [--library DIR]... [--open]
// Build the renderer first (`node scripts/build-app.mjs --renderer`; npm run serve does).

import { existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPlatterService } from '../core/api/service.ts';
import { createDispatcher } from './dispatch.ts';
import { startBrowserServer, type BrowserServer } from './browser-server.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RENDERER_DIR = join(ROOT, 'dist/renderer');
const VERSION = '0.1.0';

export interface ServeOptions {
  port?: number;
  library?: string[];
  rendererDir?: string;
  token?: string;
  log?: (line: string) => void;
}

/** Start browser mode in this process (the e2e tests call this). */
export async function serve(opts: ServeOptions = {}): Promise<BrowserServer & { shutdown(): Promise<void> }> {
  const rendererDir = opts.rendererDir ?? RENDERER_DIR;
  if (!existsSync(join(rendererDir, 'index.html'))) {
    throw new Error(`the renderer is not built (${rendererDir}/index.html missing): run \`node scripts/build-app.mjs --renderer\``);
  }
  const service = createPlatterService({ warn: () => {} });
  const dispatcher = createDispatcher({
    service,
    config: { mode: 'browser', roots: (opts.library ?? []).map((p) => resolve(p)), version: VERSION, platform: process.platform },
  });
  const server = await startBrowserServer({
    dispatcher,
    rendererDir,
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  return {
    ...server,
    shutdown: async () => {
      await server.close();
      await dispatcher.close();
    },
  };
}

function parseArgs(argv: string[]): ServeOptions {
  const out: ServeOptions = { library: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--port') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port expects 0..65535`);
      out.port = n;
    } else if (a === '--library') out.library!.push(value());
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run serve -- [--port N] [--library DIR]...');
      process.exit(0);
    } else throw new Error(`unknown argument '${a}' (expecting --port N or --library DIR)`);
  }
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const s = await serve({ ...parseArgs(process.argv.slice(2)), log: (l) => console.error(l) });
    console.log(`Platter (browser mode) is running. Open this URL (it holds this launch's access token):\n  ${s.url}`);
    const stop = () => {
      void s.shutdown().then(() => process.exit(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } catch (e) {
    console.error(`platter serve: ${(e as Error).message}`);
    process.exit(1);
  }
}
