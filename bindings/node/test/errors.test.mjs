// Every error thrown carries a registry code (codes()); hostile input, through the classes
// and through the raw native API, throws a coded error and never crashes the process;
// secrets never show.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { inspect } from 'node:util';
import { test } from 'node:test';

import {
  CardSource,
  Command,
  Config,
  DirectOtpError,
  Payment,
  Settlement,
  SqliteStore,
  StartRequest,
  codes,
  native,
  version,
} from 'direct-otp';

import { tempDb } from './support/common.mjs';

const registry = new Set(codes().map((c) => c.code));
const config = new Config({ baseUrl: 'https://sandbox.juspay.in', apiKey: 'sk_secret_key_123' });
const start = new StartRequest({ orderId: 'ord_e1', merchantId: 'acme', routingId: 'cust_1', source: CardSource.token('tok_secret_card') });
const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);

/** Runs f; it must throw a DirectOtpError whose code is registered (and `code` if given). */
function coded(f, code) {
  let thrown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown, 'expected an error');
  assert.ok(thrown instanceof DirectOtpError, `not a DirectOtpError: ${inspect(thrown)}`);
  assert.ok(registry.has(thrown.code), `code ${thrown.code} is not in the registry`);
  assert.equal(thrown.wire.code, thrown.code);
  assert.ok(thrown.message.length > 0);
  if (code) assert.equal(thrown.code, code);
  return thrown;
}

/** The same for a raw native call: a JS Error whose `code` is registered. */
function nativeCoded(f, code) {
  let thrown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof Error, `expected an Error, got ${inspect(thrown)}`);
  assert.ok(registry.has(thrown.code), `code ${thrown.code} is not in the registry (${thrown.message})`);
  if (code) assert.equal(thrown.code, code);
  return thrown;
}

test('codes() is the registry; version() the core', () => {
  const all = codes();
  assert.ok(all.length > 100);
  for (const c of all) {
    assert.match(c.code, /^[a-z][a-z0-9_]*$/);
    assert.ok(Array.isArray(c.types) && c.types.length > 0);
    assert.equal(typeof c.meaning, 'string');
  }
  for (const code of ['wire_syntax', 'wire_shape', 'bad_record', 'bad_token', 'cooldown', 'otp_length', 'store']) assert.ok(registry.has(code), code);
  assert.match(version().version, /^\d+\.\d+\.\d+/);
});

test('refusals and bad values are coded errors', () => {
  coded(() => new Config({ baseUrl: 'ftp://x', apiKey: 'k' }), 'base_url_scheme');
  coded(() => new Config({ baseUrl: 'https://a.example', apiKey: '' }), 'bad_api_key');
  coded(() => new Config({ baseUrl: 'https://user:pw@a.example', apiKey: 'k' }), 'base_url_user_info');
  coded(() => new Config({ baseUrl: 42, apiKey: 'k' }), 'wire_shape');
  coded(() => Payment.begin(config, { ...start, orderId: 'a/b' }, { now: T0 }), undefined);
  coded(() => Payment.begin(config, { ...start, orderId: '' }, { now: T0 }), 'id_empty');
  coded(() => Payment.begin(config, { ...start, orderId: 7 }, { now: T0 }), 'wire_shape');
  coded(() => Payment.begin(config, { ...start, source: { type: 'paypal' } }, { now: T0 }), 'wire_shape');
  coded(() => Payment.begin(config, start, { now: Number.NaN }), 'wire_shape');
  coded(() => Payment.begin(config, start, { now: 1.5 }), 'wire_shape');
  coded(() => Payment.begin(config, start, { attempt: -1, now: T0 }), 'wire_shape');

  const { payment, request } = Payment.begin(config, start, { now: T0 });
  // A command while the start is in flight is refused: `in_flight`.
  coded(() => payment.command(config, Command.resend(), T0), 'in_flight');
  coded(() => payment.command(config, { command: 'submit', otp: '12' }, T0), undefined);
  coded(() => payment.command(config, { command: 'teleport' }, T0), 'wire_shape');
  coded(() => payment.handle('not-a-token', { kind: 'maybe_sent' }, T0), 'bad_token');
  coded(() => payment.handle(request, { kind: 'answer', status: 'two hundred', body: '' }, T0), 'wire_shape');
  coded(() => payment.handle(request, { kind: 'lost' }, T0), 'wire_shape');
  // The submit's OTP checks.
  coded(() => Payment.fromRecord('{').view(T0), 'bad_record');
  coded(() => Payment.fromRecord('{"format":2}').view(T0), 'bad_record');
  coded(() => Payment.fromRecord('\u0000').view(T0), 'bad_record');
  coded(() => Payment.fromRecord(12).view(T0), 'wire_shape');
  // A maybe-sent start must be checked, never sent again.
  const outcome = payment.handle(request, { kind: 'maybe_sent' }, T0);
  assert.equal(outcome.code, 'check_status');
  coded(() => payment.command(config, { command: 'start', source: { type: 'token', cardToken: 'tok_2' } }, T0));
  coded(() => payment.command(config, Command.submit('123456'), T0));
  coded(() => payment.handle(request, { kind: 'not_sent' }, T0));
});

