// Shared by the tests: temporary files, the repository's files, small waits.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The repository root (for tests/conformance and tests/golden): `DIRECT_OTP_REPO` when the
 * tests run from an installed copy of the package, else three levels up from test/.
 */
export const repo = process.env.DIRECT_OTP_REPO ?? path.resolve(here, '..', '..', '..', '..');

/** A fresh temporary directory, removed when the process exits. */
export function tempDir(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `direct-otp-node-${name}-`));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh SQLite file path. */
export function tempDb(name) {
  return path.join(tempDir(name), 'payments.sqlite3');
}

/** A unique prefix for order ids. */
export function prefix(name) {
  return `${name}_${process.pid}_${Date.now().toString(36)}_`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The query of a URL (without `?`). */
export function queryOf(url) {
  return new URL(url).search.slice(1);
}

/** A port on 127.0.0.1 just bound and closed: nothing listens there. */
export async function closedPort() {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
