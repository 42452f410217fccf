// blkdebug's rule engine (core/protocols/blkdebug/rules.ts): rules wait for their event, match
// requests by sector and request type, the first rule written wins, `once` rules go after one
// failure, states gate rules and set-state moves them, and an event's inject-error rules replace
// the ones in force (QEMU block/blkdebug.c: process_rule, rule_check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlkdebugRules } from '../../core/protocols/blkdebug/rules.ts';
import { parseRuleSpecs } from '../../core/protocols/blkdebug/config.ts';

const EIO = 5;
const ENOSPC = 28;
const SECTOR = 512;

/** Rules from config-file text. */
const rules = (text: string) => new BlkdebugRules(parseRuleSpecs(text, {}));

test('a rule is not in force until its event fires, then hits every read and write', () => {
  const r = rules('[inject-error]\nevent = "read_aio"\n');
  assert.equal(r.check(0, 4096, 'read'), 0);
  r.event('write_aio');
  assert.equal(r.check(0, 4096, 'read'), 0);
  r.event('read_aio');
  assert.equal(r.check(0, 4096, 'read'), EIO);
  assert.equal(r.check(1 << 20, 512, 'write'), EIO);
  assert.equal(r.check(0, 0, 'flush'), EIO);
});

test('without iotype a rule spares block status; with one it hits only that type', () => {
  const r = rules('[inject-error]\nevent = "none"\n[inject-error]\nevent = "none"\niotype = "block-status"\nerrno = "28"\n');
  r.event('none');
  assert.equal(r.check(0, SECTOR, 'block-status'), ENOSPC);
  assert.equal(r.check(0, SECTOR, 'discard'), EIO);
});

test("a sector rule hits requests covering the sector's first byte (QEMU's test), nothing else; a flush covers none", () => {
  const r = rules('[inject-error]\nevent = "none"\nsector = "8"\n');
  r.event('none');
  assert.equal(r.check(0, 8 * SECTOR, 'read'), 0);
  assert.equal(r.check(8 * SECTOR, 1, 'read'), EIO);
  assert.equal(r.check(8 * SECTOR + 1, SECTOR - 1, 'read'), 0);
  assert.equal(r.check(0, 9 * SECTOR, 'write'), EIO);
  assert.equal(r.check(9 * SECTOR, SECTOR, 'read'), 0);
  assert.equal(r.check(0, 0, 'flush'), 0);
});

test('of several matching rules the first written wins; a once rule is gone after it failed a request', () => {
  const r = rules('[inject-error]\nevent = "none"\nerrno = "28"\nonce = "on"\n[inject-error]\nevent = "none"\nerrno = "5"\n');
  r.event('none');
  assert.equal(r.check(0, SECTOR, 'read'), ENOSPC);
  assert.equal(r.check(0, SECTOR, 'read'), EIO);
  assert.equal(r.check(0, SECTOR, 'read'), EIO);
  // Gone for good: the event firing again does not bring it back.
  r.event('none');
  assert.equal(r.check(0, SECTOR, 'read'), EIO);
});

test('errno 0 matches without failing, and shadows the rules after it', () => {
  const r = rules('[inject-error]\nevent = "none"\nerrno = "0"\nonce = "on"\n[inject-error]\nevent = "none"\n');
  r.event('none');
  assert.equal(r.check(0, SECTOR, 'read'), 0);
  assert.equal(r.check(0, SECTOR, 'read'), 0);
});

test("rules act only in their state; set-state moves the state, and every rule of one event sees the state from before it", () => {
  const r = rules(
    [
      '[set-state]', 'event = "l2_load"', 'state = "1"', 'new_state = "2"',
      '[set-state]', 'event = "l2_load"', 'state = "2"', 'new_state = "3"',
      '[inject-error]', 'event = "l2_load"', 'state = "2"', 'errno = "28"',
      '',
    ].join('\n'),
  );
  assert.equal(r.state, 1);
  r.event('l2_load'); // state 1: only the first set-state applies
  assert.equal(r.state, 2);
  assert.equal(r.check(0, SECTOR, 'read'), 0);
  r.event('l2_load'); // state 2: the inject rule and the second set-state
  assert.equal(r.state, 3);
  assert.equal(r.check(0, SECTOR, 'read'), ENOSPC);
});

test("an event with inject-error rules replaces the rules in force; one with only set-state rules keeps them", () => {
  const r = rules('[inject-error]\nevent = "read_aio"\nerrno = "28"\n[inject-error]\nevent = "write_aio"\nsector = "100"\n[set-state]\nevent = "flush_to_os"\nnew_state = "5"\n');
  r.event('read_aio');
  assert.equal(r.check(0, SECTOR, 'read'), ENOSPC);
  r.event('flush_to_os');
  assert.equal(r.state, 5);
  assert.equal(r.check(0, SECTOR, 'read'), ENOSPC);
  r.event('write_aio');
  assert.equal(r.check(0, SECTOR, 'read'), 0);
  assert.equal(r.check(100 * SECTOR, SECTOR, 'write'), EIO);
});
