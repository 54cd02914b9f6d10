// The race's shared parts: the payments, and the ledger every process keeps of what it did
// (write-aheads won, requests sent, answers, kills, recoveries, codes, violations), taken
// by wrapping the Driver's store and HTTP client. Nothing here decides a step: the Driver
// (the core's step machine) does; the ledger only watches.
import { AsyncLocalStorage } from 'node:async_hooks';

import { CardSource, Driver, DirectOtpError, StartRequest } from 'direct-otp';

export const RIGHT = '123456';
export const WRONG = '999999';
export const MAX_SENDS = 3;
export const MAX_ATTEMPTS = 3;
export const CARDS = [
  ['tok_otp', 'direct_otp'],
  ['tok_3ds', 'three_ds_failover'],
  ['tok_decline', 'decline_after_otp'],
  ['tok_slow', 'slow_authorization'],
];

export function startRequest(prefix, i) {
  return new StartRequest({
    orderId: `${prefix}${i}`,
    merchantId: 'acme',
    routingId: `cust_${i}`,
    source: CardSource.token(CARDS[i % CARDS.length][0]),
    policy: { maxSends: MAX_SENDS, maxAttempts: MAX_ATTEMPTS, resendCooldownMs: 0, lifetimeMs: 600_000 },
  });
}

/** The call a fact belongs to (two calls of one process may run at once). */
const call = new AsyncLocalStorage();

export class Ledger {
  /** @param write one line out (a file append, or memory) */
  constructor(write) {
    this.write = write;
  }

  note(line) {
    this.write(line.replace(/\n/g, ' '));
  }

  violation(what) {
    this.note(`violation ${what}`);
  }

  /**
   * The driver's methods, each run in a context of its own, over a store and an HTTP client
   * that note every write-ahead and every send. `hooks.afterWriteAhead` / `afterAnswer` run
   * at those moments (a worker dies there).
   */
  watch(driver, hooks = {}) {
    const ledger = this;
    const store = driver.store;
    const http = driver.http;
    const watchedStore = {
      load: (k) => store.load(k),
      latestForOrder: (o) => store.latestForOrder(o),
      insert: (r) => store.insert(r),
      replace: (e, r) => store.replace(e, r),
      listInFlight: (b, l) => store.listInFlight(b, l),
      async hostIo(text) {
        const io = JSON.parse(text);
        const out = await store.hostIo(text);
        const input = JSON.parse(out);
        if ((io.op === 'insert' || io.op === 'replace') && input.result === 'stored' && io.in_flight_since !== null) {
          const ctx = call.getStore();
          if (ctx) ctx.writeAhead = { key: io.key, revision: io.revision };
          ledger.note(`write_ahead ${io.key} ${io.revision}`);
          hooks.afterWriteAhead?.();
        }
        return out;
      },
    };
    const watchedHttp = {
      async send(io) {
        const ctx = call.getStore();
        const ahead = ctx?.writeAhead;
        if (!ahead || ahead.key !== io.key) {
          ledger.violation(`a ${io.request.kind} request for ${io.key} sent without its write-ahead`);
        }
        const id = `${io.key}@${ahead?.revision ?? '?'}`;
        if (ctx) ctx.writeAhead = null;
        ledger.note(`sent ${io.request.kind} ${id}`);
        const input = await http.send(io);
        if (input.result === 'answer') {
          ledger.note(`answered ${io.request.kind} ${id} ${input.status}`);
          if (String(input.body ?? '').includes('max_limit_exceeded')) ledger.violation(`the bank refused a ${io.request.kind} for its limits`);
          hooks.afterAnswer?.();
        } else {
          ledger.note(`failed ${io.request.kind} ${id} ${input.maybe_sent ? 'maybe_sent' : 'not_sent'}`);
        }
        return input;
      },
    };
    const watched = new Driver({
      config: driver.config,
      store: watchedStore,
      http: watchedHttp,
      timeoutMs: driver.timeoutMs,
      graceMs: driver.graceMs,
      clock: () => driver.now(),
    });
    const wrap = (name) => (...args) => call.run({ writeAhead: null }, () => watched[name](...args));
    return {
      start: wrap('start'),
      run: wrap('run'),
      submit: wrap('submit'),
      resend: wrap('resend'),
      checkStatus: wrap('checkStatus'),
      bankPage: wrap('bankPage'),
      settle: wrap('settle'),
      sweep: wrap('sweep'),
      load: (k) => watched.load(k),
      now: () => watched.now(),
    };
  }

  /** Notes what a driver call gave. */
  async done(promise) {
    try {
      const done = await promise;
      this.note(`code ${done.outcome.code}`);
      return done;
    } catch (e) {
      if (!(e instanceof DirectOtpError)) {
        this.violation(`not a DirectOtpError: ${e?.stack ?? e}`);
        return null;
      }
      this.note(`code ${e.code}`);
      if (e.code === 'store' || e.code === 'unanswerable') this.violation(`driver: ${e.code} ${JSON.stringify(e.wire)}`);
      return null;
    }
  }

  /** Notes what a sweep gave. */
  async swept(promise) {
    try {
      for (const s of await promise) {
        if (s.code === 'recovered') {
          this.note('recovered');
          if (s.check instanceof DirectOtpError) this.note(`code ${s.check.code}`);
          else if (s.check) this.note(`code ${s.check.outcome.code}`);
        } else if (s.code === 'moved') this.note('code moved');
        else this.violation(`sweep of ${s.key}: ${JSON.stringify(s.wire)}`);
      }
    } catch (e) {
      this.violation(`sweep: ${e?.code ?? e}`);
    }
  }
}

/** Sums ledger lines (from every process). */
export function tally(lines) {
  const t = { writeAheads: 0, sent: {}, answered: {}, failed: {}, ids: new Map(), kills: {}, recovered: 0, codes: {}, violations: [], exits: 0 };
  const bump = (m, k) => (m[k] = (m[k] ?? 0) + 1);
  for (const line of lines) {
    if (!line) continue;
    const [word, ...rest] = line.split(' ');
    switch (word) {
      case 'write_ahead':
        t.writeAheads++;
        break;
      case 'sent': {
        const [kind, id] = rest;
        bump(t.sent, kind);
        if (t.ids.has(id)) t.violations.push(`request ${id} (${kind}) sent twice`);
        t.ids.set(id, kind);
        break;
      }
      case 'answered':
        bump(t.answered, rest[0]);
        break;
      case 'failed':
        bump(t.failed, `${rest[0]} ${rest[2]}`);
        break;
      case 'kill':
        bump(t.kills, rest[0]);
        break;
      case 'recovered':
        t.recovered++;
        break;
      case 'code':
        bump(t.codes, rest[0]);
        break;
      case 'violation':
        t.violations.push(rest.join(' '));
        break;
      case 'exit':
        t.exits++;
        break;
      default:
        t.violations.push(`unknown ledger line ${JSON.stringify(line)}`);
    }
  }
  return t;
}
