// The proof under load and faults, in Node (the idea of tests/workers.rs): several worker
// processes race on the same payments in ONE SQLite file, through the Driver, against the
// sandbox bank over loopback HTTP; the parent SIGKILLs them at random moments (and they
// kill themselves right after a write-ahead or an answer), scripts bank faults, and sweeps.
// Then everything is settled and the bank's own counters are checked:
//
// * no request reached the bank twice: every request sent follows its own write-ahead,
//   each write-ahead's request was sent at most once, and per endpoint the bank's count lies
//   between the requests answered and the requests sent (over all processes);
// * no limit was exceeded: one transaction per order, at most MAX_SENDS OTPs and
//   MAX_ATTEMPTS tries each, and the bank never answered `max_limit_exceeded`;
// * nothing is lost or left in flight: every payment the bank knows is stored, final, with
//   the bank's status.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { Config, Driver, Sandbox, SandboxError, SqliteStore } from 'direct-otp';

import { prefix as uniquePrefix, sleep, tempDb, tempDir } from './support/common.mjs';
import { CARDS, Ledger, MAX_ATTEMPTS, MAX_SENDS, RIGHT, startRequest, tally } from './support/race-common.mjs';

const KEY = 'sk_test_race';
const PAYMENTS = 16;
const WORKERS = 4;
const STORM_MS = Number(process.env.RACE_STORM_MS ?? 5_000);
const TIMEOUT_MS = 1_000;
const GRACE_MS = 2_000;
/** One write-ahead (or answer) in KILL_ONE_IN kills its worker, half at each moment. */
const KILL_ONE_IN = 8;
const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support', 'race-worker.mjs');

const pick = (list) => list[Math.floor(Math.random() * list.length)];

