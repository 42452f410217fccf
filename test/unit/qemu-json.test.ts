// QEMU's JSON dialect for json: filenames (qobject/json-parser.c): single-quoted strings, and
// its error words; compared with what qemu-img 7.2 prints for the same text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQemuJson } from '../../core/util/qemu-json.ts';
import { parseJsonFilename } from '../../core/block/options-tree.ts';

test('single-quoted strings parse as QEMU parses them, with \\\' and \\" escapes', () => {
  assert.deepEqual(parseQemuJson(`{'driver': 'qcow2', 'file': {'driver': 'file', 'filename': 'a\\'b"c'}}`), {
    driver: 'qcow2',
    file: { driver: 'file', filename: `a'b"c` },
  });
  assert.deepEqual(parseQemuJson('[1, -2.5e3, true, false, null, "x\\u0041"]'), [1, -2500, true, false, null, 'xA']);
});

test('errors carry QEMU\'s words (qemu-img info json:... prints the same)', () => {
  assert.throws(() => parseQemuJson('{'), /^QemuJsonError: JSON parse error, premature EOI$|JSON parse error, premature EOI/);
  assert.throws(() => parseQemuJson('{"a":}'), /JSON parse error, expecting value/);
  assert.throws(() => parseQemuJson('{"a" 1}'), /JSON parse error, missing : in object pair/);
  assert.throws(() => parseQemuJson('{"a":1 "b":2}'), /JSON parse error, expected separator in dict/);
  assert.throws(() => parseQemuJson('{"a":1,"a":2}'), /JSON parse error, duplicate key/);
  assert.throws(() => parseQemuJson('{1:2}'), /JSON parse error, key is not a string in object/);
  assert.throws(() => parseQemuJson('[nope]'), /JSON parse error, invalid keyword 'nope'/);
  assert.throws(() => parseQemuJson('['.repeat(5000)), /too many nested data structures/);
});

test('json: filenames with single quotes become the same options tree as with double quotes', () => {
  assert.deepEqual(parseJsonFilename(`json:{'driver':'raw','file':{'driver':'file','filename':'x.img'}}`), parseJsonFilename('json:{"driver":"raw","file":{"driver":"file","filename":"x.img"}}'));
});
