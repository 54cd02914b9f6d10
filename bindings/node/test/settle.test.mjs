// Settlement through Driver.settle: a signed return URL (a 3DS card sent to the bank page)
// and webhooks (taken from the sandbox, and delivered by it to a handler over HTTP).
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, test } from 'node:test';

import { CardSource, Config, Driver, DirectOtpError, Sandbox, Settlement, SqliteStore, StartRequest, codes } from 'direct-otp';

import { prefix, queryOf, sleep, tempDb } from './support/common.mjs';

const KEY = 'sk_test_settle';
const RESPONSE_KEY = 'rk_test_settle';
const HOOK = { username: 'hook_user', password: 'hook_pass' };
const orders = prefix('settle');

let receiver;
let received = [];
let sandbox;
let driver;

before(async () => {
  // The merchant's webhook handler: settles through the driver, answers as docs/codes.md says.
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      try {
        const settled = await driver.settle(Settlement.webhook({ authorization: req.headers.authorization, body, ...HOOK }));
        received.push({ outcome: settled.outcome.code, key: settled.payment.key });
        res.writeHead(200).end();
      } catch (e) {
        received.push({ error: e.code });
        res.writeHead(e.code === 'unknown_order' ? 200 : 400).end();
      }
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  sandbox = Sandbox.start({
    apiKey: KEY,
    otp: '123456',
    responseKey: RESPONSE_KEY,
    returnUrl: 'https://shop.example/back',
    webhookUsername: HOOK.username,
    webhookPassword: HOOK.password,
  });
  await sandbox.setCard('tok_3ds', 'three_ds_failover');
  driver = new Driver({ config: new Config({ baseUrl: sandbox.url, apiKey: KEY }), store: new SqliteStore(tempDb('settle')), timeoutMs: 5_000 });
});

after(() => {
  sandbox.stop();
  receiver.close();
});

const start = (order, card = 'tok_visa') =>
  new StartRequest({ orderId: order, merchantId: 'acme', routingId: 'cust_9', source: CardSource.token(card) });

test('a 3DS card: the bank page, then the signed return URL settles it', async () => {
  const order = `${orders}3ds`;
  const started = await driver.start(start(order, 'tok_3ds'));
  assert.equal(started.outcome.code, 'bank_page');
  assert.equal(started.view.next, 'bank_page');
  const page = await driver.bankPage(started.payment.key);
  assert.equal(page.url, started.view.bankPageUrl);

  const back = await sandbox.bankPage(order, 'success');
  const settled = await driver.settle(Settlement.returnUrl({ query: queryOf(back.returnUrl), responseKey: RESPONSE_KEY }));
  assert.ok(['approved', 'confirming'].includes(settled.outcome.code), settled.outcome.code);
  assert.equal(settled.payment.key, started.payment.key);
  if (settled.check !== null) assert.ok(!(settled.check instanceof DirectOtpError), String(settled.check));
  const stored = await driver.load(started.payment.key);
  assert.equal(stored.isPaid, true);

  // The same return again changes nothing; a wrong response key proves nothing.
  const again = await driver.settle({ kind: 'return_url', query: queryOf(back.returnUrl), responseKey: RESPONSE_KEY });
  assert.ok(['agrees', 'duplicate', 'approved'].includes(again.outcome.code), again.outcome.code);
  await assert.rejects(
    driver.settle({ kind: 'return_url', query: queryOf(back.returnUrl), responseKey: 'rk_wrong' }),
    (e) => e instanceof DirectOtpError && e.code === 'return_bad_signature',
  );
  const unsigned = queryOf(back.returnUrl).replace(/&signature=[^&]*/, '');
  await assert.rejects(
    driver.settle({ kind: 'return_url', query: unsigned, responseKey: RESPONSE_KEY }),
    (e) => e instanceof DirectOtpError && e.code.startsWith('return_'),
  );
});

