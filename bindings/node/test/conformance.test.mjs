// The transport conformance table (tests/conformance/transport.json, docs/conformance.md)
// for FetchHttp, against the sandbox's faults, by the harness rules in the file.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { FetchHttp, Sandbox } from 'direct-otp';

import { closedPort, repo } from './support/common.mjs';

const table = JSON.parse(fs.readFileSync(path.join(repo, 'tests', 'conformance', 'transport.json'), 'utf8'));
const { harness } = table;
let sandbox;

before(() => {
  sandbox = Sandbox.start({ apiKey: harness.api_key });
});
after(() => sandbox.stop());

async function base(target) {
  const port = new URL(sandbox.url).port;
  switch (target) {
    case 'sandbox':
      return sandbox.url;
    case 'closed_port':
      return `http://127.0.0.1:${await closedPort()}`;
    case 'https_on_plain_port':
      return `https://127.0.0.1:${port}`;
    default:
      throw new Error(`unknown target ${target}`);
  }
}

test('the file is the version this harness knows', () => {
  assert.equal(table.version, 1);
  assert.ok(table.cases.length >= 18);
});

for (const c of table.cases) {
  test(`conformance: ${c.id} (${c.class})`, async () => {
    await sandbox.reset();
    for (const fault of c.faults) await sandbox.control('POST', 'faults', fault);
    const form = new URLSearchParams({
      order_id: c.id,
      merchant_id: 'acme',
      payment_method_type: 'CARD',
      card_token: 'tok_visa',
      auth_type: 'OTP',
      format: 'json',
    });
    const http = new FetchHttp({ bodyLimit: c.client.body_limit ?? 65_536 });
    const started = Date.now();
    const out = await http.exchange(
      {
        method: 'POST',
        url: `${await base(c.target)}/txns`,
        headers: [
          ['authorization', `Basic ${Buffer.from(`${harness.api_key}:`).toString('base64')}`],
          ['x-routing-id', 'cust_1'],
          ['content-type', 'application/x-www-form-urlencoded'],
        ],
        body: form.toString(),
      },
      { timeoutMs: c.client.timeout_ms },
    );
    const elapsed = Date.now() - started;
    const reported = out.result === 'answer' ? 'answer' : out.maybeSent ? 'maybe_sent' : 'not_sent';
    const allowed = [c.expect.result, ...(c.expect.may_report ?? [])];
    assert.ok(allowed.includes(reported), `${c.id}: reported ${reported} (${out.message ?? out.status}), expected ${allowed.join(' or ')}`);
    if (reported === 'answer' && c.expect.status !== undefined) assert.equal(out.status, c.expect.status);
    if (c.id === 'body_at_limit') assert.equal(out.body.length, 65_536);
    // One deadline for the whole exchange: a timeout case ends near it, not at the fault's delay.
    if (c.expect.result === 'maybe_sent' && c.client.timeout_ms < 1000) assert.ok(elapsed < c.client.timeout_ms + 1500, `took ${elapsed} ms`);

    const counters = await sandbox.counters();
    assert.equal(counters.requests.start, c.expect.bank_requests, `${c.id}: requests that reached POST /txns`);
    const order = await sandbox.order(c.id);
    assert.equal(order !== null, c.expect.applied, `${c.id}: the bank acted on it`);
  });
}
