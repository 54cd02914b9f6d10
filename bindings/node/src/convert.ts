// Wire forms (docs/protocol.md: snake_case, times as Unix ms) to JavaScript idiom
// (camelCase, times as `Date`, durations as millisecond numbers), and back. Renaming only:
// no value is decided here.

/** Wire fields ending `_ms` that are durations (kept as millisecond numbers). */
const DURATIONS = new Set(['resend_cooldown_ms', 'lifetime_ms', 'timeout_ms', 'grace_ms', 'delay_ms']);

/** `sends_left` -> `sendsLeft`. */
export function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `sendsLeft` -> `sends_left`. */
export function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A time handed to the core: a `Date` or Unix milliseconds. */
export type Instant = Date | number;

/** Unix milliseconds of an instant (a `Date` or a number of ms). */
export function toMs(t: Instant): number {
  return typeof t === 'number' ? t : t.getTime();
}

/**
 * A wire object's fields as JavaScript properties: camelCase names, a time (`until_ms`)
 * as a `Date` named without its suffix (`until`), a duration (`resend_cooldown_ms`) as a
 * number (`resendCooldownMs`); nested objects and arrays alike.
 */
export function fromWire(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromWire);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (k.endsWith('_ms') && !DURATIONS.has(k) && typeof v === 'number') {
      out[camel(k.slice(0, -3))] = new Date(v);
    } else {
      out[camel(k)] = fromWire(v);
    }
  }
  return out;
}

/** The fields of `wire` other than `code`, converted (`fromWire`). */
export function fieldsOf(wire: Record<string, unknown>): Record<string, unknown> {
  const { code: _code, ...rest } = wire;
  return fromWire(rest) as Record<string, unknown>;
}

/**
 * An options object (camelCase; `Date`s for times) to its wire form (snake_case; a
 * `Date` as Unix ms under a name ending `_ms`). `undefined` fields are left out.
 */
export function toWire(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toWire);
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date) return value.getTime();
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined) continue;
    if (v instanceof Date) out[`${snake(k)}_ms`] = v.getTime();
    else out[snake(k)] = toWire(v);
  }
  return out;
}
