// What a caller hands in: the configuration, the start request and its card source, the
// commands, a settlement hint. Each holds its secrets (the API key, card data, the OTP, the
// response key, webhook credentials) in private fields: `util.inspect`, `console.log` and
// `JSON.stringify` never show them. The core checks every value (`wire::config`,
// `wire::start_request`, ...); a refusal is a `DirectOtpError` with its code.

import { inspect } from 'node:util';

import { toWire } from './convert';
import { guard, native } from './native';

/** The options of a `Config`. */
export interface ConfigOptions {
  /** The API's base URL: `https://api.juspay.in`, `https://sandbox.juspay.in`, or a sandbox's. */
  baseUrl: string;
  /** The API key (HTTP Basic user name). Never shown. */
  apiKey: string;
  /** Sent as `x-merchantid` on order-status calls. */
  merchantId?: string;
  /** The API `version` header (`YYYY-MM-DD`). */
  version?: string;
  /** Whether a right OTP captures (`true`, the bank's default) or only authorizes. */
  autoCapture?: boolean;
}

/**
 * Where the API is and how to authenticate. Checked by the core when made (`base_url_*`,
 * `bad_api_key`, `id_*`). The API key is kept private: it is in no property, inspection or
 * JSON of this object.
 */
export class Config {
  readonly baseUrl: string;
  readonly merchantId: string | undefined;
  readonly version: string | undefined;
  readonly autoCapture: boolean | undefined;
  readonly #apiKey: string;

  constructor(options: ConfigOptions) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('Config: options object expected');
    }
    this.baseUrl = options.baseUrl;
    this.#apiKey = options.apiKey;
    this.merchantId = options.merchantId;
    this.version = options.version;
    this.autoCapture = options.autoCapture;
    Object.freeze(this);
    // The core checks the configuration now.
    guard(() => native.call(JSON.stringify({ fn: 'check', config: this.toWire() })));
  }

  /** The wire form, with the API key: hand it to the core only. @internal */
  toWire(): Record<string, unknown> {
    return {
      base_url: this.baseUrl,
      api_key: this.#apiKey,
      merchant_id: this.merchantId,
      version: this.version,
      auto_capture: this.autoCapture,
    };
  }

  /** The configuration without its API key. */
  toJSON(): Record<string, unknown> {
    return { baseUrl: this.baseUrl, merchantId: this.merchantId, version: this.version, autoCapture: this.autoCapture };
  }

  [inspect.custom](): string {
    return `Config ${inspect({ ...this.toJSON(), apiKey: '[redacted]' })}`;
  }
}

/** A saved card's token (`card_token`), with its CVV if the account wants one. */
export interface TokenSourceOptions {
  cardToken: string;
  cvv?: string;
}

/** A card's own data. */
export interface CardSourceOptions {
  number: string;
  expiryMonth: string;
  expiryYear: string;
  cvv: string;
  nameOnCard?: string;
}

/** The card a payment uses: every field is a secret, never shown. */
export class CardSource {
  /** `token` or `card`. */
  readonly type: 'token' | 'card';
  readonly #wire: Record<string, unknown>;

  private constructor(type: 'token' | 'card', wire: Record<string, unknown>) {
    this.type = type;
    this.#wire = wire;
    Object.freeze(this);
  }

  /** A saved card's token. */
  static token(cardToken: string, cvv?: string): CardSource {
    return new CardSource('token', { type: 'token', card_token: cardToken, cvv });
  }

  /** A card's number, expiry, CVV (and name). */
  static card(options: CardSourceOptions): CardSource {
    return new CardSource('card', {
      type: 'card',
      number: options.number,
      expiry_month: options.expiryMonth,
      expiry_year: options.expiryYear,
      cvv: options.cvv,
      name_on_card: options.nameOnCard,
    });
  }

  /** A `CardSource`, or the same as a plain object (`{type: 'token', cardToken}`, ...). */
  static from(source: CardSource | ({ type: 'token' } & TokenSourceOptions) | ({ type: 'card' } & CardSourceOptions)): CardSource {
    if (source instanceof CardSource) return source;
    if (source !== null && typeof source === 'object' && source.type === 'token') return CardSource.token(source.cardToken, source.cvv);
    if (source !== null && typeof source === 'object' && source.type === 'card') return CardSource.card(source);
    // Whatever it is, the core refuses it with its code (`wire_shape`).
    return new CardSource('token', { type: (source as { type?: unknown } | null)?.type ?? null });
  }

