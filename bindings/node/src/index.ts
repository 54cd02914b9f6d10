// direct-otp for Node: Juspay Direct OTP card payments over the direct-otp Rust core.
//
// * `Payment`: the sans-IO record and its steps (begin, command, handle, view);
// * `Driver`: the safety protocol (write-ahead, compare-and-swap, the sweep) over a `Store`
//   (`SqliteStore`, native) and an `Http` client (`FetchHttp`);
// * `Sandbox`: the simulated bank with its control API, for tests;
// * `DirectOtpError`: every failure, with a registry `code` (`codes()`).

import { hostCall } from './native';

export { Config, CardSource, Command, Settlement, StartRequest } from './config';
export type {
  CardSourceOptions,
  CommandLike,
  ConfigOptions,
  ExpectedAmount,
  PolicyOptions,
  ReturnUrlOptions,
  StartRequestOptions,
  TokenSourceOptions,
  WebhookOptions,
} from './config';
export type { Instant } from './convert';
export { Driver } from './driver';
export type { DriverOptions } from './driver';
export { DirectOtpError } from './errors';
export type { WireErrorForm } from './errors';
export { FetchHttp } from './http';
export type { Exchange, FetchHttpOptions, Http, HttpRequest, SendIo } from './http';
export { native } from './native';
export type { Native, NativeHostSteps, NativeSandboxServer, NativeSqliteStore } from './native';
export { Payment } from './payment';
export type { Reply } from './payment';
export { BankPage, Coded, Done, NextStep, Outcome, Request, Settled, Swept, View } from './results';
export type { CardView, Header } from './results';
export { Sandbox, SandboxError } from './sandbox';
export type { CardFlow, Endpoint, FaultOptions, SandboxOptions, TakenWebhook } from './sandbox';
export { SqliteStore } from './store';
export type { Row, SqliteStoreOptions, Store } from './store';

/** A code of the registry (docs/codes.md). */
export interface CodeInfo {
  readonly code: string;
  /** The types that give it (`Outcome`, `Refusal`, `DriveError`, ...). */
  readonly types: readonly string[];
  readonly meaning: string;
  /** What to do. */
  readonly action: string;
  /** The HTTP status a web handler answers with it. */
  readonly http: string;
}

let registry: readonly CodeInfo[] | undefined;

/** The code registry: every code an error, outcome or step can carry (docs/codes.md). */
export function codes(): readonly CodeInfo[] {
  registry ??= Object.freeze(hostCall<CodeInfo[]>({ fn: 'codes' }).map((c) => Object.freeze({ ...c, types: Object.freeze([...c.types]) })));
  return registry;
}

/** The core's version and its record format. */
export function version(): { version: string; format: number } {
  return hostCall<{ version: string; format: number }>({ fn: 'version' });
}
