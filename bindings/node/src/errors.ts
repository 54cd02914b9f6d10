// Errors: one class, `DirectOtpError`, whose `code` is a code of the registry (`codes()`,
// docs/codes.md), with the wire form's fields.

import { inspect } from 'node:util';

import { fieldsOf } from './convert';

/** A wire error form: `{"code": ..., ...fields}`. */
export interface WireErrorForm {
  code: string;
  [field: string]: unknown;
}

/**
 * Every failure of this package: `code` is a stable snake_case code from the registry
 * (`codes()`, docs/codes.md), the wire form's other fields are in `fields` (camelCase, times
 * as `Date`) and, as they are, in `wire`. The message is the core's (never a secret).
 *
 * ```ts
 * try { payment.command(config, Command.resend()) }
 * catch (e) { if (e instanceof DirectOtpError && e.code === 'cooldown') retryAt(e.fields.until) }
 * ```
 */
export class DirectOtpError extends Error {
  /** The registry code (`otp_length`, `cooldown`, `store`, ...). */
  readonly code: string;
  /** The wire form's fields but `code`: camelCase names, times as `Date`. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** The wire form as the core gave it (`{"code": ..., ...}`). */
  readonly wire: Readonly<WireErrorForm>;

  constructor(wire: WireErrorForm, message?: string) {
    super(message ?? describe(wire));
    this.name = 'DirectOtpError';
    this.code = wire.code;
    this.wire = Object.freeze({ ...wire });
    this.fields = Object.freeze(fieldsOf(wire));
  }

  /**
   * An error from a native call (a JS Error with `code` and the wire fields as its own
   * properties), a wire error form, or anything else thrown, as a `DirectOtpError`.
   */
  static from(e: unknown): DirectOtpError {
    if (e instanceof DirectOtpError) return e;
    if (e instanceof Error && typeof (e as { code?: unknown }).code === 'string') {
      const wire: WireErrorForm = { code: (e as unknown as { code: string }).code };
      for (const [k, v] of Object.entries(e)) {
        if (k !== 'code') wire[k] = v;
      }
      const err = new DirectOtpError(wire, e.message);
      err.stack = e.stack;
      return err;
    }
    if (isWireError(e)) return new DirectOtpError(e);
    throw e;
  }

  /** The wire form (`JSON.stringify` gives it). */
  toJSON(): WireErrorForm {
    return { ...this.wire };
  }

  [inspect.custom](): string {
    return `${this.name} [${this.code}]: ${this.message} ${inspect(this.fields)}`;
  }
}

function isWireError(e: unknown): e is WireErrorForm {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string';
}

function describe(wire: WireErrorForm): string {
  const { code, ...rest } = wire;
  const fields = Object.entries(rest)
    .filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  return fields ? `${code} (${fields})` : code;
}
