// The HTTP client: `fetch`, as docs/conformance.md asks of every transport. One request,
// redirects never followed, one deadline for the whole exchange, a body limit; a failure
// says whether the request surely did not leave (`not_sent`) or may have reached the bank
// (`maybe_sent`; when in doubt, this).

import { AsyncLocalStorage } from 'node:async_hooks';
import * as diagnostics from 'node:diagnostics_channel';

import type { Reply } from './payment';
import type { Request } from './results';

/** A request in the host form: headers as `[name, value]` pairs, or as a `Request` gives them. */
export interface HttpRequest {
  method: string;
  url: string;
  headers: ReadonlyArray<readonly [string, string] | { readonly name: string; readonly value: string }>;
  /** Text, or bytes (a body that is not UTF-8). */
  body?: string | Uint8Array | number[];
}

/** What an exchange gave: an answer (any status), or a failure that says whether it may have been sent. */
export type Exchange =
  | { result: 'answer'; status: number; body: Uint8Array }
  | { result: 'send_failed'; maybeSent: boolean; message: string };

/** The host form of a `send` I/O (wire::host). */
export interface SendIo {
  op: 'send';
  key?: string;
  request: { kind?: string; method: string; url: string; headers: Array<[string, string]>; body?: string | number[] };
  send_by: number;
  timeout_ms?: number;
}

/** The HTTP client a `Driver` uses: performs a `send` I/O, gives the input to hand back. */
export interface Http {
  send(io: SendIo): Promise<Record<string, unknown>>;
}

/** The options of a `FetchHttp`. */
export interface FetchHttpOptions {
  /** The largest answer body read (bytes; default 65,536). A larger one is `maybe_sent`. */
  bodyLimit?: number;
  /** The deadline of a whole exchange when the I/O names none (ms; default 30,000). */
  timeoutMs?: number;
  /** The `fetch` to use (default: the global one, undici's). */
  fetch?: typeof fetch;
  /** The clock (Unix ms), for the `send_by` check. */
  clock?: () => number;
}

// Which of our exchanges undici began to write: `undici:request:create` runs in the
// caller's async context (so it finds the exchange), `undici:client:sendHeaders` runs
// right before the request's head is written. An exchange that failed before its head was
// written surely did not reach the server: `not_sent`.
interface Tracked {
  created: boolean;
  headersSent: boolean;
}
const current = new AsyncLocalStorage<Tracked>();
const byRequest = new WeakMap<object, Tracked>();
let subscribed = false;

function subscribe(): void {
  if (subscribed) return;
  subscribed = true;
  diagnostics.subscribe('undici:request:create', (message) => {
    const tracked = current.getStore();
    const request = (message as { request?: object }).request;
    if (tracked && request) {
      tracked.created = true;
      byRequest.set(request, tracked);
    }
  });
  diagnostics.subscribe('undici:client:sendHeaders', (message) => {
    const request = (message as { request?: object }).request;
    const tracked = request && byRequest.get(request);
    if (tracked) tracked.headersSent = true;
  });
}

/** Failures that happen before a connection exists (for a `fetch` that undici does not trace). */
const BEFORE_CONNECT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

function causeOf(e: unknown): { code?: string; syscall?: string; message?: string } | undefined {
  const cause = (e as { cause?: unknown })?.cause;
  return cause && typeof cause === 'object' ? (cause as { code?: string; syscall?: string; message?: string }) : undefined;
}

function describe(e: unknown): string {
  const cause = causeOf(e);
  const own = e instanceof Error ? e.message : String(e);
  return cause?.code ? `${own}: ${cause.code}` : own;
}

class BodyTooLarge extends Error {}

/**
 * `fetch` as a transport. `redirect: 'manual'` (a redirect is an answer, never followed),
 * one deadline for connect, send, answer and body (an `AbortSignal`), a body limit; a
 * failure before undici wrote the request's head is `not_sent` (connection refused, DNS,
 * TLS handshake, a deadline while connecting), any later one `maybe_sent`.
 */
export class FetchHttp implements Http {
  readonly bodyLimit: number;
  readonly timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #clock: () => number;

