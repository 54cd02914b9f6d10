// One worker process of the race (test/race.test.mjs): random commands on the shared
// payments, through a Driver over the shared SQLite file, until killed (by the parent's
// SIGKILL, or by its own at the worst moments: right after a write-ahead, right after an
// answer arrived and before it is stored). Everything it does goes to its ledger file,
// one line per fact, written synchronously (a killed process leaves whole lines).
//
// Environment: RACE_SANDBOX (base URL), RACE_KEY, RACE_DB, RACE_PREFIX, RACE_PAYMENTS,
// RACE_LEDGER, RACE_SEED, RACE_UNTIL (Unix ms), RACE_KILL_ONE_IN (0: never), RACE_TIMEOUT_MS,
// RACE_GRACE_MS.
import { appendFileSync } from 'node:fs';

import { Config, Driver, DirectOtpError, SqliteStore } from 'direct-otp';

import { Ledger, startRequest, RIGHT, WRONG } from './race-common.mjs';

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`race worker: ${name} is not set`);
  return v;
};

const ledger = new Ledger((line) => appendFileSync(env('RACE_LEDGER'), `${line}\n`));
let seed = Number(env('RACE_SEED')) >>> 0 || 1;
const rand = () => {
  // xorshift32: each process its own sequence.
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 2 ** 32;
};
const below = (n) => Math.floor(rand() * n);
const killOneIn = Number(env('RACE_KILL_ONE_IN'));

/** Dies for real, now (as a crash or an OOM kill would). */
function die(where) {
  ledger.note(`kill ${where}`);
  process.kill(process.pid, 'SIGKILL');
}

const payments = Number(env('RACE_PAYMENTS'));
const prefix = env('RACE_PREFIX');
const driver = ledger.watch(
  new Driver({
    config: new Config({ baseUrl: env('RACE_SANDBOX'), apiKey: env('RACE_KEY') }),
    store: new SqliteStore(env('RACE_DB'), { busyTimeoutMs: 30_000 }),
    timeoutMs: Number(env('RACE_TIMEOUT_MS')),
    graceMs: Number(env('RACE_GRACE_MS')),
  }),
  {
    afterWriteAhead: () => killOneIn > 0 && below(2 * killOneIn) === 0 && die('after_write_ahead'),
    afterAnswer: () => killOneIn > 0 && below(2 * killOneIn) === 0 && die('after_answer'),
  },
);

const key = (i) => `${prefix}${i}/1`;

async function act(i) {
  const k = key(i);
  switch (below(20)) {
    case 0:
    case 1:
      return ledger.done(driver.start(startRequest(prefix, i)));
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
      // A burst of resends.
      for (let n = 0; n <= below(3); n++) await ledger.done(driver.resend(k));
      return;
    case 7:
    case 8:
    case 9:
      return ledger.done(driver.submit(k, WRONG));
    case 10:
      return ledger.done(driver.submit(k, RIGHT));
    case 11:
    case 12:
      return ledger.done(driver.checkStatus(k));
    case 13:
      return driver.bankPage(k).then(
        () => ledger.note('code bank_page'),
        (e) => ledger.note(`code ${e instanceof DirectOtpError ? e.code : 'thrown'}`),
      );
    case 14:
    case 15: {
      // Two tabs at once in this process: a double submit, or a resend and a submit.
      const both = below(2) === 0 ? [driver.resend(k), driver.submit(k, WRONG)] : [driver.submit(k, RIGHT), driver.submit(k, RIGHT)];
      await Promise.all(both.map((p) => ledger.done(p)));
      return;
    }
    case 16:
      return ledger.swept(driver.sweep({ limit: 16, check: true }));
    default:
      return ledger.done(driver.checkStatus(k));
  }
}

const until = Number(env('RACE_UNTIL'));
// Every worker starts every payment, in its own order: starts race each other.
const order = [...Array(payments).keys()];
for (let i = order.length - 1; i > 0; i--) {
  const j = below(i + 1);
  [order[i], order[j]] = [order[j], order[i]];
}
for (const i of order) await ledger.done(driver.start(startRequest(prefix, i)));
while (Date.now() < until) await act(below(payments));
ledger.note('exit');