test('the raw native API: bad JSON, wrong types, huge strings and NUL throw coded errors', () => {
  nativeCoded(() => native.call('{'), 'wire_syntax');
  nativeCoded(() => native.call(''), 'wire_syntax');
  nativeCoded(() => native.call('[]'), 'wire_shape');
  nativeCoded(() => native.call('{"fn":"nope"}'), 'wire_shape');
  nativeCoded(() => native.call('{"fn":"view","record":"{}","now_ms":"soon"}'), 'wire_shape');
  nativeCoded(() => native.call('{"fn":"view","record":"\\u0000","now_ms":0}'), 'bad_record');
  nativeCoded(() => native.call('{"fn":"codes"}\u0000'), 'wire_syntax');
  nativeCoded(() => native.call('\u0000'), 'wire_syntax');
  nativeCoded(() => native.call('\ud800'), 'wire_syntax');
  for (const wrong of [undefined, null, 42, true, {}, [], () => 1, Symbol('s'), 10n]) {
    nativeCoded(() => native.call(wrong), 'wire_syntax');
    nativeCoded(() => new native.HostSteps(wrong), 'wire_syntax');
    nativeCoded(() => native.SandboxServer.start(wrong), 'wire_syntax');
  }
  nativeCoded(() => native.call(), 'wire_syntax');
  // Buffers of UTF-8 JSON are JSON text too.
  assert.ok(JSON.parse(native.call(Buffer.from('{"fn":"version"}'))).version);
  nativeCoded(() => native.call(Buffer.from([0xff, 0xfe, 0x7b])), 'wire_syntax');

  // Huge strings: 32 MiB of a key, of nesting, of a record.
  const huge = 'x'.repeat(32 << 20);
  nativeCoded(() => native.call(huge), 'wire_syntax');
  nativeCoded(() => native.call(JSON.stringify({ fn: 'view', record: huge, now_ms: 0 })), 'bad_record');
  nativeCoded(() => native.call('['.repeat(1 << 20)), undefined);
  nativeCoded(() => native.call(JSON.stringify({ fn: 'begin', config: config.toWire(), start: { ...start.toWire(), order_id: huge }, attempt: 1, now_ms: 0 })), undefined);

  // The steps: a bad call, a bad input, a bad time; the machine survives each.
  nativeCoded(() => new native.HostSteps('{"config":{},"call":"run"}'));
  const steps = new native.HostSteps(JSON.stringify({ config: config.toWire(), timeout_ms: 1000, call: 'run', key: 'ord_x/1', command: { command: 'resend' } }));
  nativeCoded(() => steps.resume('{', 0), 'wire_syntax');
  nativeCoded(() => steps.resume('{"result":"begin"}', Number.POSITIVE_INFINITY), 'wire_shape');
  nativeCoded(() => steps.resume('{"result":"begin"}', '0'), 'wire_shape');
  nativeCoded(() => steps.resume(7, 0), 'wire_syntax');
  const io = JSON.parse(steps.resume('{"result":"begin"}', T0));
  assert.equal(io.io.op, 'load');
  // A result of another I/O's form is the machine's to judge: it ends the call, coded.
  const odd = JSON.parse(steps.resume('{"result":"listed","keys":[]}', T0));
  assert.ok(odd.finished?.error ? registry.has(odd.finished.error.code) : odd.io, JSON.stringify(odd));
  // A stored record that does not load: the call fails with `store` (store_corrupt), the row untouched.
  const again = new native.HostSteps(JSON.stringify({ config: config.toWire(), timeout_ms: 1000, call: 'run', key: 'ord_x/1', command: { command: 'resend' } }));
  again.resume('{"result":"begin"}', T0);
  const corrupt = JSON.parse(again.resume(JSON.stringify({ result: 'loaded', record: 'garbage\u0000' }), T0));
  assert.equal(corrupt.finished.error.code, 'store');
  assert.equal(corrupt.finished.error.reason, 'store_corrupt');

  // The SQLite store: a bad path, a bad I/O.
  nativeCoded(() => new native.SqliteStore(':memory:'), 'store_config');
  nativeCoded(() => new native.SqliteStore(42), 'wire_syntax');
  const store = new native.SqliteStore(tempDb('hostile'));
  nativeCoded(() => store.ioSync('{'), 'wire_syntax');
  nativeCoded(() => store.ioSync(null), 'wire_syntax');
  nativeCoded(() => new native.SqliteStore(tempDb('hostile2'), 'soon'), 'wire_shape');
});