  constructor(options: FetchHttpOptions = {}) {
    this.bodyLimit = options.bodyLimit ?? 65_536;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#clock = options.clock ?? Date.now;
    subscribe();
  }

  /** One exchange: an answer, or a failure that says whether it may have been sent. */
  async exchange(request: HttpRequest, options: { timeoutMs?: number; bodyLimit?: number } = {}): Promise<Exchange> {
    const tracked: Tracked = { created: false, headersSent: false };
    return current.run(tracked, () => this.#exchange(request, tracked, options.timeoutMs ?? this.timeoutMs, options.bodyLimit ?? this.bodyLimit));
  }

  async #exchange(request: HttpRequest, tracked: Tracked, timeoutMs: number, bodyLimit: number): Promise<Exchange> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`deadline of ${timeoutMs} ms passed`)), timeoutMs);
    try {
      const headers = new Headers();
      for (const h of request.headers) {
        if (Array.isArray(h)) headers.append(h[0], h[1]);
        else {
          const { name, value } = h as { name: string; value: string };
          headers.append(name, value);
        }
      }
      const method = request.method.toUpperCase();
      const response = await this.#fetch(request.url, {
        method,
        headers,
        body: method === 'GET' || method === 'HEAD' ? undefined : typeof request.body === 'string' || request.body === undefined ? (request.body ?? '') : Uint8Array.from(request.body),
        redirect: 'manual',
        signal: abort.signal,
      });
      const length = Number(response.headers.get('content-length'));
      if (Number.isFinite(length) && length > bodyLimit) {
        throw new BodyTooLarge(`the answer's body (${length} bytes) exceeds the limit (${bodyLimit})`);
      }
      const body = await readLimited(response, bodyLimit);
      return { result: 'answer', status: response.status, body };
    } catch (e) {
      abort.abort();
      const surelyNotSent = tracked.created
        ? !tracked.headersSent && !(e instanceof BodyTooLarge)
        : BEFORE_CONNECT.has(causeOf(e)?.code ?? '') && ['connect', 'getaddrinfo'].includes(causeOf(e)?.syscall ?? '');
      const message = e instanceof BodyTooLarge ? e.message : abort.signal.aborted && timedOut(abort) ? `timeout: ${describe(e)}` : describe(e);
      return { result: 'send_failed', maybeSent: !surelyNotSent, message };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Performs a `send` I/O of the driver's steps: the input to hand back. */
  async send(io: SendIo): Promise<Record<string, unknown>> {
    if (this.#clock() > io.send_by) {
      return { result: 'send_failed', maybe_sent: false, message: 'the send-by time had passed: not sent' };
    }
    const out = await this.exchange(io.request, { timeoutMs: io.timeout_ms ?? this.timeoutMs });
    if (out.result === 'send_failed') {
      return { result: 'send_failed', maybe_sent: out.maybeSent, message: out.message };
    }
    // The body as text when it is UTF-8, else as its bytes (wire::host's answer form).
    return { result: 'answer', status: out.status, body: bodyText(out.body) ?? Array.from(out.body) };
  }

  /** Sends a `Request` of the sans-IO `Payment`: the `Reply` to hand back to `payment.handle`. */
  async reply(request: Request, options: { timeoutMs?: number } = {}): Promise<Reply> {
    const out = await this.exchange(request, options);
    if (out.result === 'answer') return { kind: 'answer', status: out.status, body: out.body };
    return { kind: out.maybeSent ? 'maybe_sent' : 'not_sent' };
  }
}

function timedOut(abort: AbortController): boolean {
  const reason = abort.signal.reason as unknown;
  return reason instanceof Error && reason.message.startsWith('deadline');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A body as text when it is UTF-8, else undefined. */
export function bodyText(body: Uint8Array): string | undefined {
  try {
    return utf8.decode(body);
  } catch {
    return undefined;
  }
}

/** Reads the body, refusing it past `limit` bytes without reading the rest. */
async function readLimited(response: Response, limit: number): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLarge(`the answer's body exceeds the limit (${limit} bytes)`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}
