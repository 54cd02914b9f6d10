// One sans-IO step through the Node package, many times, on the fixture every language
// shares (tests/golden/bench_step.json, the Rust baseline's: benches/wire.rs `wire_step/host`):
// the record as text in, the command (a submit) -> its request -> the bank's canned answer
// handled -> the outcome, the record as text out.
//
//   node bench/step.mjs [iterations per run, default 20000]
//
// Prints {"lang":"node","us_per_step":X,"raw_us":Y}: X through the package's classes
// (Payment, Command, Request, Outcome), Y the same two host calls on the native module with
// JSON built by hand (what the classes add is X - Y); each the median of 7 runs.
// Measure with the release build of the native module (npm run build:native).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Command, Config, Payment, native } from 'direct-otp';

const iterations = Number(process.argv[2] ?? 20_000);
const RUNS = 7;
const repo = process.env.DIRECT_OTP_REPO ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const step = JSON.parse(fs.readFileSync(path.join(repo, 'tests', 'golden', 'bench_step.json'), 'utf8'));

const config = new Config({ baseUrl: step.config.base_url, apiKey: step.config.api_key });
const reply = { kind: step.reply.kind, status: step.reply.status, body: step.reply.body };
const now = step.now_ms;
if (step.command.command !== 'submit') throw new Error(`bench_step.json: a ${step.command.command}, expected a submit`);

let sink = 0;
function classes() {
  const payment = Payment.fromRecord(step.record);
  const request = payment.command(config, Command.submit(step.command.otp), now);
  const outcome = payment.handle(request, reply, now);
  sink += outcome.code.length + payment.toRecord().length;
}

const configWire = step.config;
function raw() {
  const out = JSON.parse(native.call(JSON.stringify({ fn: 'command', config: configWire, record: step.record, command: step.command, now_ms: now })));
  const done = JSON.parse(native.call(JSON.stringify({ fn: 'handle', record: out.record, token: out.request.token, reply: step.reply, now_ms: now })));
  sink += done.outcome.code.length + done.record.length;
}

function median(f) {
  for (let i = 0; i < Math.min(iterations, 2_000); i++) f();
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const begin = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) f();
    runs.push(Number(process.hrtime.bigint() - begin) / 1e3 / iterations);
  }
  runs.sort((a, b) => a - b);
  return runs[Math.floor(RUNS / 2)];
}

const probe = Payment.fromRecord(step.record);
const outcome = probe.handle(probe.command(config, Command.submit(step.command.otp), now), reply, now);
if (outcome.code !== 'wrong_otp') throw new Error(`the canned answer gave ${outcome.code}, expected wrong_otp`);

const usPerStep = median(classes);
const rawUs = median(raw);
if (sink === 0) throw new Error('nothing measured');
console.log(JSON.stringify({ lang: 'node', us_per_step: Number(usPerStep.toFixed(2)), raw_us: Number(rawUs.toFixed(2)) }));
