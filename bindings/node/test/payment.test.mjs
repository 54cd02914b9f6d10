// The sans-IO Payment by hand (no driver): begin, store, send with FetchHttp, handle; the
// record as text in and out; views, next steps, refusals with their fields.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { CardSource, Command, Config, DirectOtpError, FetchHttp, NextStep, Outcome, Payment, Request, Sandbox, StartRequest, View } from 'direct-otp';

import { closedPort, prefix } from './support/common.mjs';

const KEY = 'sk_test_payment';
let sandbox;
let config;
const http = new FetchHttp({ timeoutMs: 5_000 });
const orders = prefix('pay');

before(() => {
  sandbox = Sandbox.start({ apiKey: KEY, otp: '424242' });
  config = new Config({ baseUrl: sandbox.url, apiKey: KEY, merchantId: 'acme' });
});
after(() => sandbox.stop());

test('a payment by hand: every step through the record text', async () => {
  const t0 = Date.now();
  const start = new StartRequest({
    orderId: `${orders}1`,
    merchantId: 'acme',
    routingId: 'cust_1',
    source: CardSource.token('tok_visa'),
    policy: { maxSends: 3, maxAttempts: 2, resendCooldownMs: 10_000, lifetimeMs: 300_000 },
    expectedAmount: { amount: '1499.00', currency: 'INR' },
  });
  let { payment, request } = Payment.begin(config, start, { now: t0 });
  assert.ok(request instanceof Request);
  assert.equal(request.kind, 'start');
  assert.equal(request.method, 'POST');
  assert.ok(request.url.startsWith(sandbox.url));
  assert.equal(payment.key, `${orders}1/1`);
  assert.equal(payment.nextStep(t0).code, 'wait');

  // Stored as text, loaded back, then the answer handed to the loaded copy.
  let stored = payment.toRecord();
  payment = Payment.fromRecord(stored);
  const outcome = payment.handle(request, await http.reply(request), t0);
  assert.ok(outcome instanceof Outcome);
  assert.equal(outcome.code, 'otp_sent');
  const view = payment.view(t0);
  assert.ok(view instanceof View);
  assert.equal(view.next, 'enter_otp');
  assert.equal(view.canSubmit, true);
  assert.equal(view.sendsLeft, outcome.sendsLeft);
  assert.equal(typeof view.text, 'string');
  assert.deepEqual(JSON.parse(view.text), view.wire);
  assert.ok(payment.nextStep(t0) instanceof NextStep);

  // A resend inside the cooldown: refused, with the time it ends as a Date.
  const cooldown = (() => {
    try {
      payment.command(config, Command.resend(), t0 + 1_000);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(cooldown instanceof DirectOtpError);
  assert.equal(cooldown.code, 'cooldown');
  assert.ok(cooldown.fields.until instanceof Date);
  assert.ok(cooldown.fields.until.getTime() >= t0 + 10_000 - 1000);
  assert.equal(payment.toRecord(), payment.toRecord(), 'a refusal changes nothing');

  // A stale token: the answer of one copy handed to another is refused.
  stored = payment.toRecord();
  const a = Payment.fromRecord(stored);
  const b = Payment.fromRecord(stored);
  const ra = a.command(config, { command: 'submit', otp: '000000' }, t0 + 2_000);
  const rb = b.command(config, Command.submit('000000'), t0 + 2_000);
  assert.notEqual(ra.token, rb.token);
  assert.throws(() => a.handle(rb, { kind: 'maybe_sent' }, t0 + 2_000), (e) => e instanceof DirectOtpError && e.code === 'stale_token');

  // The right OTP: paid, for the amount expected.
  const paidReply = await http.reply(ra);
  const wrong = a.handle(ra, paidReply, t0 + 2_000);
  assert.equal(wrong.code, 'wrong_otp');
  const right = a.command(config, Command.submit('424242'), t0 + 3_000);
  const approved = a.handle(right.token, await http.reply(right), t0 + 3_000);
  assert.ok(['approved', 'check_status'].includes(approved.code), approved.code);
  if (approved.code === 'check_status') {
    const check = a.command(config, Command.checkStatus(), t0 + 3_000);
    assert.equal(a.handle(check, await http.reply(check), t0 + 3_000).code, 'approved');
  }
  assert.equal(a.isPaid, true);
  assert.equal(a.isFinal, true);
  assert.equal(a.status, 'CHARGED');
  assert.throws(() => a.command(config, Command.resend(), t0 + 60_000), (e) => e.code === 'already_final');
});

test('a reply whose body is not UTF-8 crosses as bytes (body_base64)', () => {
  const t0 = Date.now();
  const { payment, request } = Payment.begin(config, { orderId: `${orders}2`, merchantId: 'acme', routingId: 'c', source: { type: 'token', cardToken: 'tok' } }, { now: t0 });
  const outcome = payment.handle(request, { kind: 'answer', status: 200, body: new Uint8Array([0xff, 0xfe, 0x00, 0x7b]) }, t0);
  assert.equal(typeof outcome.code, 'string');
  assert.ok(['check_status', 'rejected'].includes(outcome.code), outcome.code);
});

test('FetchHttp against the sandbox: the Request of a Payment, sent as is', async () => {
  const { request } = Payment.begin(config, { orderId: `${orders}3`, merchantId: 'acme', routingId: 'c', source: { type: 'token', cardToken: 'tok' } });
  const reply = await http.reply(request);
  assert.equal(reply.kind, 'answer');
  assert.equal(reply.status, 200);
  assert.match(Buffer.from(reply.body).toString('utf8'), /PENDING_VBV/);
  const refused = await new FetchHttp().reply({ ...request, url: `http://127.0.0.1:${await closedPort()}/txns`, headers: request.headers });
  assert.equal(refused.kind, 'not_sent');
});

test('Payment.create: a new payment, nothing sent, started with the card alone', async () => {
  const t0 = Date.now();
  const payment = Payment.create({ orderId: `${orders}4`, merchantId: 'acme', routingId: 'c', source: CardSource.token('tok_x') }, { now: t0 });
  assert.equal(payment.view(t0).next, 'start');
  assert.equal(payment.key, `${orders}4/1`);
  const request = payment.command(config, Command.start({ type: 'token', cardToken: 'tok_visa' }), t0);
  assert.equal(request.kind, 'start');
  assert.equal(payment.view(t0).next, 'wait');
  const outcome = payment.handle(request, await http.reply(request), t0);
  assert.equal(outcome.code, 'otp_sent');
  assert.equal(await sandbox.otp(`${orders}4`), '424242');
});
