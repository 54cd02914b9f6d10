// The sandbox bank: the core's simulated Juspay Direct OTP server (docs/sandbox.md),
// served on 127.0.0.1 by the native module, and its control API (`/_sandbox/...`) wrapped
// over `fetch`: read the SMS, script faults, card flows and settings, finish a bank page,
// take webhooks, read the counters. An SDK's tests need no Rust toolchain and no network.

import { inspect } from 'node:util';

import { fromWire, toWire } from './convert';
import { guard, native, type NativeSandboxServer } from './native';

/** The options of `Sandbox.start`. */
export interface SandboxOptions {
  /** The only API key it accepts (default `sk_sandbox`). */
  apiKey?: string;
  /** Every OTP it sends (4 to 8 digits); default a seeded sequence. */
  otp?: string;
  /** Where it delivers webhooks (`http://` on loopback only). */
  webhookUrl?: string;
  /** The webhook credentials it sends (HTTP Basic); both or neither. */
  webhookUsername?: string;
  webhookPassword?: string;
  /** The response key it signs return URLs with. */
  responseKey?: string;
  /** Where the bank page sends the browser back (`https://shop.example/return`). */
  returnUrl?: string;
  /** OTPs sent and tries per transaction (default 4 and 4). */
  maxSends?: number;
  maxAttempts?: number;
  /** The port on 127.0.0.1 (default 0: any free one). */
  port?: number;
}

/** A control API refusal: `code` is the control API's (`no_otp`, `invalid_value`, ... docs/sandbox.md). */
export class SandboxError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = 'SandboxError';
    this.code = code;
    this.status = status;
  }
}

/** A card flow (`PUT /_sandbox/cards/{card}`). */
export type CardFlow = 'direct_otp' | 'three_ds_failover' | 'decline_after_otp' | 'slow_authorization' | 'no_sms';

/** An endpoint a fault matches. */
export type Endpoint = 'start' | 'resend' | 'submit' | 'order_status' | 'bank_page' | 'card_bin';

/** A scripted fault (`POST /_sandbox/faults`): used by the next matching request(s). */
export interface FaultOptions {
  fault:
    | 'internal_error'
    | 'internal_error_after_apply'
    | 'duplicate'
    | 'slow'
    | 'drop_response'
    | 'drop_request'
    | 'reset'
    | 'truncate_body'
    | 'stall_body'
    | 'oversized'
    | 'redirect';
  endpoint?: Endpoint;
  orderId?: string;
  times?: number;
  delayMs?: number;
  bytes?: number;
  status?: number;
}

/** A webhook as the sandbox would have sent it (`POST .../webhooks/take`). */
export interface TakenWebhook {
  method: string;
  path: string;
  headers: { authorization: string; 'content-type': string };
  /** The body, byte for byte. */
  body: string;
}

/**
 * The sandbox bank on `127.0.0.1:<port>`, control API on. Point a `Config` at `url` with
 * `apiKey`; stop it when done (it also stops when garbage-collected).
 *
 * ```ts
 * const sandbox = Sandbox.start({ apiKey: 'sk_test', otp: '123456' });
 * const config = new Config({ baseUrl: sandbox.url, apiKey: sandbox.apiKey });
 * ```
 */
export class Sandbox {
  readonly url: string;
  readonly apiKey: string;
  readonly #server: NativeSandboxServer;
  readonly #auth: string;

  private constructor(server: NativeSandboxServer, apiKey: string) {
    this.#server = server;
    this.url = server.url;
    this.apiKey = apiKey;
    this.#auth = `Basic ${Buffer.from(`${apiKey}:`).toString('base64')}`;
  }

  /** Starts a sandbox server (the core's, native) with its control API on. */
  static start(options: SandboxOptions = {}): Sandbox {
    const apiKey = options.apiKey ?? 'sk_sandbox';
    const server = guard(() => native.SandboxServer.start(JSON.stringify(toWire({ ...options, apiKey }))));
    return new Sandbox(server, apiKey);
  }

  /** Whether it still serves. */
  get running(): boolean {
    return this.#server.running;
  }

  /** Stops serving (again: nothing). */
  stop(): void {
    this.#server.stop();
  }

