// The native module (Rust, napi-rs: `src/lib.rs`): the core's host API, JSON text in and out.
// Everything else in this package is idiom on top of it.

import * as path from 'node:path';

import { DirectOtpError } from './errors';

/** `wire::host::HostSteps`: one driver call as sans-IO steps. */
export interface NativeHostSteps {
  resume(input: string, nowMs: number): string;
}

/** The Rust sandbox served on loopback. */
export interface NativeSandboxServer {
  readonly url: string;
  readonly running: boolean;
  stop(): void;
}

/** The core's SQLite store. */
export interface NativeSqliteStore {
  readonly path: string;
  io(io: string): Promise<string>;
  ioSync(io: string): string;
}

export interface Native {
  call(json: string): string;
  HostSteps: new (json: string) => NativeHostSteps;
  SandboxServer: { start(json: string): NativeSandboxServer };
  SqliteStore: new (path: string, busyTimeoutMs?: number) => NativeSqliteStore;
}

/** The binary's file name for this platform (napi-rs's naming). */
function binaryName(): string {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : '';
  return `direct-otp.${process.platform}-${process.arch}${abi}.node`;
}

function isMusl(): boolean {
  const report = process.report?.getReport?.() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return !report?.header?.glibcVersionRuntime;
}

function load(): Native {
  const file = path.join(__dirname, '..', binaryName());
  try {
    return require(file) as Native;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(
      `direct-otp: no native module for ${process.platform}-${process.arch} (${file}): ${why}. ` +
        'This package ships linux-x64-gnu; build others from source (bindings/node: cargo build -p direct-otp-node).',
    );
  }
}

/** The loaded module. */
export const native: Native = load();

/**
 * Runs a native call, turning an error it throws (a JS Error whose `code` is the wire
 * code) into a `DirectOtpError`.
 */
export function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw DirectOtpError.from(e);
  }
}

/** `wire::host::call` on an object, parsed. */
export function hostCall<T = unknown>(request: object): T {
  const text = guard(() => native.call(JSON.stringify(request)));
  return JSON.parse(text) as T;
}

/** `wire::host::call` on an object, as text. */
export function hostCallText(request: object): string {
  return guard(() => native.call(JSON.stringify(request)));
}