test('webhooks taken from the sandbox settle the payment; a duplicate changes nothing', async () => {
  const order = `${orders}hook`;
  const started = await driver.start(start(order));
  const key = started.payment.key;
  // Paid outside this driver (another server answered the submit): the webhook tells.
  const page = await driver.bankPage(key);
  assert.ok(page.url);
  await sandbox.bankPage(order, 'success');
  const hooks = await sandbox.takeWebhooks(order);
  assert.ok(hooks.length >= 1, 'the bank queued a webhook');
  const last = hooks[hooks.length - 1];
  assert.match(last.headers.authorization, /^Basic /);

  const settled = await driver.settle({ kind: 'webhook', authorization: last.headers.authorization, body: last.body, ...HOOK });
  assert.ok(['approved', 'confirming'].includes(settled.outcome.code), settled.outcome.code);
  assert.equal((await driver.load(key)).isPaid, true);
  const twice = await driver.settle({ kind: 'webhook', authorization: last.headers.authorization, body: last.body, ...HOOK });
  assert.ok(['duplicate', 'agrees'].includes(twice.outcome.code), twice.outcome.code);

  await assert.rejects(
    driver.settle({ kind: 'webhook', authorization: last.headers.authorization, body: last.body, username: 'hook_user', password: 'nope' }),
    (e) => e instanceof DirectOtpError && e.code === 'webhook_bad_credentials',
  );
  await assert.rejects(
    driver.settle({ kind: 'webhook', body: last.body, ...HOOK }),
    (e) => e instanceof DirectOtpError && e.code === 'webhook_missing_authorization',
  );
});

test('the sandbox delivers webhooks over HTTP to a handler that settles through the driver', async () => {
  received = [];
  const hooked = Sandbox.start({ apiKey: KEY, otp: '123456', webhookUrl: `http://127.0.0.1:${receiver.address().port}/hook` });
  try {
    await hooked.updateSettings({ webhookCredentials: HOOK });
    assert.equal((await hooked.settings()).webhookUrl, `http://127.0.0.1:${receiver.address().port}/hook`);
    const d = new Driver({ config: new Config({ baseUrl: hooked.url, apiKey: KEY }), store: driver.store, timeoutMs: 5_000 });
    const order = `${orders}delivered`;
    const started = await d.start(start(order));
    const paid = await d.submit(started.payment.key, '123456');
    assert.equal(paid.outcome.code, 'approved');
    for (let i = 0; i < 100 && !received.some((r) => r.key === started.payment.key); i++) await sleep(20);
    const mine = received.filter((r) => r.key === started.payment.key);
    assert.ok(mine.length >= 1, `a webhook was delivered and settled: ${JSON.stringify(received)}`);
    // Each a settle outcome of the registry (one may have raced the submit's answer: in_flight).
    const settleOutcomes = new Set(codes().filter((c) => c.types.includes('SettleOutcome')).map((c) => c.code));
    assert.ok(mine.every((r) => settleOutcomes.has(r.outcome)), JSON.stringify(mine));
    assert.equal((await d.load(started.payment.key)).isPaid, true);
    const counters = await hooked.counters();
    assert.ok(counters.webhook_deliveries.delivered >= 1);
    assert.equal(counters.webhook_deliveries.given_up, 0);
  } finally {
    hooked.stop();
  }
});

test('a sandbox that cannot start is a coded error; one stopped answers no more', async () => {
  assert.throws(() => Sandbox.start({ apiKey: KEY, webhookUrl: 'http://example.com/hook' }), (e) => e instanceof DirectOtpError && e.code === 'sandbox_webhook_url');
  assert.throws(() => Sandbox.start({ apiKey: KEY, port: 'eighty' }), (e) => e instanceof DirectOtpError && e.code === 'wire_shape');
  const taken = Sandbox.start({ apiKey: KEY });
  try {
    const port = Number(new URL(taken.url).port);
    assert.throws(() => Sandbox.start({ apiKey: KEY, port }), (e) => e instanceof DirectOtpError && e.code === 'sandbox_unavailable');
  } finally {
    taken.stop();
  }
  assert.equal(taken.running, false);
  taken.stop();
  await assert.rejects(taken.counters(), TypeError);
});
