// What the core hands back, as classes read from the wire forms (docs/protocol.md): the
// request to send, an outcome, the view, the next step, and what the driver finishes with
// (Done, BankPage, Settled, Swept). Each keeps its wire form (`wire`) as the core gave it.

import { inspect } from 'node:util';

import { fieldsOf, fromWire } from './convert';
import { DirectOtpError, type WireErrorForm } from './errors';
// A cycle Payment <-> results is avoided: Done & co. take the factory from payment.ts.
import type { Payment } from './payment';

type Wire = Record<string, unknown>;

/** A header of a request to send. `sensitive`: it holds the API key; never log it. */
export interface Header {
  readonly name: string;
  readonly value: string;
  readonly sensitive: boolean;
}

/**
 * A request to send to the bank, exactly as given; then hand its `token` back with the
 * reply. It holds the API key (a sensitive header) and, for a start or a submit, card data
 * or the OTP in its body (`bodySensitive`): inspection and JSON redact them; never log it.
 */
export class Request {
  /** Opaque: hand it back exactly as given. */
  readonly token: string;
  /** `start`, `resend`, `submit`, `order_status` or `card_bin`. */
  readonly kind: string;
  readonly method: string;
  readonly url: string;
  readonly headers: readonly Header[];
  readonly body: string;
  readonly bodySensitive: boolean;

  constructor(wire: Wire) {
    this.token = wire.token as string;
    this.kind = wire.kind as string;
    this.method = wire.method as string;
    this.url = wire.url as string;
    this.headers = Object.freeze(
      ((wire.headers as Wire[] | undefined) ?? []).map((h) =>
        Object.freeze({ name: h.name as string, value: h.value as string, sensitive: Boolean(h.sensitive) }),
      ),
    );
    this.body = (wire.body as string | undefined) ?? '';
    this.bodySensitive = Boolean(wire.body_sensitive);
    Object.freeze(this);
  }

  /** The request with its secrets redacted. */
  toJSON(): Record<string, unknown> {
    return {
      token: this.token,
      kind: this.kind,
      method: this.method,
      url: this.url,
      headers: this.headers.map((h) => ({ name: h.name, value: h.sensitive ? '[redacted]' : h.value, sensitive: h.sensitive })),
      body: this.bodySensitive ? '[redacted]' : this.body,
      bodySensitive: this.bodySensitive,
    };
  }

  [inspect.custom](_depth: number, options: object): string {
    return `Request ${inspect(this.toJSON(), { ...options, depth: 3 })}`;
  }
}

/** A result with a code and fields (an outcome, a settle outcome, a next step, ...). */
export class Coded {
  /** The stable code (docs/codes.md). */
  readonly code: string;
  /** The other fields: camelCase, times as `Date`. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** The wire form as the core gave it. */
  readonly wire: Readonly<Wire>;

  constructor(wire: Wire) {
    this.code = wire.code as string;
    this.wire = Object.freeze(wire);
    this.fields = Object.freeze(fieldsOf(wire));
  }

  toJSON(): Wire {
    return { ...this.wire };
  }

  [inspect.custom](_depth: number, options: object): string {
    return `${this.constructor.name} [${this.code}] ${inspect(this.fields, { ...options, depth: 3 })}`;
  }
}

/**
 * What an answer (or a settlement hint) did: `otp_sent`, `wrong_otp`, `approved`,
 * `check_status`, ... (docs/protocol.md). Its common fields are typed; all are in `fields`.
 */
export class Outcome extends Coded {
  /** `otp_sent`: OTPs that can still be sent. */
  get sendsLeft(): number | undefined {
    return this.fields.sendsLeft as number | undefined;
  }
  /** `wrong_otp`: tries left. */
  get attemptsLeft(): number | undefined {
    return this.fields.attemptsLeft as number | undefined;
  }
  /** `approved`, `declined`, `pending`, `confirmed`, ...: the API's status text (`CHARGED`). */
  get status(): string | undefined {
    return this.fields.status as string | undefined;
  }
  /** `check_status`: why (`maybe_sent`, `response`, `stale`, `amount_unchecked`). */
  get why(): string | undefined {
    return this.fields.why as string | undefined;
  }
  /** `rejected`, `unauthorized`: the refused answer's code. */
  get reason(): string | undefined {
    return this.fields.reason as string | undefined;
  }
}