test('the SQLite store refuses what it cannot take, as a store failure or a code', async () => {
  const store = new SqliteStore(tempDb('store'));
  assert.equal(await store.load('nope/1'), null);
  const input = JSON.parse(await store.hostIo(JSON.stringify({ op: 'load', key: 'a\u0000b' })));
  assert.ok(['loaded', 'store_failed'].includes(input.result));
  // Not a store's I/O, or a record that does not load: refused with its code (a rejection).
  await assert.rejects(store.hostIo('{"op":"drop_table"}'), (e) => e.code === 'wire_shape' && typeof e.line === 'number');
  await assert.rejects(store.hostIo('{'), (e) => e.code === 'wire_syntax');
  await assert.rejects(store.hostIo('{"op":"insert","record":"{}"}'), (e) => e.code === 'bad_record');
  await assert.rejects(store.insert({ key: 'k/1', orderId: 'k', attempt: 1, revision: 1, inFlightSince: null, record: 'not a record' }), (e) => e instanceof DirectOtpError && e.code === 'bad_record');
});

test('secrets never show: inspect, JSON, errors', () => {
  const shown = [
    inspect(config),
    JSON.stringify(config),
    inspect(start, { depth: 9 }),
    JSON.stringify(start),
    inspect(CardSource.card({ number: '4111111111111111', expiryMonth: '12', expiryYear: '2030', cvv: '123' })),
    inspect(Command.submit('987654')),
    JSON.stringify(Command.submit('987654')),
    inspect(Settlement.webhook({ body: '{}', username: 'u_secret', password: 'p_secret' })),
    inspect(Settlement.returnUrl({ query: 'a=1', responseKey: 'rk_secret' })),
  ].join('\n');
  for (const secret of ['sk_secret_key_123', 'tok_secret_card', '4111111111111111', '987654', 'p_secret', 'u_secret', 'rk_secret']) {
    assert.ok(!shown.includes(secret), `${secret} shown in:\n${shown}`);
  }
  const { request } = Payment.begin(config, start, { now: T0 });
  const auth = Buffer.from('sk_secret_key_123:').toString('base64');
  assert.ok(request.headers.some((h) => h.sensitive && h.value.includes(auth)), 'the request carries the key to send');
  for (const text of [inspect(request, { depth: 9 }), JSON.stringify(request)]) {
    assert.ok(!text.includes(auth) && !text.includes('tok_secret_card'), text);
  }
  const e = coded(() => Payment.begin(new Config({ baseUrl: 'https://a.example', apiKey: 'sk_secret_key_123' }), { ...start, orderId: '' }, { now: T0 }));
  assert.ok(!inspect(e).includes('sk_secret_key_123') && !JSON.stringify(e).includes('sk_secret_key_123'));
  const otp = coded(() => Payment.fromRecord('{}').command(config, Command.submit('12ab56'), T0));
  assert.ok(!otp.message.includes('12ab56'));
});

test('hostile input in a child process: it ends normally, never killed by a signal', () => {
  const script = `
    const { native, Payment, Config } = require('direct-otp');
    const inputs = ['{', '\\u0000', 'null', '{"fn":1}', '"'.repeat(1e6), '{"fn":"view","record":"{\\\\"revision\\\\":18446744073709551616}","now_ms":0}'];
    let n = 0;
    for (const i of inputs) { try { native.call(i) } catch (e) { if (typeof e.code === 'string') n++ } }
    for (const t of [NaN, -Infinity, 2 ** 60, -(2 ** 60), 0.1]) { try { new native.HostSteps('{"config":{"base_url":"https://a.example","api_key":"k"},"timeout_ms":1,"call":"sweep","limit":1,"check":false}').resume('{"result":"begin"}', t) } catch (e) { if (typeof e.code === 'string') n++ } }
    console.log(n);
  `;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: process.cwd() });
  assert.equal(run.signal, null, run.stderr);
  assert.equal(run.status, 0, run.stderr);
  assert.ok(Number(run.stdout.trim()) >= 9, run.stdout + run.stderr);
});
