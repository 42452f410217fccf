// "Add remote folder (ssh)…" (#21): host, port, user, folder path, host key check (known_hosts,
// none, or a fingerprint), an optional key file and its passphrase. The passphrase goes with one
// call as a secret (the main process unlocks the key for this run of the app and forgets the
// passphrase); the library keeps only the folder's ssh:// name. The folder's images become rows.

import { useId, useState } from 'react';
import { api } from '../../api-client.ts';
import { useLibrary } from '../../stores/library.ts';
import { useUi } from '../../stores/ui.ts';
import { FormDialog, FormError } from '../FormDialog.tsx';
import { PassphraseInput } from '../PassphraseInput.tsx';

const PASS_ID = 'ssh-key-passphrase';

export function SshFolderDialog({ onClose }: { onClose(): void }) {
  const id = useId();
  const addRoots = useLibrary((s) => s.addRoots);
  const notify = useUi((s) => s.notify);
  const [host, setHost] = useState('');
  const [port, setPort] = useState('22');
  const [user, setUser] = useState('');
  const [path, setPath] = useState('');
  const [check, setCheck] = useState<'yes' | 'no' | 'md5' | 'sha1' | 'sha256'>('yes');
  const [fingerprint, setFingerprint] = useState('');
  const [keyFile, setKeyFile] = useState('');
  const [passphrase, setPassphrase] = useState('');
  const [show, setShow] = useState(false);
  const [askPass, setAskPass] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const submit = async () => {
    const p = Number(port.trim() || '22');
    if (!host.trim()) return setError('Enter the ssh server.');
    if (!Number.isInteger(p) || p < 1 || p > 65535) return setError('The port is a number from 1 to 65535.');
    if (!path.trim().startsWith('/')) return setError('Enter the folder as an absolute path on the server (/srv/images).');
    if (check !== 'yes' && check !== 'no' && !fingerprint.trim()) return setError('Enter the host key fingerprint.');
    if (keyFile.trim() && !user.trim()) return setError('Enter the user the key file belongs to.');
    setBusy(true);
    setError(undefined);
    try {
      const hostKeyCheck = check === 'yes' || check === 'no' ? check : `${check}:${fingerprint.trim().replace(/:/g, '')}`;
      const r = await api.sshFolder({
        host: host.trim(),
        port: p,
        ...(user.trim() ? { user: user.trim() } : {}),
        path: path.trim(),
        hostKeyCheck,
        ...(keyFile.trim() ? { keyFile: keyFile.trim() } : {}),
        ...(passphrase ? { passphraseSecret: PASS_ID, secrets: [{ id: PASS_ID, data: passphrase }] } : {}),
      });
      setPassphrase('');
      addRoots([r.root]);
      notify(`${r.images.length} image${r.images.length === 1 ? '' : 's'} in ${host.trim()}:${path.trim()}`);
      onClose();
    } catch (e) {
      const err = e as Error & { code?: string };
      // A key that needs its passphrase: ask for it (the prompt stays until it opens the key).
      if (err.code === 'WrongPassphrase') setAskPass(true);
      setError(err.message);
      setBusy(false);
    }
  };

  return (
    <FormDialog title="Add remote folder (ssh)" onClose={onClose} action="Add folder" busy={busy} busyAction="Connecting…" onSubmit={submit}>
        <div className="field">
          <label htmlFor={`${id}-host`}>Host</label>
          <input id={`${id}-host`} type="text" value={host} spellCheck={false} placeholder="server.example.org" onChange={(e) => setHost(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-port`}>Port</label>
          <input id={`${id}-port`} type="text" inputMode="numeric" value={port} onChange={(e) => setPort(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-user`}>User</label>
          <input id={`${id}-user`} type="text" value={user} spellCheck={false} placeholder="(your user name)" onChange={(e) => setUser(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-path`}>Folder on the server</label>
          <input id={`${id}-path`} type="text" value={path} spellCheck={false} placeholder="/var/lib/libvirt/images" onChange={(e) => setPath(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-check`}>Host key check</label>
          <select id={`${id}-check`} value={check} onChange={(e) => setCheck(e.target.value as typeof check)}>
            <option value="yes">known_hosts (default)</option>
            <option value="no">None (trust any host key)</option>
            <option value="sha256">SHA-256 fingerprint</option>
            <option value="sha1">SHA-1 fingerprint</option>
            <option value="md5">MD5 fingerprint</option>
          </select>
        </div>
        {check !== 'yes' && check !== 'no' && (
          <div className="field">
            <label htmlFor={`${id}-fp`}>Fingerprint</label>
            <input id={`${id}-fp`} type="text" className="mono" value={fingerprint} spellCheck={false} onChange={(e) => setFingerprint(e.target.value)} />
          </div>
        )}
        <div className="field span-2">
          <label htmlFor={`${id}-key`}>Key file (optional)</label>
          <input id={`${id}-key`} type="text" value={keyFile} spellCheck={false} placeholder="~/.ssh/id_ed25519 (without: ssh-agent, then your default keys)" onChange={(e) => setKeyFile(e.target.value)} />
        </div>
        {(askPass || passphrase) && keyFile.trim() && (
          <div className="span-2">
            <PassphraseInput id={`${id}-pass`} label="Key passphrase" value={passphrase} onValue={setPassphrase} show={show} onToggleShow={() => setShow(!show)} autoComplete="off" />
            <p className="help">Used once to unlock the key for this run of Platter; never saved.</p>
          </div>
        )}
        <FormError error={error} />
    </FormDialog>
  );
}