/** What to do next: `enter_otp`, `wait`, `bank_page` (with `url`), `finished` (with `status`), ... */
export class NextStep extends Coded {
  get url(): string | undefined {
    return this.fields.url as string | undefined;
  }
  get token(): string | undefined {
    return this.fields.token as string | undefined;
  }
  get status(): string | undefined {
    return this.fields.status as string | undefined;
  }
}

/** The card as a page shows it. */
export interface CardView {
  readonly isin: string | null;
  readonly lastFour: string | null;
  readonly brand: string | null;
  readonly issuer: string | null;
}

/**
 * What a page shows for a payment (`PaymentView`): the next step, the message, the status,
 * what the buttons may do, the counters, the bank page. `text` is its exact JSON from the
 * core.
 */
export class View {
  readonly key: string;
  readonly orderId: string;
  readonly attempt: number;
  /** The next step's code (`enter_otp`, `bank_page`, `finished`, ...). */
  readonly next: string;
  readonly message: string;
  readonly status: string;
  readonly isFinal: boolean;
  readonly paid: boolean;
  readonly confirmed: boolean;
  readonly settledBy: string | null;
  readonly settlementIssue: string | null;
  readonly canSubmit: boolean;
  readonly canResend: boolean;
  readonly resendInSeconds: number | null;
  readonly sendsLeft: number | null;
  readonly attemptsLeft: number | null;
  readonly expiresInSeconds: number | null;
  readonly bankPageUrl: string | null;
  readonly bankPageAvailable: boolean;
  readonly card: CardView | null;
  /** The wire form as the core gave it. */
  readonly wire: Readonly<Wire>;
  /** The wire form's JSON text. */
  readonly text: string;

  constructor(wire: Wire, text?: string) {
    const v = fromWire(wire) as Record<string, unknown>;
    this.key = v.key as string;
    this.orderId = v.orderId as string;
    this.attempt = v.attempt as number;
    this.next = v.next as string;
    this.message = v.message as string;
    this.status = v.status as string;
    this.isFinal = v.isFinal as boolean;
    this.paid = v.paid as boolean;
    this.confirmed = v.confirmed as boolean;
    this.settledBy = (v.settledBy ?? null) as string | null;
    this.settlementIssue = (v.settlementIssue ?? null) as string | null;
    this.canSubmit = v.canSubmit as boolean;
    this.canResend = v.canResend as boolean;
    this.resendInSeconds = (v.resendInSeconds ?? null) as number | null;
    this.sendsLeft = (v.sendsLeft ?? null) as number | null;
    this.attemptsLeft = (v.attemptsLeft ?? null) as number | null;
    this.expiresInSeconds = (v.expiresInSeconds ?? null) as number | null;
    this.bankPageUrl = (v.bankPageUrl ?? null) as string | null;
    this.bankPageAvailable = v.bankPageAvailable as boolean;
    this.card = (v.card ? Object.freeze(v.card) : null) as CardView | null;
    this.wire = Object.freeze(wire);
    this.text = text ?? JSON.stringify(wire);
    Object.freeze(this);
  }

  toJSON(): Wire {
    return { ...this.wire };
  }

  [inspect.custom](_depth: number, options: object): string {
    const { wire: _w, text: _t, ...shown } = this;
    return `View ${inspect(shown, { ...options, depth: 3 })}`;
  }
}

/** Makes the Payment of a record text (set by payment.ts, which imports this module). */
let makePayment: (record: string) => Payment;
/** @internal */
export function setPaymentFactory(f: (record: string) => Payment): void {
  makePayment = f;
}

