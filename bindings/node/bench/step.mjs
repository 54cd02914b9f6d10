// One sans-IO step through the Node package, many times: the record as text in, the
// command `resend` -> its request -> the canned resend answer handled -> the outcome, the
// record as text out. The same step as the Rust `wire_step` bench (benches/wire.rs), with a
// resend. Prints {"lang":"node","us_per_step":X} (the median of several runs).
//
//   node bench/step.mjs [iterations per run, default 20000]
//
// Measure with the release build of the native module (npm run build:native).
import { CardSource, Command, Config, FetchHttp, Payment, Sandbox, StartRequest } from 'direct-otp';

const iterations = Number(process.argv[2] ?? 20_000);
const RUNS = 7;

// The fixture: a payment on its OTP page (stored as text) and the bank's answer to a resend,
// taken once from the sandbox over loopback.
const sandbox = Sandbox.start({ apiKey: 'sk_bench' });
const config = new Config({ baseUrl: sandbox.url, apiKey: 'sk_bench' });
const http = new FetchHttp();
const t0 = Date.UTC(2026, 10, 25, 10, 0, 0);
const start = new StartRequest({ orderId: 'ord_bench', merchantId: 'acme', routingId: 'cust_1', source: CardSource.token('tok_visa') });
const { payment, request } = Payment.begin(config, start, { now: t0 });
payment.handle(request, await http.reply(request), t0);
const stored = payment.toRecord();
const now = t0 + 31_000;
const probe = Payment.fromRecord(stored);
const resend = probe.command(config, Command.resend(), now);
const answer = await http.reply(resend);
sandbox.stop();
const canned = { kind: 'answer', status: answer.status, body: Buffer.from(answer.body).toString('utf8') };
if (probe.handle(resend, canned, now).code !== 'otp_sent') throw new Error('the canned answer is not a resend answer');

let sink = 0;
function step() {
  const p = Payment.fromRecord(stored);
  const out = p.command(config, Command.resend(), now);
  const outcome = p.handle(out, canned, now);
  const record = p.toRecord();
  sink += outcome.code.length + record.length + out.url.length;
}

for (let i = 0; i < Math.min(iterations, 2_000); i++) step();
const perRun = [];
for (let r = 0; r < RUNS; r++) {
  const begin = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) step();
  perRun.push(Number(process.hrtime.bigint() - begin) / 1e3 / iterations);
}
perRun.sort((a, b) => a - b);
const median = perRun[Math.floor(RUNS / 2)];
if (sink === 0) throw new Error('nothing measured');
console.log(JSON.stringify({ lang: 'node', us_per_step: Number(median.toFixed(2)) }));
