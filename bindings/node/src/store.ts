// Where payments live between requests: the `Store` interface a `Driver` uses, and the
// ready `SqliteStore` (the core's own SQLite store, native: one file shared by processes).

import { inspect } from 'node:util';

import { DirectOtpError } from './errors';
import { guard, native, type NativeSqliteStore } from './native';
import { Payment } from './payment';

/** A row as a store keeps it: the record's text verbatim, and the columns the protocol reads. */
export interface Row {
  /** Primary key: `order_id/attempt`. */
  key: string;
  orderId: string;
  attempt: number;
  /** Grows with every change; the compare-and-swap compares it. */
  revision: number;
  /** Unix ms since a request is in flight, or null. */
  inFlightSince: number | null;
  /** The record: the core's JSON text, stored verbatim. */
  record: string;
}

/**
 * A store of payment records, the protocol's five operations (docs/concurrency.md). Each
 * may throw (a database failure): the driver hands it back as a transient store failure.
 */
export interface Store {
  /** The record stored under `key`, or null. */
  load(key: string): Promise<string | null>;
  /** The record of `orderId` with the highest attempt, or null. */
  latestForOrder(orderId: string): Promise<string | null>;
  /** Inserts; never overwrites: false when the key exists. */
  insert(row: Row): Promise<boolean>;
  /** `UPDATE ... WHERE key = row.key AND revision = expected`: false when no row changed. */
  replace(expected: number, row: Row): Promise<boolean>;
  /** Keys whose request is in flight since before `before` (Unix ms), oldest first, at most `limit`. */
  listInFlight(before: number, limit: number): Promise<string[]>;
}

/** A store that performs the host form of an I/O itself (`SqliteStore`). @internal */
export interface HostIoStore {
  hostIo(io: string): Promise<string>;
}

/** A store failure as handed back to the core. */
export function storeFailed(e: unknown): Record<string, unknown> {
  return { result: 'store_failed', transient: true, message: e instanceof Error ? e.message : String(e) };
}

/** The options of a `SqliteStore`. */
export interface SqliteStoreOptions {
  /** How long a write waits for another connection's lock (ms; default 5,000). */
  busyTimeoutMs?: number;
}

/**
 * The core's SQLite store (`direct_otp::store::SqliteStore`): one file, in WAL mode, safe to
 * share between processes (and the Rust drivers). Its I/O runs on libuv's thread pool.
 */
export class SqliteStore implements Store, HostIoStore {
  readonly #store: NativeSqliteStore;

  /** Opens (or creates) the file and its table. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.#store = guard(() => new native.SqliteStore(path, options.busyTimeoutMs));
  }

  /** The file's path. */
  get path(): string {
    return this.#store.path;
  }

  /** @internal */
  hostIo(io: string): Promise<string> {
    return this.#store.io(io);
  }

  async #io(io: Record<string, unknown>): Promise<Record<string, unknown>> {
    const text = await this.#store.io(JSON.stringify(io)).catch((e: unknown) => {
      throw DirectOtpError.from(e);
    });
    const input = JSON.parse(text) as Record<string, unknown>;
    if (input.result === 'store_failed') {
      throw new Error(`SQLite: ${String(input.message ?? 'failed')}`);
    }
    return input;
  }

  async load(key: string): Promise<string | null> {
    return ((await this.#io({ op: 'load', key })).record as string | null) ?? null;
  }

  async latestForOrder(orderId: string): Promise<string | null> {
    return ((await this.#io({ op: 'latest_for_order', order_id: orderId })).record as string | null) ?? null;
  }

  async insert(row: Row): Promise<boolean> {
    return (await this.#io({ op: 'insert', ...rowWire(row) })).result === 'stored';
  }

  async replace(expected: number, row: Row): Promise<boolean> {
    return (await this.#io({ op: 'replace', expected, ...rowWire(row) })).result === 'stored';
  }

  async listInFlight(before: number, limit: number): Promise<string[]> {
    return (await this.#io({ op: 'list_in_flight', before, limit })).keys as string[];
  }

  /**
   * Inserts a payment's record (`payment.toRecord()`); the store reads its key and columns
   * from the record itself. False when the key exists (nothing written).
   */
  async insertRecord(record: string): Promise<boolean> {
    return (await this.#io({ op: 'insert', record })).result === 'stored';
  }

  /** Replaces the record under its key if the stored revision is still `expected` (compare-and-swap). */
  async replaceRecord(expected: number, record: string): Promise<boolean> {
    return (await this.#io({ op: 'replace', expected, record })).result === 'stored';
  }

  /** The payment stored under `key`, or null. */
  async payment(key: string): Promise<Payment | null> {
    const record = await this.load(key);
    return record === null ? null : Payment.fromRecord(record);
  }

  [inspect.custom](): string {
    return `SqliteStore { path: ${JSON.stringify(this.path)} }`;
  }
}

/** A row in the host form's field names. */
export function rowWire(row: Row): Record<string, unknown> {
  return {
    key: row.key,
    order_id: row.orderId,
    attempt: row.attempt,
    revision: row.revision,
    in_flight_since: row.inFlightSince,
    record: row.record,
  };
}

/** A host-form row to a `Row`. */
export function rowFromWire(io: Record<string, unknown>): Row {
  return {
    key: io.key as string,
    orderId: io.order_id as string,
    attempt: io.attempt as number,
    revision: io.revision as number,
    inFlightSince: (io.in_flight_since as number | null | undefined) ?? null,
    record: io.record as string,
  };
}