/** A record as crossed: its stored text (the host API), or (older forms) the JSON object. */
function recordText(record: unknown): string {
  return typeof record === 'string' ? record : JSON.stringify(record);
}

/** The transport's error of a step, for logs (`{code, ...}`), or null. */
function transportError(wire: unknown): DirectOtpError | null {
  return wire && typeof wire === 'object' ? new DirectOtpError(wire as WireErrorForm) : null;
}

/** A driver step that went through: the payment as stored, its view, the outcome. */
export class Done {
  readonly payment: Payment;
  readonly view: View;
  readonly outcome: Outcome;
  /** The transport's failure in this step, if one (for logs). */
  readonly transportError: DirectOtpError | null;
  readonly wire: Readonly<Wire>;

  constructor(wire: Wire) {
    this.payment = makePayment(recordText(wire.record));
    this.view = new View(wire.view as Wire);
    this.outcome = new Outcome(wire.outcome as Wire);
    this.transportError = transportError(wire.transport_error);
    this.wire = Object.freeze(wire);
    Object.freeze(this);
  }

  [inspect.custom](_depth: number, options: object): string {
    return `Done ${inspect({ outcome: this.outcome, view: this.view, transportError: this.transportError }, { ...options, depth: 2 })}`;
  }
}

/** The bank page to send the browser to, and the payment as stored. */
export class BankPage {
  readonly url: string;
  readonly payment: Payment;
  readonly view: View;
  readonly wire: Readonly<Wire>;

  constructor(wire: Wire) {
    this.url = wire.url as string;
    this.payment = makePayment(recordText(wire.record));
    this.view = new View(wire.view as Wire);
    this.wire = Object.freeze(wire);
    Object.freeze(this);
  }

  [inspect.custom](_depth: number, options: object): string {
    return `BankPage ${inspect({ url: this.url, view: this.view }, { ...options, depth: 2 })}`;
  }
}

/** A check's result: an outcome, or the error it ended with. */
function check(wire: unknown): Outcome | DirectOtpError | null {
  if (!wire || typeof wire !== 'object') return null;
  const w = wire as Wire;
  if (w.error) return new DirectOtpError(w.error as WireErrorForm);
  if (w.outcome) return new Outcome(w.outcome as Wire);
  return null;
}

/**
 * What a settlement hint did: the settle outcome (`approved`, `confirming`, `duplicate`,
 * ...), and the status check it led to, if one (`check`: its outcome or its error).
 */
export class Settled {
  readonly payment: Payment;
  readonly view: View;
  readonly outcome: Outcome;
  readonly check: Outcome | DirectOtpError | null;
  readonly transportError: DirectOtpError | null;
  readonly wire: Readonly<Wire>;

  constructor(wire: Wire) {
    this.payment = makePayment(recordText(wire.record));
    this.view = new View(wire.view as Wire);
    this.outcome = new Outcome(wire.outcome as Wire);
    this.check = check(wire.check);
    this.transportError = transportError(wire.transport_error);
    this.wire = Object.freeze(wire);
    Object.freeze(this);
  }

  [inspect.custom](_depth: number, options: object): string {
    return `Settled ${inspect({ outcome: this.outcome, check: this.check, view: this.view }, { ...options, depth: 2 })}`;
  }
}

/**
 * One payment of a sweep: `recovered` (with `outcome`, and `check`: the status check's
 * `Done` or error), `moved`, or `sweep_failed` (with `reason` and its fields).
 */
export class Swept extends Coded {
  readonly key: string;
  readonly outcome: Outcome | null;
  readonly check: Done | DirectOtpError | null;

  constructor(wire: Wire) {
    super(wire);
    this.key = wire.key as string;
    this.outcome = wire.outcome && typeof wire.outcome === 'object' ? new Outcome(wire.outcome as Wire) : null;
    const c = wire.check as Wire | null | undefined;
    this.check = !c ? null : c.error ? new DirectOtpError(c.error as WireErrorForm) : new Done(c);
    Object.freeze(this);
  }
}
