// ES modules load the package: named imports, the default export, the same classes as require.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import otp, { Config, DirectOtpError, Payment, codes, version } from 'direct-otp';

test('import ... from "direct-otp" loads the package, the same copy as require', () => {
  assert.equal(typeof Config, 'function');
  assert.equal(otp.Config, Config);
  const required = createRequire(import.meta.url)('direct-otp');
  assert.equal(required.Payment, Payment, 'one copy of the classes');
  assert.ok(codes().length > 100);
  assert.match(version().version, /^\d+\.\d+\.\d+$/);
  const config = new Config({ baseUrl: 'https://sandbox.juspay.in', apiKey: 'sk_esm' });
  const { payment } = Payment.begin(config, { orderId: 'ord_esm', merchantId: 'acme', routingId: 'c', source: { type: 'token', cardToken: 't' } });
  assert.equal(payment.view().next, 'wait');
  assert.throws(() => Payment.fromRecord('{').view(), (e) => e instanceof DirectOtpError && e.code === 'bad_record');
});
