// macOS's "/dev/cdrom" alias (core/host/darwin-cdrom.ts, QEMU 7.2 file-posix.c hdev_open on
// __APPLE__) and the property-list reader it uses (core/host/plist.ts), tested on Linux with
// registry answers written by hand in the shape `ioreg -r -a -c IODVDMedia|IOCDMedia` prints
// (Apple's plist DTD; the keys IOMedia publishes: "BSD Name", "Ejectable", "Whole", ...): no Mac
// runs here, so the lookup gets these answers through its `ioreg` seam.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePlist } from '../../core/host/plist.ts';
import { bsdDevicePath, firstEjectableBsdName, NO_BSD_PATH, NO_OPTICAL_MEDIUM, NO_WORKING_PARTITION, resolveDarwinCdrom, unmountingDirections, type CdromLookup, type OpticalMediaClass } from '../../core/host/darwin-cdrom.ts';
import { BlockError } from '../../core/errors.ts';

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n';

/** One IOMedia object as ioreg -a lists it (children left out). */
function media(o: { cls: string; bsd?: string; ejectable: boolean; name: string }): string {
  return `\t<dict>
${o.bsd !== undefined ? `\t\t<key>BSD Name</key>\n\t\t<string>${o.bsd}</string>\n` : ''}\t\t<key>BSD Unit</key>
\t\t<integer>${o.bsd ? Number(/\d+/.exec(o.bsd)![0]) : 0}</integer>
\t\t<key>Content</key>
\t\t<string>CD_partition_scheme</string>
\t\t<key>Ejectable</key>
\t\t<${o.ejectable}/>
\t\t<key>IOObjectClass</key>
\t\t<string>${o.cls}</string>
\t\t<key>IORegistryEntryChildren</key>
\t\t<array/>
\t\t<key>IORegistryEntryName</key>
\t\t<string>${o.name}</string>
\t\t<key>Preferred Block Size</key>
\t\t<integer>2048</integer>
\t\t<key>Removable</key>
\t\t<true/>
\t\t<key>Size</key>
\t\t<integer>4697620480</integer>
\t\t<key>TOC</key>
\t\t<data>
\t\tAAAB
\t\t</data>
\t\t<key>Whole</key>
\t\t<true/>
\t\t<key>Writable</key>
\t\t<false/>
\t</dict>
`;
}
const answer = (...entries: string[]) => `${HEAD}<array>\n${entries.join('')}</array>\n</plist>\n`;

function lookup(by: Partial<Record<OpticalMediaClass, string>>, opening: string[] = []): CdromLookup & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    ioreg: async (cls) => {
      asked.push(cls);
      return by[cls] ?? '';
    },
    opens: (p) => {
      asked.push(p);
      return opening.includes(p);
    },
  };
}

test('plist: the value types, entities, empty forms; malformed lists are refused', () => {
  const v = parsePlist(`${HEAD}<dict><key>a &amp; b</key><string>x &lt;y&gt; &#65;&#x42;</string><key>n</key><integer>-12</integer><key>big</key><integer>18446744073709551615</integer><key>r</key><real>1.5</real><key>e</key><string/><key>t</key><true/><key>f</key><false/><key>d</key><data>AAEC</data><key>l</key><array><integer>1</integer><array/><dict/></array></dict></plist>`);
  assert.deepEqual(JSON.parse(JSON.stringify(v)), { 'a & b': 'x <y> AB', n: -12, big: '18446744073709551615', r: 1.5, e: '', t: true, f: false, d: { type: 'Buffer', data: [0, 1, 2] }, l: [1, [], {}] });
  for (const bad of ['', '<plist><dict><key>a</key></dict></plist>', `${HEAD}<array><string>x</array></plist>`, `${HEAD}<foo/></plist>`, `${HEAD}<string>a</string></plist>tail`, `${HEAD}<integer>1.5</integer></plist>`, `${HEAD}<string>&nbsp;</string></plist>`, `${HEAD}${'<array>'.repeat(100)}`]) {
    assert.throws(() => parsePlist(bad), /^Error: plist: /, bad.slice(0, 60));
  }
});

