//! The wire entry points (`direct_otp::wire`) fed arbitrary bytes: a command, a reply, a
//! config, a start request, a stored record, a token.
//!
//! Must hold: nothing panics; every refusal is a `WireError` whose code is in the registry
//! (`direct_otp::codes`) and whose wire form has it; a record that loads writes and loads
//! again unchanged; a reply that parses, handed to a payment whose start is in flight, gives
//! an outcome or a coded error, and the record it leaves loads again.
#![no_main]

use direct_otp::wire::{self, ToWire, WireError};
use direct_otp::{Config, Payment, PaymentSource, StartRequest};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fn coded(e: WireError) {
    assert!(direct_otp::codes::find(e.code()).is_some(), "{e:?}");
    assert_eq!(e.to_wire()["code"], e.code());
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = wire::command(data) {
        coded(e);
    }
    if let Err(e) = wire::config(data) {
        coded(e);
    }
    if let Err(e) = wire::start_request(data) {
        coded(e);
    }
    if let Err(e) = wire::token(&String::from_utf8_lossy(data)) {
        coded(e);
    }
    match wire::record(data) {
        Ok(p) => {
            let json = serde_json::to_vec(&p).unwrap();
            assert_eq!(
                wire::record(&json).unwrap(),
                p,
                "a record that loads loads again"
            );
        }
        Err(e) => coded(e),
    }
    match wire::reply(data) {
        Ok(reply) => {
            let now = OffsetDateTime::from_unix_timestamp(1_795_600_800).unwrap();
            let config = Config::new("http://127.0.0.1:9", "sk_fuzz").unwrap();
            let start =
                StartRequest::new("ord_fuzz", "acme", "cust_1", PaymentSource::token("tok"))
                    .unwrap();
            let mut p = Payment::new(&start, 1, now);
            let out = p.start(&config, &start, now).unwrap();
            match p.handle(out.token, reply, now) {
                Ok(outcome) => assert!(outcome.to_wire()["code"].is_string()),
                Err(e) => assert!(direct_otp::codes::find(e.code()).is_some()),
            }
            let json = serde_json::to_vec(&p).unwrap();
            assert_eq!(
                wire::record(&json).unwrap(),
                p,
                "the record written loads again"
            );
        }
        Err(e) => coded(e),
    }
});