test('workers in several processes race on one SQLite file, die at random, and the bank proves no request went twice', { timeout: 120_000 }, async (t) => {
  const began = Date.now();
  const sandbox = Sandbox.start({ apiKey: KEY, otp: RIGHT });
  try {
    await sandbox.updateSettings({ maxSends: MAX_SENDS, maxAttempts: MAX_ATTEMPTS });
    for (const [card, flow] of CARDS) await sandbox.setCard(card, flow);
    const db = tempDb('race');
    const store = new SqliteStore(db, { busyTimeoutMs: 30_000 });
    const ledgers = tempDir('race-ledgers');
    const prefix = uniquePrefix('race');
    const until = Date.now() + STORM_MS;

    // The parent's own ledger (its sweeps now, its settling later) is kept in memory.
    const lines = [];
    const ledger = new Ledger((line) => lines.push(line));
    const clock = { offset: 0 };
    const parent = ledger.watch(
      new Driver({
        config: new Config({ baseUrl: sandbox.url, apiKey: KEY }),
        store,
        timeoutMs: TIMEOUT_MS,
        graceMs: GRACE_MS,
        clock: () => Date.now() + clock.offset,
      }),
    );

    // The workers: kept at WORKERS alive until the storm ends; each killed one is replaced.
    const live = new Set();
    const exits = [];
    let spawned = 0;
    const spawnWorker = () => {
      const n = spawned++;
      const child = spawn(process.execPath, [worker], {
        env: {
          ...process.env,
          RACE_SANDBOX: sandbox.url,
          RACE_KEY: KEY,
          RACE_DB: db,
          RACE_PREFIX: prefix,
          RACE_PAYMENTS: String(PAYMENTS),
          RACE_LEDGER: path.join(ledgers, `worker-${n}.txt`),
          RACE_SEED: String(1000 + n * 7919),
          RACE_UNTIL: String(until),
          RACE_KILL_ONE_IN: String(KILL_ONE_IN),
          RACE_TIMEOUT_MS: String(TIMEOUT_MS),
          RACE_GRACE_MS: String(GRACE_MS),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      live.add(child);
      child.done = new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          live.delete(child);
          exits.push({ n, code, signal, stderr });
          if (Date.now() < until - 500) spawnWorker();
          resolve();
        }),
      );
    };
    for (let i = 0; i < WORKERS; i++) spawnWorker();

    // The storm: random SIGKILLs, bank faults, the cardholder on the bank page, sweeps.
    let parentKills = 0;
    while (Date.now() < until) {
      await sleep(100 + Math.random() * 150);
      const roll = Math.random();
      if (roll < 0.3 && live.size > 0) {
        const victim = pick([...live]);
        if (victim.kill('SIGKILL')) parentKills++;
      } else if (roll < 0.6) {
        const counters = await sandbox.counters();
        if (counters.pending_faults === 0) {
          const fault = pick([
            { fault: 'drop_response' },
            { fault: 'drop_request' },
            { fault: 'internal_error_after_apply' },
            { fault: 'duplicate' },
            { fault: 'slow', delay_ms: TIMEOUT_MS + 300 },
            { fault: 'reset' },
          ]);
          await sandbox.control('POST', 'faults', { ...fault, endpoint: pick(['start', 'resend', 'submit', 'order_status']) });
        }
      } else if (roll < 0.75) {
        await sandbox.bankPage(`${prefix}${Math.floor(Math.random() * PAYMENTS)}`, Math.random() < 0.7 ? 'success' : 'failure').catch((e) => {
          if (!(e instanceof SandboxError)) throw e;
        });
      } else {
        await ledger.swept(parent.sweep({ limit: 16, check: true }));
      }
    }
    const stormDone = Date.now() - began;
    // Workers finish the call they are in (a slow answer takes at most the timeout).
    const deadline = Date.now() + 20_000;
    while (live.size > 0 && Date.now() < deadline) await Promise.race([...live].map((c) => c.done).concat(sleep(200)));
    for (const child of live) child.kill('SIGKILL');
    await Promise.all([...live].map((c) => c.done));
    for (const e of exits) {
      assert.ok(e.code === 0 || e.signal === 'SIGKILL', `worker ${e.n} ended with ${e.code ?? e.signal}:\n${e.stderr}`);
    }

    // Settle: nobody else sends now, so the clock may jump past the grace; then drive every
    // payment to its end, the parent playing the cardholder and the bank.
    await sandbox.clearFaults();
    clock.offset = GRACE_MS + 1_000;
    await ledger.swept(parent.sweep({ limit: 64, check: true }));
    for (let i = 0; i < PAYMENTS; i++) await settle(parent, ledger, sandbox, prefix, i);
    await ledger.swept(parent.sweep({ limit: 64, check: true }));

    // The ledgers of every process.
    for (const file of fs.readdirSync(ledgers)) lines.push(...fs.readFileSync(path.join(ledgers, file), 'utf8').split('\n'));
    const tl = tally(lines);
    const failures = [...tl.violations];
    const counters = await sandbox.counters();
    for (const kind of ['start', 'resend', 'submit', 'order_status']) {
      const bank = counters.requests[kind];
      const sent = tl.sent[kind] ?? 0;
      const answered = tl.answered[kind] ?? 0;
      if (bank > sent) failures.push(`${kind}: the bank got ${bank} requests, only ${sent} were sent`);
      if (bank < answered) failures.push(`${kind}: ${answered} answered, but the bank got only ${bank}`);
    }
    if (tl.writeAheads < tl.ids.size) failures.push(`${tl.ids.size} requests sent after ${tl.writeAheads} write-aheads`);

    let neverReached = 0;
    const statuses = {};
    for (let i = 0; i < PAYMENTS; i++) {
      const order = `${prefix}${i}`;
      const bank = await sandbox.order(order);
      if (bank) {
        if (bank.transactions.length !== 1) failures.push(`${order}: ${bank.transactions.length} transactions`);
        for (const txn of bank.transactions) {
          if (txn.otp_sends > MAX_SENDS || txn.attempts > MAX_ATTEMPTS) failures.push(`${order}: over the limits: ${JSON.stringify(txn)}`);
        }
      }
      const payment = await parent.load(`${order}/1`);
      if (!payment) {
        if (bank) failures.push(`${order}: the bank knows it, the store lost it`);
        else neverReached++;
        continue;
      }
      const view = payment.view(parent.now());
      if (view.next === 'wait') failures.push(`${order} left in flight`);
      if (payment.isFinal) {
        statuses[payment.status] = (statuses[payment.status] ?? 0) + 1;
        if (!bank || bank.status !== payment.status) failures.push(`${order}: stored ${payment.status}, the bank says ${bank?.status}`);
      } else if (bank) {
        failures.push(`${order}: not final (${payment.status}, next ${view.next}), the bank says ${bank.status}`);
      } else {
        neverReached++;
      }
    }
    const kills = Object.values(tl.kills).reduce((a, b) => a + b, 0) + parentKills;
    if (kills === 0) failures.push('no worker was killed: the run proves less than it says');
    if (tl.recovered === 0) failures.push('no sweep recovered anything');

    const summary =
      `race: ${spawned} worker processes (${WORKERS} at a time), ${PAYMENTS} payments, one SQLite file; storm ${(stormDone / 1000).toFixed(1)} s, ` +
      `settled at ${((Date.now() - began) / 1000).toFixed(1)} s; sent ${JSON.stringify(tl.sent)}, bank ${JSON.stringify(counters.requests)}; ` +
      `killed ${parentKills} by SIGKILL from the parent + ${JSON.stringify(tl.kills)} by their own; ${tl.recovered} recovered by sweeps; ` +
      `final ${JSON.stringify(statuses)}, ${neverReached} never reached the bank; answers ${JSON.stringify(tl.codes)}`;
    t.diagnostic(summary);
    if (process.env.RACE_SUMMARY) fs.writeFileSync(process.env.RACE_SUMMARY, `${summary}\n`);
    assert.deepEqual(failures, [], `${failures.length} failures:\n${failures.join('\n')}\n${summary}`);
  } finally {
    sandbox.stop();
  }
});

/** Drives payment `i` to its end, as the cardholder and the bank would. */
async function settle(d, ledger, sandbox, prefix, i) {
  const key = `${prefix}${i}/1`;
  const order = `${prefix}${i}`;
  let pendingChecks = 0;
  for (let n = 0; n < 30; n++) {
    const payment = await d.load(key);
    if (!payment) {
      await ledger.done(d.start(startRequest(prefix, i)));
      continue;
    }
    const view = payment.view(d.now());
    switch (view.next) {
      case 'finished':
        return;
      case 'start':
        await ledger.done(d.start(startRequest(prefix, i)));
        break;
      case 'enter_otp':
        await ledger.done(d.submit(key, RIGHT));
        break;
      case 'bank_page':
        await d.bankPage(key).catch(() => undefined);
        break;
      case 'await_bank_page':
        await sandbox.bankPage(order, 'success').catch(() => undefined);
        await ledger.done(d.checkStatus(key));
        break;
      case 'wait':
        await ledger.swept(d.sweep({ limit: 64, check: true }));
        break;
      default: {
        // Check the status; a start whose answer was lost opened no OTP page: the bank
        // gives up on it in the end (as a real one times out).
        if (pendingChecks > 0) await sandbox.bankPage(order, 'failure').catch(() => undefined);
        const done = await ledger.done(d.checkStatus(key));
        if (done?.outcome.code === 'pending') pendingChecks++;
        if (done?.outcome.code === 'rejected' && (await sandbox.order(order)) === null) return;
      }
    }
  }
}
