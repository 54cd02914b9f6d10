// CommonJS loads the package: require('direct-otp') gives the classes, one copy.
const assert = require('node:assert/strict');
const { test } = require('node:test');

test('require("direct-otp") loads the package and its native module', () => {
  const otp = require('direct-otp');
  for (const name of ['Config', 'Payment', 'Driver', 'SqliteStore', 'FetchHttp', 'Sandbox', 'DirectOtpError', 'StartRequest', 'CardSource', 'Command', 'Settlement', 'View', 'Outcome', 'Request', 'Done']) {
    assert.equal(typeof otp[name], 'function', name);
  }
  assert.ok(otp.codes().some((c) => c.code === 'wire_syntax'));
  assert.equal(otp.version().version, require('direct-otp/package.json').version);
  const config = new otp.Config({ baseUrl: 'https://sandbox.juspay.in', apiKey: 'sk_cjs' });
  const { payment, request } = otp.Payment.begin(config, { orderId: 'ord_cjs', merchantId: 'acme', routingId: 'c', source: { type: 'token', cardToken: 't' } });
  assert.equal(request.kind, 'start');
  assert.equal(payment.key, 'ord_cjs/1');
  assert.throws(() => new otp.Config({ baseUrl: 'nope', apiKey: 'k' }), otp.DirectOtpError);
});
