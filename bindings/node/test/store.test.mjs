// A Store of the caller's (here in memory, with the compare-and-swap on the revision), and an
// HTTP client that throws or a store that fails for a moment: the Driver hands each back to
// the core's step machine, which decides.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { CardSource, Config, Driver, DirectOtpError, FetchHttp, Sandbox, StartRequest } from 'direct-otp';

import { prefix } from './support/common.mjs';

const KEY = 'sk_test_store';
const orders = prefix('store');
let sandbox;
let config;

before(() => {
  sandbox = Sandbox.start({ apiKey: KEY, otp: '123456' });
  config = new Config({ baseUrl: sandbox.url, apiKey: KEY });
});
after(() => sandbox.stop());

/** The five operations over a Map: insert never overwrites, replace compares the revision. */
class MapStore {
  rows = new Map();
  ops = [];
  failNext = 0;

  #maybeFail(op) {
    this.ops.push(op);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('the database is down for a moment');
    }
  }
  async load(key) {
    this.#maybeFail('load');
    return this.rows.get(key)?.record ?? null;
  }
  async latestForOrder(orderId) {
    this.#maybeFail('latest_for_order');
    const mine = [...this.rows.values()].filter((r) => r.orderId === orderId).sort((a, b) => b.attempt - a.attempt);
    return mine[0]?.record ?? null;
  }
  async insert(row) {
    this.#maybeFail('insert');
    if (this.rows.has(row.key)) return false;
    this.rows.set(row.key, { ...row });
    return true;
  }
  async replace(expected, row) {
    this.#maybeFail('replace');
    if (this.rows.get(row.key)?.revision !== expected) return false;
    this.rows.set(row.key, { ...row });
    return true;
  }
  async listInFlight(before, limit) {
    this.#maybeFail('list_in_flight');
    return [...this.rows.values()]
      .filter((r) => r.inFlightSince !== null && r.inFlightSince < before)
      .sort((a, b) => a.inFlightSince - b.inFlightSince)
      .slice(0, limit)
      .map((r) => r.key);
  }
}

const start = (order) => new StartRequest({ orderId: order, merchantId: 'acme', routingId: 'c', source: CardSource.token('tok_visa') });

test('a store of the caller\'s: the driver writes ahead, then stores the answer with compare-and-swap', async () => {
  const store = new MapStore();
  const driver = new Driver({ config, store, timeoutMs: 5_000 });
  const started = await driver.start(start(`${orders}1`));
  assert.equal(started.outcome.code, 'otp_sent');
  assert.deepEqual(store.ops.slice(0, 2), ['load', 'insert'], 'stored before the request left');
  const row = store.rows.get(started.payment.key);
  assert.equal(row.record, started.payment.toRecord());
  assert.equal(row.inFlightSince, null);
  assert.equal(row.orderId, `${orders}1`);
  assert.equal(row.attempt, 1);

  const paid = await driver.submit(started.payment.key, '123456');
  assert.equal(paid.outcome.code, 'approved');
  assert.ok(store.rows.get(started.payment.key).revision > row.revision);
  assert.equal((await driver.load(started.payment.key)).isPaid, true);

  // Another copy changed the row meanwhile: the write-ahead loses, nothing is sent.
  const other = await driver.start(start(`${orders}2`));
  const key = other.payment.key;
  const stale = { ...store.rows.get(key) };
  let sends = 0;
  const racing = new Driver({
    config,
    store: {
      ...Object.fromEntries(['load', 'latestForOrder', 'insert', 'listInFlight'].map((m) => [m, (...a) => store[m](...a)])),
      async load(k) {
        return k === key ? stale.record : store.load(k);
      },
      async replace(expected, r) {
        // Someone else wrote first.
        store.rows.set(key, { ...store.rows.get(key), revision: store.rows.get(key).revision + 1 });
        return store.replace(expected, r);
      },
    },
    http: { send: async () => (sends++, { result: 'send_failed', maybe_sent: false }) },
  });
  await assert.rejects(racing.checkStatus(key), (e) => e instanceof DirectOtpError && e.code === 'busy');
  assert.equal(sends, 0, 'a worker whose write-ahead lost sends nothing');
});

test('an HTTP client that throws is a maybe-sent request: only a status check follows', async () => {
  const store = new MapStore();
  const fetchHttp = new FetchHttp({ timeoutMs: 5_000 });
  let throwOn = null;
  const driver = new Driver({
    config,
    store,
    http: {
      async send(io) {
        if (io.request.kind === throwOn) {
          await fetchHttp.send(io); // it reached the bank...
          throw new Error('...and the client blew up');
        }
        return fetchHttp.send(io);
      },
    },
  });
  const started = await driver.start(start(`${orders}3`));
  throwOn = 'submit';
  const lost = await driver.submit(started.payment.key, '123456');
  assert.equal(lost.outcome.code, 'check_status');
  throwOn = null;
  const checked = await driver.checkStatus(started.payment.key);
  assert.equal(checked.outcome.code, 'approved');
  assert.equal((await sandbox.order(`${orders}3`)).requests.submit, 1);
});

test('a store that fails for a moment: the step machine pauses and writes again', async () => {
  const store = new MapStore();
  const driver = new Driver({ config, store, timeoutMs: 5_000 });
  const started = await driver.start(start(`${orders}4`));
  // The answer's write fails twice, then goes through.
  const real = store.replace.bind(store);
  let failures = 0;
  store.replace = async (expected, row) => {
    if (row.inFlightSince === null && failures < 2) {
      failures++;
      throw new Error('database is locked');
    }
    return real(expected, row);
  };
  const paid = await driver.submit(started.payment.key, '123456');
  assert.equal(failures, 2);
  assert.equal(paid.outcome.code, 'approved');
  assert.equal((await driver.load(started.payment.key)).isPaid, true);
});
