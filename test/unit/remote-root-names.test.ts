// The names remote library roots are kept by (core/api/routes-remote.ts sshFolderRoot, isRemoteRoot)
// and shown by (renderer/stores/remote.ts rootLabel): an ssh folder's root is an ssh:// URI the ssh
// driver parses (host key check and key file path in its query, nothing secret can be put in it),
// local paths are never taken for remote names, and each kind gets a short sidebar label.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRemoteRoot, sshFolderRoot } from '../../core/api/routes-remote.ts';
import { parseSshUri, sshLocation } from '../../core/protocols/ssh/options.ts';
import { isRemoteRootName, rootLabel } from '../../renderer/stores/remote.ts';

test('an ssh folder root parses back to its server, user, folder and host key check', () => {
  const root = sshFolderRoot({ host: 'h.example', port: 2222, user: 'al ice', path: '/srv/images', hostKeyCheck: 'sha256:ab12', keyFile: '/home/a/.ssh/id_ed25519' });
  assert.equal(root, 'ssh://al%20ice@h.example:2222/srv/images/?host_key_check=sha256%3Aab12&key_file=%2Fhome%2Fa%2F.ssh%2Fid_ed25519');
  const loc = sshLocation(parseSshUri(root));
  assert.deepEqual([loc.host, loc.port, loc.user, loc.path, loc.hostKeyCheck], ['h.example', '2222', 'al ice', '/srv/images/', { mode: 'hash', type: 'sha256', hash: 'ab12' }]);
  assert.equal(sshFolderRoot({ host: '::1', port: 22, path: 'x', hostKeyCheck: 'no' }), 'ssh://[::1]:22/x/?host_key_check=no');
});

test('remote roots are told from local paths the same way in core and renderer, and labelled shortly', () => {
  const cases: [string, boolean, string][] = [
    ['/var/lib/images', false, 'images'],
    ['/tmp/nbd:odd/disk.qcow2', false, 'disk.qcow2'],
    ['nbd://127.0.0.1:10809/disk0', true, 'NBD disk0'],
    ['nbd+unix:///?socket=/run/q.sock', true, 'NBD q.sock'],
    ['fat:floppy:12:label=BOOT:/home/a/files/', true, 'fat: files'],
    ['ssh://root@h:22/srv/images/?host_key_check=no', true, 'h:22/srv/images/'],
    ['iscsi://127.0.0.1:3260/iqn.2026-12.org.x:disk/1', true, 'iqn.2026-12.org.x:disk LUN 1'],
  ];
  for (const [root, remote, label] of cases) {
    assert.equal(isRemoteRoot(root), remote, root);
    assert.equal(isRemoteRootName(root), remote, root);
    assert.equal(rootLabel(root), label, root);
  }
});
