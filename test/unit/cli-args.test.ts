// The CLI's getopt-compatible parser: clustered short options, attached values, long options
// with '=' or a separate value, unambiguous prefixes, '--', and getopt's error words.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, last, has, all } from '../../core/cli/args.ts';

const spec = { short: ':f:O:pqo:', long: { output: { arg: true }, 'backing-chain': { arg: false }, help: { arg: false, short: 'h' } } };

test('parses clustered flags, attached and separate values, and permutes positionals', () => {
  const p = parseArgs(['-pq', '-fqcow2', 'a', '-O', 'raw', '--output=json', 'b', '--backing-chain', '-o', 'x=1', '-o', 'y=2'], spec);
  assert.deepEqual(p.positional, ['a', 'b']);
  assert.equal(last(p, 'f'), 'qcow2');
  assert.equal(last(p, 'O'), 'raw');
  assert.equal(last(p, 'output'), 'json');
  assert.ok(has(p, 'p') && has(p, 'q') && has(p, 'backing-chain'));
  assert.deepEqual(all(p, 'o'), ['x=1', 'y=2']);
});

test('"--" ends options, so a negative size is a positional', () => {
  const p = parseArgs(['-f', 'raw', 'x', '--', '-1'], spec);
  assert.deepEqual(p.positional, ['x', '-1']);
});

test('long options take a separate value and accept an unambiguous prefix', () => {
  const p = parseArgs(['--out', 'human', '--back'], spec);
  assert.equal(last(p, 'output'), 'human');
  assert.ok(has(p, 'backing-chain'));
  assert.ok(has(parseArgs(['--help'], spec), 'h'));
});

test('getopt error words for unknown options and missing values', () => {
  assert.throws(() => parseArgs(['--nope'], spec), /^BlockError: unrecognized option '--nope'$|unrecognized option '--nope'/);
  assert.throws(() => parseArgs(['-x'], spec), /invalid option -- 'x'/);
  assert.throws(() => parseArgs(['-f'], spec), /option requires an argument -- 'f'/);
  assert.throws(() => parseArgs(['--output'], spec), /option '--output' requires an argument/);
  assert.throws(() => parseArgs(['--backing-chain=1'], spec), /doesn't allow an argument/);
});