  /** The wire form, with the card data: hand it to the core only. @internal */
  toWire(): Record<string, unknown> {
    return { ...this.#wire };
  }

  toJSON(): Record<string, unknown> {
    return { type: this.type };
  }

  [inspect.custom](): string {
    return `CardSource { type: '${this.type}' }`;
  }
}

/** The payment's limits (what the bank's answers do not state). */
export interface PolicyOptions {
  maxSends: number;
  maxAttempts: number;
  /** Milliseconds between two sends of an OTP. */
  resendCooldownMs: number;
  /** Milliseconds the OTP page lives. */
  lifetimeMs: number;
}

/** The amount the order must be paid with (checked against the bank's answers). */
export interface ExpectedAmount {
  /** A decimal number as text: `"1499.00"`. */
  amount: string;
  /** Three letters: `"INR"`. */
  currency: string;
}

/** The options of a `StartRequest`. */
export interface StartRequestOptions {
  orderId: string;
  merchantId: string;
  /** The `x-routing-id`: the customer id (or the order or cart id for a guest). */
  routingId: string;
  source: CardSource | ({ type: 'token' } & TokenSourceOptions) | ({ type: 'card' } & CardSourceOptions);
  paymentMethod?: string;
  saveToLocker?: boolean;
  gatewayId?: string;
  policy?: PolicyOptions;
  expectedAmount?: ExpectedAmount;
}

/** What starts a payment (`POST /txns`): the order, the customer, the card. */
export class StartRequest {
  readonly orderId: string;
  readonly merchantId: string;
  readonly routingId: string;
  readonly source: CardSource;
  readonly paymentMethod: string | undefined;
  readonly saveToLocker: boolean | undefined;
  readonly gatewayId: string | undefined;
  readonly policy: Readonly<PolicyOptions> | undefined;
  readonly expectedAmount: Readonly<ExpectedAmount> | undefined;

  constructor(options: StartRequestOptions) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('StartRequest: options object expected');
    }
    this.orderId = options.orderId;
    this.merchantId = options.merchantId;
    this.routingId = options.routingId;
    this.source = CardSource.from(options.source);
    this.paymentMethod = options.paymentMethod;
    this.saveToLocker = options.saveToLocker;
    this.gatewayId = options.gatewayId;
    this.policy = options.policy && Object.freeze({ ...options.policy });
    this.expectedAmount = options.expectedAmount && Object.freeze({ ...options.expectedAmount });
    Object.freeze(this);
  }

  /** A `StartRequest`, or its options. */
  static from(start: StartRequest | StartRequestOptions): StartRequest {
    return start instanceof StartRequest ? start : new StartRequest(start);
  }

  /** The wire form, with the card data: hand it to the core only. @internal */
  toWire(): Record<string, unknown> {
    return {
      order_id: this.orderId,
      merchant_id: this.merchantId,
      routing_id: this.routingId,
      source: this.source.toWire(),
      payment_method: this.paymentMethod,
      save_to_locker: this.saveToLocker,
      gateway_id: this.gatewayId,
      policy: this.policy && toWire(this.policy),
      expected_amount: this.expectedAmount && toWire(this.expectedAmount),
    };
  }

  toJSON(): Record<string, unknown> {
    const { source, ...rest } = { ...this };
    return { ...rest, source: source.toJSON() };
  }

  [inspect.custom](): string {
    return `StartRequest ${inspect(this.toJSON(), { depth: 3 })}`;
  }
}

/** The commands a payment takes. Build them with the static methods. */
export class Command {
  /** `submit`, `resend`, `check_status` or `start`. */
  readonly command: 'submit' | 'resend' | 'check_status' | 'start';
  readonly #wire: Record<string, unknown>;

  private constructor(command: Command['command'], wire: Record<string, unknown>) {
    this.command = command;
    this.#wire = wire;
    Object.freeze(this);
  }

  /** Submit the OTP the cardholder typed (checked by the core: `otp_length`, `otp_not_digits`). */
  static submit(otp: string): Command {
    return new Command('submit', { command: 'submit', otp });
  }

  /** Send a new OTP. */
  static resend(): Command {
    return new Command('resend', { command: 'resend' });
  }

