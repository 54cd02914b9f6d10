// Quick start: pay an order against the sandbox bank, through the Driver (write-ahead,
// compare-and-swap) over a SQLite file and fetch. No network, no key, no Rust toolchain.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CardSource, Config, Driver, Sandbox, SqliteStore, StartRequest } from 'direct-otp';

async function main(): Promise<void> {
  const sandbox = Sandbox.start({ apiKey: 'sk_test' }); // the simulated bank, on 127.0.0.1
  try {
    const driver = new Driver({
      config: new Config({ baseUrl: sandbox.url, apiKey: sandbox.apiKey }),
      store: new SqliteStore(join(mkdtempSync(join(tmpdir(), 'direct-otp-')), 'payments.sqlite3')),
    });
    const source = CardSource.token('tok_visa');
    const start = new StartRequest({ orderId: 'order_42', merchantId: 'acme', routingId: 'customer_7', source });
    const started = await driver.start(start); // stored first, then POST /txns
    console.log(started.outcome.code, '-', started.view.message);

    const otp = await sandbox.otp('order_42'); // the cardholder reads the SMS
    const paid = await driver.submit(started.payment.key, otp ?? '');
    console.log(paid.outcome.code, paid.payment.status, 'paid:', paid.payment.isPaid);
  } finally {
    sandbox.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