test('the first ejectable medium names the node; /dev/rdiskN with cache.direct=on', () => {
  const list = parsePlist(answer(media({ cls: 'IODVDMedia', bsd: 'disk4', ejectable: false, name: 'Fixed' }), media({ cls: 'IODVDMedia', bsd: 'disk3', ejectable: true, name: 'HL-DT-ST DVDRW Media' }), media({ cls: 'IOBDMedia', bsd: 'disk5', ejectable: true, name: 'BD' })));
  assert.equal(firstEjectableBsdName(list), 'disk3');
  assert.equal(firstEjectableBsdName(parsePlist(answer(media({ cls: 'IODVDMedia', ejectable: true, name: 'no bsd' })))), '');
  assert.equal(firstEjectableBsdName(parsePlist(answer())), undefined);
  assert.equal(bsdDevicePath('disk3', false), '/dev/disk3');
  assert.equal(bsdDevicePath('disk3', true), '/dev/rdisk3');
  assert.throws(() => bsdDevicePath('../etc/passwd', false), /Could not get BSD path/);
});

test('a DVD is looked up first and opens as the whole disc', async () => {
  const l = lookup({ IODVDMedia: answer(media({ cls: 'IODVDMedia', bsd: 'disk3', ejectable: true, name: 'DVD' })), IOCDMedia: answer(media({ cls: 'IOCDMedia', bsd: 'disk2', ejectable: true, name: 'CD' })) });
  assert.equal(await resolveDarwinCdrom(false, l), '/dev/disk3');
  assert.deepEqual(l.asked, ['IODVDMedia']);
  assert.equal(await resolveDarwinCdrom(true, l), '/dev/rdisk3');
});

test('a CD opens through its first partition that opens: s0, then s1', async () => {
  const cd = answer(media({ cls: 'IOCDMedia', bsd: 'disk2', ejectable: true, name: 'CD' }));
  const l = lookup({ IODVDMedia: answer(), IOCDMedia: cd }, ['/dev/disk2s1']);
  assert.equal(await resolveDarwinCdrom(false, l), '/dev/disk2s1');
  assert.deepEqual(l.asked, ['IODVDMedia', 'IOCDMedia', '/dev/disk2s0', '/dev/disk2s1']);
  assert.equal(await resolveDarwinCdrom(true, lookup({ IOCDMedia: cd }, ['/dev/rdisk2s0'])), '/dev/rdisk2s0');
  await assert.rejects(resolveDarwinCdrom(false, lookup({ IOCDMedia: cd }, [])), (e: BlockError) => e.message === NO_WORKING_PARTITION && e.kind === 'NotFound' && JSON.stringify(e.reportedBefore) === JSON.stringify(unmountingDirections('/dev/disk2')));
  assert.deepEqual(unmountingDirections('/dev/disk2'), ['If device /dev/disk2 is mounted on the desktop, unmount it first before using it in QEMU', 'Command to unmount device: diskutil unmountDisk /dev/disk2', 'Command to mount device: diskutil mountDisk /dev/disk2']);
});

test('no optical medium, a medium without a BSD name, an unreadable answer: QEMU\'s errors', async () => {
  await assert.rejects(resolveDarwinCdrom(false, lookup({})), (e: BlockError) => e.message === NO_OPTICAL_MEDIUM && e.context.path === '/dev/cdrom');
  await assert.rejects(resolveDarwinCdrom(false, lookup({ IODVDMedia: answer(media({ cls: 'IODVDMedia', bsd: 'disk3', ejectable: false, name: 'not ejectable' })) })), (e: BlockError) => e.message === NO_OPTICAL_MEDIUM);
  await assert.rejects(resolveDarwinCdrom(false, lookup({ IODVDMedia: answer(media({ cls: 'IODVDMedia', ejectable: true, name: 'no bsd' })) })), (e: BlockError) => e.message === NO_BSD_PATH);
  await assert.rejects(resolveDarwinCdrom(false, lookup({ IODVDMedia: 'ioreg: garbage', IOCDMedia: '' })), (e: BlockError) => e.message === NO_OPTICAL_MEDIUM);
});
