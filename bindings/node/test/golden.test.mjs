// The golden records (tests/golden/, replayed by every language): each payment of
// script.json starts from its stored record, runs its steps through the Node Payment
// (sans-IO: command, handle), and its record and view must equal <name>.record.json and
// <name>.view.json byte for byte; the record stored in SqliteStore loads back the same.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { Command, Config, Payment, SqliteStore } from 'direct-otp';

import { repo, tempDb } from './support/common.mjs';

const dir = path.join(repo, 'tests', 'golden');
const script = JSON.parse(fs.readFileSync(path.join(dir, 'script.json'), 'utf8'));
const c = script.config;
const config = new Config({ baseUrl: c.base_url, apiKey: c.api_key, merchantId: c.merchant_id, version: c.version, autoCapture: c.auto_capture });
const store = new SqliteStore(tempDb('golden'));

/** A command's wire form as the idiomatic Command. */
function command(wire) {
  if (wire.command === 'submit') return Command.submit(wire.otp);
  if (wire.command === 'start') {
    const s = wire.source;
    return Command.start(
      s.type === 'token'
        ? { type: 'token', cardToken: s.card_token, cvv: s.cvv }
        : { type: 'card', number: s.number, expiryMonth: s.expiry_month, expiryYear: s.expiry_year, cvv: s.cvv, nameOnCard: s.name_on_card },
    );
  }
  return Command.from(wire.command);
}

/** A reply's wire form as a Reply (a base64 body as its bytes). */
function reply(wire) {
  if (wire.kind !== 'answer') return { kind: wire.kind };
  const body = wire.body_base64 !== undefined ? Buffer.from(wire.body_base64, 'base64') : (wire.body ?? '');
  return { kind: 'answer', status: wire.status, body };
}

test('the golden script has payments', () => {
  assert.ok(script.payments.length >= 4);
});

for (const p of script.payments) {
  test(`golden: ${p.name}`, async () => {
    const payment = Payment.fromRecord(p.record);
    let request;
    for (const step of p.steps) {
      if (step.command) request = payment.command(config, command(step.command), step.now_ms);
      else if (step.reply) payment.handle(request, reply(step.reply), step.now_ms);
      else assert.fail(`unknown step ${JSON.stringify(step)}`);
    }
    const record = fs.readFileSync(path.join(dir, `${p.name}.record.json`), 'utf8');
    const view = fs.readFileSync(path.join(dir, `${p.name}.view.json`), 'utf8');
    assert.equal(payment.toRecord(), record, 'the record, byte for byte');
    assert.equal(payment.view(p.view_ms).text, view, 'the view, byte for byte');

    // Stored in SQLite and loaded back: the same text, the same view.
    assert.equal(await store.insertRecord(payment.toRecord()), true);
    assert.equal(await store.insertRecord(payment.toRecord()), false, 'an insert never overwrites');
    const loaded = await store.payment(payment.key);
    assert.equal(loaded.toRecord(), record);
    assert.equal(loaded.view(p.view_ms).text, view);
  });
}
