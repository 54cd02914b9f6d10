// The ES module entry: the same classes as `require('direct-otp')` (one copy: the CommonJS
// build), so `import { Driver } from 'direct-otp'` and `require` share state and classes.
import { createRequire } from 'node:module';

const cjs = createRequire(import.meta.url)('./lib/index.js');

export const {
  BankPage,
  CardSource,
  Coded,
  Command,
  Config,
  DirectOtpError,
  Done,
  Driver,
  FetchHttp,
  NextStep,
  Outcome,
  Payment,
  Request,
  Sandbox,
  SandboxError,
  Settled,
  Settlement,
  SqliteStore,
  StartRequest,
  Swept,
  View,
  codes,
  native,
  version,
} = cjs;

export default cjs;
