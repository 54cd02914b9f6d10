// A payment: the stored record of one payment attempt, and its sans-IO steps through the
// core (`wire::host::call`: begin, command, handle, view, next_step). The record is the
// core's JSON text: store it verbatim.

import { inspect } from 'node:util';

import { Command, type CommandLike, Config, StartRequest, type StartRequestOptions } from './config';
import { type Instant, toMs } from './convert';
import { hostCall, hostCallText } from './native';
import { NextStep, Outcome, Request, setPaymentFactory, View } from './results';

/** The bank's answer to a request, or why there is none. */
export type Reply =
  /** An HTTP answer, any status; the body as text, or bytes (sent on as base64 when not UTF-8). */
  | { kind: 'answer'; status: number; body?: string | Uint8Array }
  /** The request surely did not leave (connection refused, DNS failure). */
  | { kind: 'not_sent' }
  /** It may have reached the bank (timeout, reset): when unsure, this. */
  | { kind: 'maybe_sent' };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A reply's wire form (`wire::reply`). */
function replyWire(reply: Reply): Record<string, unknown> {
  if (reply === null || typeof reply !== 'object' || reply.kind !== 'answer') return reply as Record<string, unknown>;
  const { body } = reply;
  if (body instanceof Uint8Array) {
    if (body.length === 0) return { kind: 'answer', status: reply.status };
    try {
      return { kind: 'answer', status: reply.status, body: utf8.decode(body) };
    } catch {
      return { kind: 'answer', status: reply.status, body_base64: Buffer.from(body).toString('base64') };
    }
  }
  return { kind: 'answer', status: reply.status, body: body ?? '' };
}

/** `new Date()` unless given. */
function ms(now: Instant | undefined): number {
  return now === undefined ? Date.now() : toMs(now);
}

/**
 * One payment attempt, as stored: its record (the core's JSON text) and its sans-IO steps.
 * The steps change the payment in place (the record moves on); store `toRecord()` after
 * each, with compare-and-swap (docs/concurrency.md), or let a `Driver` do all of that.
 *
 * ```ts
 * const { payment, request } = Payment.begin(config, start);
 * // store payment.toRecord(), send request, then:
 * const outcome = payment.handle(request, { kind: 'answer', status, body });
 * ```
 */
export class Payment {
  #record: string;
  #view: View | undefined;

  private constructor(record: string) {
    this.#record = record;
  }

  /**
   * The payment a stored record holds. The core reads it at the first use (a view, a
   * command): a record that does not load throws `bad_record` then: inspect it, never
   * overwrite it.
   */
  static fromRecord(record: string): Payment {
    return new Payment(record);
  }

  /**
   * A new payment, nothing sent: store it, then start it with `Command.start(source)` (the
   * card is not kept in the record).
   */
  static create(start: StartRequest | StartRequestOptions, options: { attempt?: number; now?: Instant } = {}): Payment {
    const out = hostCall<{ record: string }>({
      fn: 'new',
      start: StartRequest.from(start).toWire(),
      attempt: options.attempt ?? 1,
      now_ms: ms(options.now),
    });
    return new Payment(out.record);
  }

  /**
   * A new payment and its start request (`POST /txns`): store the payment first (it is in
   * flight), then send the request.
   */
  static begin(
    config: Config,
    start: StartRequest | StartRequestOptions,
    options: { attempt?: number; now?: Instant } = {},
  ): { payment: Payment; request: Request } {
    const out = hostCall<{ record: string; request: Record<string, unknown> }>({
      fn: 'begin',
      config: config.toWire(),
      start: StartRequest.from(start).toWire(),
      attempt: options.attempt ?? 1,
      now_ms: ms(options.now),
    });
    return { payment: new Payment(out.record), request: new Request(out.request) };
  }

  /** The record to store (the core's JSON text). */
  toRecord(): string {
    return this.#record;
  }

  /**
   * Issues a command (submit, resend, check the order status, start again): the request
   * to send. A refusal throws its code (`cooldown`, `send_limit_reached`, `in_flight`, ...).
   */
  command(config: Config, command: Command | CommandLike, now?: Instant): Request {
    const out = hostCall<{ record: string; request: Record<string, unknown> }>({
      fn: 'command',
      config: config.toWire(),
      record: this.#record,
      command: Command.from(command).toWire(),
      now_ms: ms(now),
    });
    this.#set(out.record);
    return new Request(out.request);
  }

  /** Hands the bank's reply to the request (`token`) back: what it did. */
  handle(request: Request | string, reply: Reply, now?: Instant): Outcome {
    const out = hostCall<{ record: string; outcome: Record<string, unknown> }>({
      fn: 'handle',
      record: this.#record,
      token: typeof request === 'string' ? request : request?.token,
      reply: replyWire(reply),
      now_ms: ms(now),
    });
    this.#set(out.record);
    return new Outcome(out.outcome);
  }

  /** What a page shows now. */
  view(now?: Instant): View {
    const text = hostCallText({ fn: 'view', record: this.#record, now_ms: ms(now) });
    const view = new View(JSON.parse(text) as Record<string, unknown>, text);
    this.#view = view;
    return view;
  }

  /** The next step now. */
  nextStep(now?: Instant): NextStep {
    return new NextStep(hostCall<Record<string, unknown>>({ fn: 'next_step', record: this.#record, now_ms: ms(now) }));
  }

  /** The fields that do not depend on the time, from a view (computed once per record). */
  #still(): View {
    return (this.#view ??= this.view());
  }

  /** The payment's key (`order_id/attempt`): its row in a store. */
  get key(): string {
    return this.#still().key;
  }
  get orderId(): string {
    return this.#still().orderId;
  }
  get attempt(): number {
    return this.#still().attempt;
  }
  /** The API's status text (`PENDING_VBV`, `CHARGED`, ...). */
  get status(): string {
    return this.#still().status;
  }
  get isFinal(): boolean {
    return this.#still().isFinal;
  }
  /** Whether it is paid (`CHARGED` or `AUTHORIZED`, as the core says). */
  get isPaid(): boolean {
    return this.#still().paid;
  }

  #set(record: string): void {
    this.#record = record;
    this.#view = undefined;
  }

  toJSON(): string {
    return this.#record;
  }

  [inspect.custom](): string {
    try {
      const v = this.#still();
      return `Payment { key: '${v.key}', status: '${v.status}', next: '${v.next}' }`;
    } catch {
      return 'Payment { record: <does not load> }';
    }
  }
}

setPaymentFactory((record) => Payment.fromRecord(record));
