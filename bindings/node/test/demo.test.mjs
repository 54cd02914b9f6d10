// The demo's three payments (docs/sandbox.md, "The demo"), over real HTTP with fetch,
// through the Driver and the SQLite store: (1) a resend, a wrong OTP, the right OTP;
// (2) no SMS: resends to the limit, the bank page, the signed return, confirmed; (3) the
// submit's answer lost (DropResponse): the status check settles it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { CardSource, Config, Driver, DirectOtpError, FetchHttp, Sandbox, SqliteStore, StartRequest } from 'direct-otp';

import { prefix, queryOf, tempDb } from './support/common.mjs';

const KEY = 'sk_test_demo';
const RESPONSE_KEY = 'rk_test_demo';
let sandbox;
let driver;
let clock;
const orders = prefix('demo');

before(async () => {
  sandbox = Sandbox.start({ apiKey: KEY });
  await sandbox.updateSettings({ returnUrl: 'https://shop.example/return', responseKey: RESPONSE_KEY });
  await sandbox.setCard('tok_no_sms', 'no_sms');
  // The resend cooldown (30 s by default) passes on this clock, not on the wall's.
  clock = { offset: 0, now: () => Date.now() + clock.offset };
  driver = new Driver({
    config: new Config({ baseUrl: sandbox.url, apiKey: KEY }),
    store: new SqliteStore(tempDb('demo')),
    http: new FetchHttp({ clock: () => clock.now() }),
    timeoutMs: 5_000,
    clock: () => clock.now(),
  });
});

after(() => sandbox.stop());

function start(order, cardToken = 'tok_visa') {
  return new StartRequest({ orderId: order, merchantId: 'acme', routingId: 'cust_1', source: CardSource.token(cardToken) });
}

test('payment 1: a resend, a wrong OTP, then the right OTP: CHARGED', async () => {
  const order = `${orders}1`;
  const started = await driver.start(start(order));
  assert.equal(started.outcome.code, 'otp_sent');
  assert.equal(started.view.next, 'enter_otp');
  const key = started.payment.key;
  assert.equal(key, `${order}/1`);
  const first = await sandbox.otp(order);
  assert.match(first, /^\d{6}$/);

  // Too early: the core refuses the resend (its cooldown), nothing is sent.
  await assert.rejects(driver.resend(key), (e) => e instanceof DirectOtpError && e.code === 'cooldown' && e.fields.until instanceof Date);
  clock.offset += 31_000;
  const resent = await driver.resend(key);
  assert.equal(resent.outcome.code, 'otp_sent');
  assert.equal(typeof resent.outcome.sendsLeft, 'number');
  const second = await sandbox.otp(order);
  assert.notEqual(second, first, 'a resend replaces the OTP');

  const wrong = second === '000000' ? '111111' : '000000';
  const tried = await driver.submit(key, wrong);
  assert.equal(tried.outcome.code, 'wrong_otp');
  assert.equal(tried.outcome.attemptsLeft, tried.view.attemptsLeft);

  const paid = await driver.submit(key, second);
  assert.equal(paid.outcome.code, 'approved');
  assert.equal(paid.outcome.status, 'CHARGED');
  assert.equal(paid.payment.isPaid, true);
  assert.equal(paid.payment.status, 'CHARGED');

  const stored = await driver.load(key);
  assert.equal(stored.toRecord(), paid.payment.toRecord(), 'the store holds what the driver returned');
  const bank = await sandbox.order(order);
  assert.deepEqual(bank.requests, { bank_page: 0, card_bin: 0, order_status: 0, resend: 1, start: 1, submit: 2 });
});

test('payment 2: no SMS: resends to the limit, the bank page, the signed return, confirmed', async () => {
  const order = `${orders}2`;
  const started = await driver.start(start(order, 'tok_no_sms'));
  assert.equal(started.outcome.code, 'otp_sent');
  const key = started.payment.key;
  assert.equal(await sandbox.otp(order), null, 'no SMS arrives');

  let done = started;
  const outcomes = [];
  for (let i = 0; i < 10 && done.view.sendsLeft > 0; i++) {
    clock.offset += 31_000;
    done = await driver.resend(key);
    outcomes.push(done.outcome.code);
  }
  assert.ok(outcomes.length >= 1);
  assert.equal(done.view.canResend, false, 'the send limit is reached');
  assert.equal(done.view.sendsLeft, 0);
  await assert.rejects(driver.resend(key), (e) => e instanceof DirectOtpError && e.code === 'send_limit_reached');

  const page = await driver.bankPage(key);
  assert.match(page.url, /^http:\/\/127\.0\.0\.1:\d+\/v2\/pay\/start\//);
  assert.equal(page.view.next, 'await_bank_page');

  // The cardholder authenticates on the bank page; the bank sends the browser back.
  const finished = await sandbox.bankPage(order, 'success');
  assert.equal(finished.status, 'CHARGED');
  assert.ok(finished.returnUrl.startsWith('https://shop.example/return?'));
  const settled = await driver.settle({ kind: 'return_url', query: queryOf(finished.returnUrl), responseKey: RESPONSE_KEY });
  assert.ok(['approved', 'confirming'].includes(settled.outcome.code), settled.outcome.code);

  // The order status confirms it (the settle's own check, or one now).
  let confirmed = settled.check;
  if (!confirmed || confirmed instanceof DirectOtpError) confirmed = (await driver.checkStatus(key)).outcome;
  assert.ok(['confirmed', 'approved'].includes(confirmed.code), confirmed.code);
  const stored = await driver.load(key);
  assert.equal(stored.isPaid, true);
  assert.equal(stored.view().confirmed, true);
  assert.equal(stored.view().settledBy !== null, true);

  // A tampered return is refused with its code, and changes nothing.
  const tampered = queryOf(finished.returnUrl).replace('CHARGED', 'AUTHORIZED');
  await assert.rejects(
    driver.settle({ kind: 'return_url', query: tampered, responseKey: RESPONSE_KEY }),
    (e) => e instanceof DirectOtpError && e.code === 'return_bad_signature',
  );
  assert.equal((await driver.load(key)).toRecord(), stored.toRecord());
});

test('payment 3: the submit reaches the bank, its answer is lost: the status check settles it', async () => {
  const order = `${orders}3`;
  const started = await driver.start(start(order));
  const key = started.payment.key;
  const otp = await sandbox.otp(order);
  await sandbox.fault({ fault: 'drop_response', endpoint: 'submit', orderId: order });

  const lost = await driver.submit(key, otp);
  assert.equal(lost.outcome.code, 'check_status');
  assert.equal(lost.outcome.why, 'maybe_sent');
  assert.ok(lost.transportError === null || typeof lost.transportError.code === 'string');
  // The core never re-sends a submit that may have been acted on.
  await assert.rejects(driver.submit(key, otp), (e) => e instanceof DirectOtpError && e.code === 'check_status');

  const checked = await driver.checkStatus(key);
  assert.equal(checked.outcome.code, 'approved');
  assert.equal(checked.outcome.status, 'CHARGED');
  assert.equal(checked.payment.isPaid, true);
  const bank = await sandbox.order(order);
  assert.equal(bank.requests.submit, 1, 'the submit reached the bank once');
  assert.equal(bank.requests.order_status, 1);
  assert.equal(bank.status, 'CHARGED');
});
