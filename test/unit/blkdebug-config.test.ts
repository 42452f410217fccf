// blkdebug's rule syntax (core/protocols/blkdebug/config.ts): config files read line by line as
// QEMU's qemu_config_parse reads them, sections given as options in the three shapes QEMU takes
// (a json: list, numbered dotted keys, one unnumbered section), defaults, order, and QEMU's words
// for every mistake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, parseRuleSpecs } from '../../core/protocols/blkdebug/config.ts';
import { parseDottedOptions, parseJsonFilename } from '../../core/block/options-tree.ts';
import { BlockError } from '../../core/errors.ts';

const rejects = (f: () => unknown, message: string) =>
  assert.throws(f, (e: unknown) => e instanceof BlockError && e.kind === 'InvalidArgument' && e.message === message, `expected "${message}"`);

test('a config file as iotest 074 writes it: sections, key = "value" with or without spaces around =, comments, empty lines', () => {
  const text = ['# inject on reads', '[inject-error]', 'event = "read_aio"', 'errno = "5"', 'once ="off"', '', '[set-state]', '  event  =   "l2_load"', 'new_state = "2"', ''].join('\n');
  assert.deepEqual(
    parseConfigText(text).map((s) => [s.group, Object.fromEntries(s.values)]),
    [
      ['inject-error', { event: 'read_aio', errno: '5', once: 'off' }],
      ['set-state', { event: 'l2_load', new_state: '2' }],
    ],
  );
});

test('"key=value" with no blank before = is one token to QEMU, hence a parse error; so is a line of blanks', () => {
  rejects(() => parseConfigText('[inject-error]\nevent="read_aio"\n'), 'parse error');
  rejects(() => parseConfigText('[inject-error]\n   \n'), 'parse error');
  rejects(() => parseConfigText('[inject-error]\nevent = read_aio\n'), 'parse error');
});

test('a key before any section is "no group defined"; a group QEMU has no list for is named', () => {
  rejects(() => parseConfigText('event = "read_aio"\n'), 'no group defined');
  rejects(() => parseRuleSpecs('[suspend]\nevent = "read_aio"\n', {}), "There is no option group 'suspend'");
});

test('an empty value ("") and a missing closing quote read as QEMU reads them', () => {
  const [s] = parseConfigText('[inject-error]\nevent = "none"\niotype = ""\nerrno = "28\n');
  assert.equal(s!.values.get('iotype'), '');
  assert.equal(s!.values.get('errno'), '28\n');
});

test('defaults: errno EIO, any sector, not once, any state; iotype left to the rule engine', () => {
  const specs = parseRuleSpecs('[inject-error]\nevent = "l1_update"\n', {});
  assert.deepEqual(specs.injectError, [{ event: 'l1_update', state: 0, iotype: undefined, errno: 5, sector: -1, once: false, immediately: false }]);
  assert.deepEqual(specs.setState, []);
});

test('numbers as qemu_strtou64 reads them (decimal, 0x hex, 0 octal) and bools as qapi_bool_parse', () => {
  const specs = parseRuleSpecs('[inject-error]\nevent = "none"\nerrno = "0x1c"\nsector = "010"\nonce = "yes"\nimmediately = "n"\n', {});
  assert.deepEqual(specs.injectError[0], { event: 'none', state: 0, iotype: undefined, errno: 28, sector: 8, once: true, immediately: false });
});

test("QEMU's words for a bad value, a missing or unknown event, an unknown iotype and an unknown key", () => {
  rejects(() => parseRuleSpecs('[inject-error]\nevent = "none"\nerrno = "five"\n', {}), "Parameter 'errno' expects a number");
  rejects(() => parseRuleSpecs('[inject-error]\nevent = "none"\nonce = "maybe"\n', {}), "Parameter 'once' expects 'on' or 'off'");
  rejects(() => parseRuleSpecs('[inject-error]\nerrno = "5"\n', {}), 'Missing event name for rule');
  rejects(() => parseRuleSpecs('[inject-error]\nevent = "read_aoi"\n', {}), 'invalid parameter value: read_aoi');
  rejects(() => parseRuleSpecs('[inject-error]\nevent = "none"\niotype = "trim"\n', {}), 'invalid parameter value: trim');
  rejects(() => parseRuleSpecs('[inject-error]\nevent = "none"\nnew_state = "2"\n', {}), "Invalid parameter 'new_state'");
});

test('sections given in a json: name (lists of objects, numbers and booleans as QEMU turns them into text)', () => {
  const tree = parseJsonFilename(
    "json:{'driver': 'blkdebug', 'inject-error': [{'event': 'write_aio', 'errno': 28, 'once': true}, {'event': 'none', 'iotype': 'block-status', 'sector': 3}], 'set-state': [{'event': 'read_aio', 'new_state': 42}]}",
  );
  const specs = parseRuleSpecs(undefined, tree);
  assert.deepEqual(
    specs.injectError.map((s) => [s.event, s.errno, s.once, s.iotype, s.sector]),
    [
      ['write_aio', 28, true, undefined, -1],
      ['none', 5, false, 'block-status', 3],
    ],
  );
  assert.deepEqual(specs.setState, [{ event: 'read_aio', state: 0, newState: 42 }]);
});

test('sections as dotted options: numbered (inject-error.0.event) and a single unnumbered one (set-state.event)', () => {
  const numbered = parseRuleSpecs(undefined, parseDottedOptions('inject-error.0.event=none,inject-error.1.event=flush_to_os,inject-error.1.errno=1'));
  assert.deepEqual(numbered.injectError.map((s) => [s.event, s.errno]), [['none', 5], ['flush_to_os', 1]]);
  const single = parseRuleSpecs(undefined, parseDottedOptions('set-state.event=l1_update,set-state.state=1,set-state.new_state=3'));
  assert.deepEqual(single.setState, [{ event: 'l1_update', state: 1, newState: 3 }]);
});

test("mixed or gapped option sections fail in QEMU's words", () => {
  rejects(() => parseRuleSpecs(undefined, parseDottedOptions('inject-error.event=none,inject-error.bogus=1')), "Unknown option 'bogus' for [inject-error]");
  rejects(() => parseRuleSpecs(undefined, parseDottedOptions('inject-error.0.event=none,inject-error.2.event=none')), "Unused option '2' for [inject-error]");
  rejects(() => parseRuleSpecs(undefined, parseDottedOptions('inject-error.0.event=none,inject-error.0.bogus=1')), "[inject-error] section doesn't support the option 'bogus'");
  rejects(() => parseRuleSpecs(undefined, { 'inject-error': ['none'] as unknown as string[] }), '[inject-error] section (index 0) does not consist of keys');
});

test("the config file's sections come before the options', inject-error before set-state (QEMU's order)", () => {
  const specs = parseRuleSpecs('[set-state]\nevent = "none"\nnew_state = "2"\n[inject-error]\nevent = "l2_load"\n', parseJsonFilename("json:{'inject-error': [{'event': 'l1_update'}], 'set-state': [{'event': 'none', 'new_state': 3}]}"));
  assert.deepEqual(specs.injectError.map((s) => s.event), ['l2_load', 'l1_update']);
  assert.deepEqual(specs.setState.map((s) => s.newState), [2, 3]);
});