  /** Ask the order status. */
  static checkStatus(): Command {
    return new Command('check_status', { command: 'check_status' });
  }

  /** Start again with only the card (a start that surely did not leave, or that the bank refused). */
  static start(source: CardSource | ({ type: 'token' } & TokenSourceOptions) | ({ type: 'card' } & CardSourceOptions)): Command {
    return new Command('start', { command: 'start', source: CardSource.from(source).toWire() });
  }

  /** A `Command`, or a plain one: `{command: 'submit', otp}`, `{command: 'resend'}`, `'resend'`, ... */
  static from(command: Command | CommandLike): Command {
    if (command instanceof Command) return command;
    if (typeof command === 'string') return Command.from({ command } as CommandLike);
    if (command !== null && typeof command === 'object') {
      switch (command.command) {
        case 'submit':
          return Command.submit(command.otp);
        case 'resend':
          return Command.resend();
        case 'check_status':
        case 'checkStatus' as 'check_status':
          return Command.checkStatus();
        case 'start':
          return Command.start(command.source);
      }
    }
    // Whatever it is, the core refuses it with its code (`wire_shape`).
    return new Command('resend', { command: (command as { command?: unknown } | null)?.command ?? null });
  }

  /** The wire form, with the OTP: hand it to the core only. @internal */
  toWire(): Record<string, unknown> {
    return { ...this.#wire };
  }

  toJSON(): Record<string, unknown> {
    return { command: this.command };
  }

  [inspect.custom](): string {
    return `Command { command: '${this.command}' }`;
  }
}

/** A plain command. */
export type CommandLike =
  | 'resend'
  | 'check_status'
  | { command: 'submit'; otp: string }
  | { command: 'resend' }
  | { command: 'check_status' }
  | { command: 'start'; source: CardSource | ({ type: 'token' } & TokenSourceOptions) | ({ type: 'card' } & CardSourceOptions) };

/** The return URL the bank page sent the browser back to: its query (or POST form body). */
export interface ReturnUrlOptions {
  /** The query string or form body as received: `order_id=...&signature=...`. */
  query: string;
  /** The merchant's response key (a secret). */
  responseKey: string;
}

/** A webhook as received, and the merchant's webhook credentials. */
export interface WebhookOptions {
  /** The `Authorization` header, if any. */
  authorization?: string;
  /** The body, as received. */
  body: string;
  username: string;
  password: string;
}

/**
 * A settlement hint: a signed return URL or a webhook. The core verifies it (a return or
 * webhook that does not check out is its own code: `return_*`, `webhook_*`).
 */
export class Settlement {
  readonly kind: 'return_url' | 'webhook';
  readonly #wire: Record<string, unknown>;

  private constructor(kind: Settlement['kind'], wire: Record<string, unknown>) {
    this.kind = kind;
    this.#wire = wire;
    Object.freeze(this);
  }

  /** The return URL's query (or form body) and the response key. */
  static returnUrl(options: ReturnUrlOptions): Settlement {
    return new Settlement('return_url', { kind: 'return_url', query: options.query, response_key: options.responseKey });
  }

  /** A webhook's `Authorization` header and body, and the merchant's credentials. */
  static webhook(options: WebhookOptions): Settlement {
    return new Settlement('webhook', {
      kind: 'webhook',
      authorization: options.authorization,
      body: options.body,
      username: options.username,
      password: options.password,
    });
  }

  /** A `Settlement`, or a plain one: `{kind: 'return_url', query, responseKey}` or `{kind: 'webhook', ...}`. */
  static from(s: Settlement | ({ kind: 'return_url' } & ReturnUrlOptions) | ({ kind: 'webhook' } & WebhookOptions)): Settlement {
    if (s instanceof Settlement) return s;
    if (s !== null && typeof s === 'object' && s.kind === 'return_url') return Settlement.returnUrl(s);
    if (s !== null && typeof s === 'object' && s.kind === 'webhook') return Settlement.webhook(s);
    return new Settlement('webhook', { kind: (s as { kind?: unknown } | null)?.kind ?? null });
  }

  /** The wire form, with the secrets: hand it to the core only. @internal */
  toWire(): Record<string, unknown> {
    return { ...this.#wire };
  }

  toJSON(): Record<string, unknown> {
    return { kind: this.kind };
  }

  [inspect.custom](): string {
    return `Settlement { kind: '${this.kind}' }`;
  }
}
