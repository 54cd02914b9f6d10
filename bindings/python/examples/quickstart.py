"""Pay an order against the local sandbox: no network, no API key, no Rust toolchain."""

import tempfile
from pathlib import Path

import direct_otp as d

with d.Sandbox.start(api_key="sk_test") as bank, tempfile.TemporaryDirectory() as tmp:
    config = d.Config(base_url=bank.url, api_key="sk_test")
    store = d.SqliteStore(Path(tmp) / "payments.sqlite3")
    driver = d.Driver(config, store, d.UrllibHttp())

    start = d.StartRequest(order_id="order_1", merchant_id="acme",
                           routing_id="customer_1", source=d.CardToken("tok_visa"))
    done = driver.start(start)  # POST /txns: the bank sends the cardholder an SMS
    print(done.outcome.code, "-", done.view.message)

    otp = bank.otp("order_1")  # the cardholder reads the SMS (the sandbox's control API)
    done = driver.submit(done.payment.key, otp)
    print(done.outcome.code, done.view.status, "paid:", done.view.paid)
    assert done.view.paid
    store.close()
