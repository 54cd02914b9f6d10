// The safety protocol (docs/concurrency.md: write-ahead, compare-and-swap, retries, the
// sweep) in Node: the core's step machine (`HostSteps`) decides every step; this loop only
// does the I/O it asks for (the store, the HTTP client, a pause) and hands the result back.

import { Config, Command, type CommandLike, Settlement, StartRequest, type StartRequestOptions, type ReturnUrlOptions, type WebhookOptions } from './config';
import { type Instant, toMs } from './convert';
import { DirectOtpError, type WireErrorForm } from './errors';
import { FetchHttp, type Http, type SendIo } from './http';
import { guard, native } from './native';
import { Payment } from './payment';
import { BankPage, Done, Settled, Swept } from './results';
import { type HostIoStore, rowFromWire, type Store, storeFailed } from './store';

/** The options of a `Driver`. */
export interface DriverOptions {
  config: Config;
  store: Store;
  /** The HTTP client (default: a `FetchHttp`). */
  http?: Http;
  /** The transport's deadline for a whole exchange (ms; default 30,000). */
  timeoutMs?: number;
  /** After how long a request in flight counts as abandoned (ms; default twice the timeout). */
  graceMs?: number;
  /** The clock: Unix ms or a `Date` (default `Date.now`). The core reads no clock of its own. */
  clock?: () => Instant;
}

type Wire = Record<string, unknown>;

/**
 * Drives payments through the core's step machine over a `Store` and an `Http` client:
 * every call is write-ahead (the payment is stored before its request leaves), stores with
 * compare-and-swap, and leaves nothing a crash cannot recover (`sweep`).
 */
export class Driver {
  readonly config: Config;
  readonly store: Store;
  readonly http: Http;
  readonly timeoutMs: number;
  readonly graceMs: number | undefined;
  readonly #clock: () => Instant;

  constructor(options: DriverOptions) {
    this.config = options.config;
    this.store = options.store;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.graceMs = options.graceMs;
    this.#clock = options.clock ?? Date.now;
    this.http = options.http ?? new FetchHttp({ timeoutMs: this.timeoutMs, clock: () => this.now() });
  }

  /** The driver's time now (Unix ms). */
  now(): number {
    return toMs(this.#clock());
  }

  /** Starts a payment (`POST /txns`): attempt 1 unless given. */
  async start(start: StartRequest | StartRequestOptions, options: { attempt?: number } = {}): Promise<Done> {
    return new Done(await this.#call({ call: 'start', start: StartRequest.from(start).toWire(), attempt: options.attempt ?? 1 }));
  }

  /** Starts the order's next attempt (after a declined or abandoned one). */
  async startNext(start: StartRequest | StartRequestOptions): Promise<Done> {
    return new Done(await this.#call({ call: 'start_next', start: StartRequest.from(start).toWire() }));
  }

  /** Runs a command on the payment stored under `key` (submit, resend, check the status, start again). */
  async run(key: string, command: Command | CommandLike): Promise<Done> {
    return new Done(await this.#call({ call: 'run', key, command: Command.from(command).toWire() }));
  }

  /** Submits an OTP. */
  submit(key: string, otp: string): Promise<Done> {
    return this.run(key, Command.submit(otp));
  }

  /** Sends a new OTP. */
  resend(key: string): Promise<Done> {
    return this.run(key, Command.resend());
  }

  /** Asks the order status. */
  checkStatus(key: string): Promise<Done> {
    return this.run(key, Command.checkStatus());
  }

  /** Sends the cardholder to the bank page: its URL (stored first). */
  async bankPage(key: string): Promise<BankPage> {
    return new BankPage(await this.#call({ call: 'bank_page', key }));
  }

  /**
   * Settles a payment with a hint: the signed return URL (its query and the response key)
   * or a webhook (its `Authorization` header and body, and the webhook credentials).
   */
  async settle(
    settlement: Settlement | ({ kind: 'return_url' } & ReturnUrlOptions) | ({ kind: 'webhook' } & WebhookOptions),
  ): Promise<Settled> {
    return new Settled(await this.#call({ call: 'settle', settlement: Settlement.from(settlement).toWire() }));
  }

  /**
   * Recovers the payments whose request nobody answered within the grace (a worker died,
   * an answer was lost): each is treated as maybe sent and, with `check`, its order
   * status is asked.
   */
  async sweep(options: { limit?: number; check?: boolean } = {}): Promise<Swept[]> {
    const out = await this.#call({ call: 'sweep', limit: options.limit ?? 64, check: options.check ?? true });
    return (out.swept as Wire[]).map((s) => new Swept(s));
  }

  /** The payment stored under `key`, or null (a plain store read). */
  async load(key: string): Promise<Payment | null> {
    const record = await this.store.load(key);
    return record === null ? null : Payment.fromRecord(record);
  }

  /** One call through the step machine: the finished form, or its error thrown. */
  async #call(call: Wire): Promise<Wire> {
    const steps = guard(
      () =>
        new native.HostSteps(
          JSON.stringify({ config: this.config.toWire(), timeout_ms: this.timeoutMs, grace_ms: this.graceMs, ...call }),
        ),
    );
    let input = '{"result":"begin"}';
    for (;;) {
      const step = JSON.parse(guard(() => steps.resume(input, this.now()))) as { io?: Wire; finished?: Wire };
      if (step.finished) {
        if (step.finished.error) throw new DirectOtpError(step.finished.error as WireErrorForm);
        return step.finished;
      }
      input = await this.#io(step.io as Wire);
    }
  }

  /** Does one I/O; the input to hand back, as text. */
  async #io(io: Wire): Promise<string> {
    switch (io.op) {
      case 'send':
        try {
          return JSON.stringify(await this.http.send(io as unknown as SendIo));
        } catch (e) {
          // An HTTP client that throws cannot say the request did not leave: when unsure, maybe sent.
          return JSON.stringify({ result: 'send_failed', maybe_sent: true, message: e instanceof Error ? e.message : String(e) });
        }
      case 'pause':
        await new Promise((resolve) => setTimeout(resolve, Number(io.wait) || 0));
        return '{"result":"paused"}';
      default:
        try {
          const host = this.store as Partial<HostIoStore>;
          if (typeof host.hostIo === 'function') return await host.hostIo(JSON.stringify(io));
          return JSON.stringify(await storeIo(this.store, io));
        } catch (e) {
          return JSON.stringify(storeFailed(e));
        }
    }
  }
}

/** A store I/O on a `Store` of the caller's: the input to hand back. */
async function storeIo(store: Store, io: Wire): Promise<Wire> {
  switch (io.op) {
    case 'load':
      return { result: 'loaded', record: await store.load(io.key as string) };
    case 'latest_for_order':
      return { result: 'loaded', record: await store.latestForOrder(io.order_id as string) };
    case 'insert':
      return { result: (await store.insert(rowFromWire(io))) ? 'stored' : 'conflict' };
    case 'replace':
      return { result: (await store.replace(io.expected as number, rowFromWire(io))) ? 'stored' : 'conflict' };
    case 'list_in_flight':
      return { result: 'listed', keys: await store.listInFlight(io.before as number, io.limit as number) };
    default:
      throw new Error(`unknown store operation ${JSON.stringify(io.op)}`);
  }
}
