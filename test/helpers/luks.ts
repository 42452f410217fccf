// Shared set-up of the luks interop suites (against qemu and against cryptsetup): a temporary
// directory and a worker pool released after the file's tests, two passphrases in secrets s0 and
// s1, opening a luks image with one of them, and collecting everything Platter printed, returned
// or threw so that the last test can check that no passphrase leaked.

import { after } from 'node:test';
import assert from 'node:assert/strict';
import { openImage } from '../../core/drivers/open.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { WorkerPool } from '../../core/workers/pool.ts';
import type { BlockNode } from '../../core/block/node.ts';
import { tempDir } from './qemu.ts';

/** The passphrase (secret s0) of the luks fixtures in fixtures.json. */
export const FIXTURE_PASSPHRASE = 'platter-fixture';

/** Call at the top of a test file: its temporary directory and pool are released by `after`. */
export function luksInteropContext(prefix: string, pass: string, pass2: string) {
  const tmp = tempDir(prefix);
  const pool = new WorkerPool(2);
  /** Everything Platter printed, returned or threw in these tests (scanned for the passphrases). */
  const seen: string[] = [];
  after(async () => {
    await pool.close();
    tmp.cleanup();
  });

  /** A secret store with `pass` as s0 and `pass2` as s1. */
  function secrets(): SecretStore {
    const s = new SecretStore();
    s.add('s0', pass);
    s.add('s1', pass2);
    return s;
  }

  /** Open the luks image `f` with secret `id`. */
  async function open(f: string, id = 's0', readOnly = true): Promise<BlockNode> {
    return openImage({ driver: 'luks', file: { filename: f }, 'key-secret': id }, { secrets: secrets(), workers: pool, readOnly });
  }

  /** Open the luks fixture `f` read-only with its passphrase. */
  async function openFixture(f: string): Promise<BlockNode> {
    const s = new SecretStore();
    s.add('s0', FIXTURE_PASSPHRASE);
    return openImage({ driver: 'luks', file: { filename: f }, 'key-secret': 's0' }, { secrets: s, workers: pool, readOnly: true });
  }

  /** No collected text contains either passphrase. */
  function assertNoPassphraseSeen(): void {
    for (const text of seen) assert.ok(!text.includes(pass) && !text.includes(pass2), `leak in: ${text.slice(0, 200)}`);
  }

  return { tmp, pool, seen, secrets, open, openFixture, assertNoPassphraseSeen };
}