  /** A control API call: the JSON answer, or a `SandboxError`. */
  async control<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.url}/_sandbox/${path}`, {
      method,
      headers: { authorization: this.#auth, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: 'manual',
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new SandboxError('invalid_json', response.status, `the control API answered ${response.status} with no JSON`);
    }
    if (!response.ok) {
      const e = json as { code?: string; message?: string };
      throw new SandboxError(e.code ?? 'unknown', response.status, e.message ?? `HTTP ${response.status}`);
    }
    return json as T;
  }

  /** The OTP the cardholder's phone got last for the order ("read the SMS"), or null when none can be submitted. */
  async otp(orderId: string): Promise<string | null> {
    try {
      return (await this.control<{ otp: string }>('GET', `orders/${enc(orderId)}/otp`)).otp;
    } catch (e) {
      if (e instanceof SandboxError && e.code === 'no_otp') return null;
      throw e;
    }
  }

  /** The settings, without secrets. */
  async settings(): Promise<Record<string, unknown>> {
    return fromWire(await this.control('GET', 'settings')) as Record<string, unknown>;
  }

  /**
   * Changes settings (camelCase: `maxSends`, `maxAttempts`, `otp` (`{fixed}` or
   * `{seeded}`), `autoCapture`, `returnUrl`, `responseKey`, `webhookCredentials`,
   * `webhookUrl`, ...); all are checked before any is applied.
   */
  async updateSettings(settings: Record<string, unknown>): Promise<Record<string, unknown>> {
    return fromWire(await this.control('PATCH', 'settings', toWire(settings))) as Record<string, unknown>;
  }

  /** Sets a card's flow (by `card_token` or card number). */
  async setCard(card: string, flow: CardFlow): Promise<void> {
    await this.control('PUT', `cards/${enc(card)}`, { flow });
  }

  /** The card flows set (the cards themselves are not shown). */
  async cards(): Promise<Record<string, unknown>> {
    return this.control('GET', 'cards');
  }

  /** Marks a BIN prefix (1 to 9 digits) eligible for Direct OTP or not. */
  async setBin(prefix: string, eligible: boolean): Promise<void> {
    await this.control('PUT', `bins/${enc(prefix)}`, { eligible });
  }

  /** Queues a fault for the next matching request(s); gives how many are pending. */
  async fault(fault: FaultOptions): Promise<{ queued: number; pending: number }> {
    return this.control('POST', 'faults', toWire(fault));
  }

  /** The faults queued, in the order they will be used. */
  async faults(): Promise<Array<Record<string, unknown>>> {
    return (await this.control<{ faults: Array<Record<string, unknown>> }>('GET', 'faults')).faults;
  }

  /** Forgets the queued faults; gives how many. */
  async clearFaults(): Promise<number> {
    return (await this.control<{ cleared: number }>('DELETE', 'faults')).cleared;
  }

  /** Queues a webhook delivery fault (`duplicate`, `deliver_after_next`, `delay`). */
  async webhookFault(fault: { fault: 'duplicate' | 'deliver_after_next' | 'delay'; delayMs?: number; times?: number }): Promise<void> {
    await this.control('POST', 'webhook-faults', toWire(fault));
  }

  /** Adds an order (with its amount) for `orders: known_only`. */
  async addOrder(orderId: string, amount?: number): Promise<Record<string, unknown>> {
    return this.control('POST', 'orders', { order_id: orderId, amount });
  }

  /**
   * The order as the bank knows it (status, its transactions with their sends and attempts,
   * the requests per endpoint), or null when the bank does not know it.
   */
  async order(orderId: string): Promise<Record<string, unknown> | null> {
    try {
      return await this.control('GET', `orders/${enc(orderId)}`);
    } catch (e) {
      if (e instanceof SandboxError && e.code === 'not_found') return null;
      throw e;
    }
  }

  /** The signed return parameters for the order's status (`query`), and the whole URL when `returnUrl` is set. */
  async returnUrl(orderId: string): Promise<{ orderId: string; query: string; returnUrl: string | null }> {
    return fromWire(await this.control('GET', `orders/${enc(orderId)}/return-url`)) as { orderId: string; query: string; returnUrl: string | null };
  }

  /** The cardholder finishes on the bank page: `success` (default) or `failure`. */
  async bankPage(orderId: string, result: 'success' | 'failure' = 'success'): Promise<{ orderId: string; status: string; returnUrl: string | null }> {
    return fromWire(await this.control('POST', `orders/${enc(orderId)}/bank-page`, { result })) as {
      orderId: string;
      status: string;
      returnUrl: string | null;
    };
  }

  /** The order's queued webhooks, oldest first; they are no longer queued. */
  async takeWebhooks(orderId: string): Promise<TakenWebhook[]> {
    return (await this.control<{ webhooks: TakenWebhook[] }>('POST', `orders/${enc(orderId)}/webhooks/take`)).webhooks;
  }

  /** The counters: requests per endpoint, OTPs sent, orders, faults pending, webhooks. */
  async counters(): Promise<Record<string, unknown>> {
    return this.control('GET', 'counters');
  }

  /** The most recent requests answered. */
  async log(): Promise<Array<Record<string, unknown>>> {
    return (await this.control<{ log: Array<Record<string, unknown>> }>('GET', 'log')).log;
  }

  /** Forgets every order, transaction, webhook, fault and counter; the settings stay. */
  async reset(): Promise<void> {
    await this.control('POST', 'reset');
  }

  [inspect.custom](): string {
    return `Sandbox { url: '${this.url}', running: ${this.running} }`;
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
