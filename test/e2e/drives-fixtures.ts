// What the Drives e2e tests share: the "stick" (a 16 MiB loop device with a pattern and a zero run
// on it), the "installer" image written onto it, and the Write image dialog opened with that image.

import type { Locator, Page } from 'playwright-core';
import { qemuImg } from '../helpers/qemu.ts';
import { attachLoop, sizedFile } from '../helpers/loop-device.ts';
import { qemuWrite } from '../interop/harness.ts';

const MiB = 1 << 20;

/** A loop device over `backing` (16 MiB: 0x3c everywhere but 2 MiB of zeros at 4 MiB). */
export function attachStick(backing: string): string {
  sizedFile(backing, 16 * MiB);
  const dev = attachLoop(backing)!;
  qemuWrite(dev, 'raw', [[0, 16 * MiB, 0x3c], [4 * MiB, 2 * MiB, -1]]);
  return dev;
}

/** A 16 MiB qcow2 image with two data runs, to write onto the stick. */
export function makeInstaller(path: string): string {
  qemuImg('create', '-q', '-f', 'qcow2', path, '16M');
  qemuWrite(path, 'qcow2', [[MiB, 3 * MiB, 0x77], [10 * MiB, MiB, 0x78]]);
  return path;
}

/** The Drives section's "Write image to drive" dialog for `dev`, with `img` filled in. */
export async function openWriteDialog(page: Page, dev: string, img: string): Promise<Locator> {
  const item = page.getByRole('region', { name: 'Drives' }).getByRole('listitem', { name: `Drive ${dev}` });
  await item.getByRole('button', { name: `Write image to drive ${dev}` }).click();
  const dialog = page.getByRole('alertdialog', { name: `Write image to ${dev}` });
  await dialog.getByLabel('Image to write').fill(img);
  return dialog;
}
