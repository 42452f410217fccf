// blkdebug's rule engine (QEMU block/blkdebug.c blkdebug_debug_event, process_rule, rule_check):
// rules wait on a named event; when it fires (in the rule's state, or any state for state 0),
// inject-error rules become the active set and set-state rules move the state machine. Each
// request then asks check() whether an active rule hits it.
//
// Order is QEMU's to the letter, because it decides which rule wins: rules are kept per event
// newest first (QLIST_INSERT_HEAD), and an event's inject-error rules replace the active set,
// each put in front of it, so the active set ends in the order the rules were written and the
// first one written that matches a request is the one that fails it.

import type { DebugEvent, DebugIoType } from '../../block/debug-events.ts';
import type { BlkdebugRuleSpecs, InjectErrorSpec } from './config.ts';

/** The request types a rule without `iotype` hits (QEMU's default mask: not block-status). */
const DEFAULT_IO_TYPES: readonly DebugIoType[] = ['read', 'write', 'write-zeroes', 'discard', 'flush'];
/** blkdebug's sector unit (BDRV_SECTOR_SIZE). */
const SECTOR = 512;
/** The state a blkdebug node starts in. */
const INITIAL_STATE = 1;

interface InjectRule {
  action: 'inject-error';
  event: DebugEvent;
  state: number;
  ioTypes: ReadonlySet<DebugIoType>;
  errno: number;
  /** Byte offset the request must cover, or -1 for any request. */
  offset: number;
  once: boolean;
}

interface SetStateRule {
  action: 'set-state';
  event: DebugEvent;
  state: number;
  newState: number;
}

type Rule = InjectRule | SetStateRule;

function injectRule(s: InjectErrorSpec): InjectRule {
  return {
    action: 'inject-error',
    event: s.event,
    state: s.state,
    ioTypes: new Set(s.iotype ? [s.iotype] : DEFAULT_IO_TYPES),
    errno: s.errno,
    offset: s.sector === -1 ? -1 : s.sector * SECTOR,
    once: s.once,
  };
}

export class BlkdebugRules {
  #state = INITIAL_STATE;
  /** Rules by event, newest first. */
  readonly #byEvent = new Map<DebugEvent, Rule[]>();
  /** Inject-error rules in force, first match wins. */
  #active: InjectRule[] = [];

  constructor(specs: BlkdebugRuleSpecs) {
    for (const s of specs.injectError) this.#add(injectRule(s));
    for (const s of specs.setState) this.#add({ action: 'set-state', event: s.event, state: s.state, newState: s.newState });
  }

  #add(rule: Rule): void {
    const list = this.#byEvent.get(rule.event);
    if (list) list.unshift(rule);
    else this.#byEvent.set(rule.event, [rule]);
  }

  /** The state machine's current state. */
  get state(): number {
    return this.#state;
  }

  /** `event` fired: activate its inject-error rules and apply its set-state rules, each only in
   *  its state (all of them see the state from before the event). */
  event(event: DebugEvent): void {
    const rules = this.#byEvent.get(event);
    if (!rules) return;
    let newState = this.#state;
    let injected = 0;
    for (const rule of rules) {
      if (rule.state !== 0 && rule.state !== this.#state) continue;
      if (rule.action === 'inject-error') {
        if (++injected === 1) this.#active = [];
        this.#active.unshift(rule);
      } else {
        newState = rule.newState;
      }
    }
    this.#state = newState;
  }

  /**
   * The errno a request of `bytes` at `offset` fails with, or 0. A rule with a sector hits only
   * requests covering it (a flush, zero bytes, covers none); a `once` rule is forgotten when it
   * fails a request.
   */
  check(offset: number, bytes: number, ioType: DebugIoType): number {
    const rule = this.#active.find((r) => (r.offset === -1 || (bytes > 0 && r.offset >= offset && r.offset < offset + bytes)) && r.ioTypes.has(ioType));
    if (!rule || rule.errno === 0) return 0;
    if (rule.once) {
      this.#active = this.#active.filter((r) => r !== rule);
      const list = this.#byEvent.get(rule.event)!;
      list.splice(list.indexOf(rule), 1);
    }
    return rule.errno;
  }
}
