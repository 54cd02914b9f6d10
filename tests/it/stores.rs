//! The store contract, one table of cases run against every store:
//!
//! * the memory store, through its blocking and its async contract;
//! * SQLite, a new temporary file per case;
//! * PostgreSQL when `DATABASE_URL` is set, a new table per case (dropped afterwards), so
//!   parallel runs never collide. Without `DATABASE_URL` the PostgreSQL test prints
//!   `SKIPPED: ...` and its name says what it needs.
//!
//! Each case gets a fresh store and a way around it (`Raw`) to write a row as given and read
//! one back, which is how a corrupt row is planted and how "nothing was written" is checked.

use std::future::Future;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use direct_otp::store::{
    AsyncStore, MemoryStore, PgStore, Record, Rejection, SqliteStore, Store, StoreError,
    MAX_KEY_LEN,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

// ----- The record under test ------------------------------------------------------------

/// A small record: the three indexed facts and some payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rec {
    key: String,
    revision: u64,
    /// Unix milliseconds (the stores keep milliseconds).
    in_flight_ms: Option<i64>,
    note: String,
    count: u64,
    /// The order and attempt, for the lookup by order (absent: no order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order: Option<(String, u32)>,
}

impl Record for Rec {
    fn key(&self) -> &str {
        &self.key
    }
    fn revision(&self) -> u64 {
        self.revision
    }
    fn in_flight_since(&self) -> Option<OffsetDateTime> {
        self.in_flight_ms.map(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
        })
    }
    fn order_attempt(&self) -> Option<(&str, u32)> {
        self.order.as_ref().map(|(o, a)| (o.as_str(), *a))
    }
}

fn rec(key: &str, revision: u64) -> Rec {
    Rec {
        key: key.to_owned(),
        revision,
        in_flight_ms: None,
        note: format!("revision {revision} of {key}"),
        count: 0,
        order: None,
    }
}

/// Attempt `attempt` of `order`, keyed `{order}/{attempt}`.
fn attempt_rec(order: &str, attempt: u32, revision: u64) -> Rec {
    Rec {
        order: Some((order.to_owned(), attempt)),
        ..rec(&format!("{order}/{attempt}"), revision)
    }
}

/// The next version of `r`, as a writer that loaded it would make.
fn next(r: &Rec, note: &str) -> Rec {
    Rec {
        revision: r.revision + 1,
        note: note.to_owned(),
        ..r.clone()
    }
}

/// 2026-11-25 10:00:00 UTC, in unix milliseconds.
const T0_MS: i64 = 1_795_600_800_000;

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
}

// ----- Targets: a store's operations, and a way around it --------------------------------

/// The four operations, blocking (an async store is driven by `block_on`).
trait Ops: Send + Sync {
    fn load(&self, key: &str) -> Result<Option<Rec>, StoreError>;
    fn insert(&self, r: &Rec) -> Result<(), StoreError>;
    fn replace(&self, expected: u64, r: &Rec) -> Result<(), StoreError>;
    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    fn latest_for_order(&self, order_id: &str) -> Result<Option<Rec>, StoreError>;
}

struct Blocking<S>(S);

impl<S: Store<Rec> + Send + Sync> Ops for Blocking<S> {
    fn load(&self, key: &str) -> Result<Option<Rec>, StoreError> {
        self.0.load(key)
    }
    fn insert(&self, r: &Rec) -> Result<(), StoreError> {
        self.0.insert(r)
    }
    fn replace(&self, expected: u64, r: &Rec) -> Result<(), StoreError> {
        self.0.replace(expected, r)
    }
    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.0.in_flight_before(cutoff, limit)
    }
    fn latest_for_order(&self, order_id: &str) -> Result<Option<Rec>, StoreError> {
        self.0.latest_for_order(order_id)
    }
}

struct Async<S> {
    store: S,
    rt: Arc<Runtime>,
}

/// Checks at compile time that a future is `Send`.
fn send<F: std::future::Future + Send>(f: F) -> F {
    f
}

impl<S: AsyncStore<Rec> + Send + Sync> Ops for Async<S> {
    fn load(&self, key: &str) -> Result<Option<Rec>, StoreError> {
        self.rt.block_on(send(self.store.load(key)))
    }
    fn insert(&self, r: &Rec) -> Result<(), StoreError> {
        self.rt.block_on(send(self.store.insert(r)))
    }
    fn replace(&self, expected: u64, r: &Rec) -> Result<(), StoreError> {
        self.rt.block_on(send(self.store.replace(expected, r)))
    }
    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.rt
            .block_on(send(self.store.in_flight_before(cutoff, limit)))
    }
    fn latest_for_order(&self, order_id: &str) -> Result<Option<Rec>, StoreError> {
        self.rt
            .block_on(send(self.store.latest_for_order(order_id)))
    }
}

/// Around the store: write a row as given, read a row as stored (revision, state text).
trait Raw {
    fn write(&self, key: &str, revision: i64, state: &str);
    /// Writes a row as attempt `attempt` of `order`.
    fn write_in_order(&self, key: &str, revision: i64, order: &str, attempt: i64, state: &str);
    fn read(&self, key: &str) -> Option<(i64, String)>;
}

impl Raw for MemoryStore {
    fn write(&self, key: &str, revision: i64, state: &str) {
        self.insert_raw(key, u64::try_from(revision).unwrap(), None, state);
    }
    fn write_in_order(&self, key: &str, revision: i64, order: &str, attempt: i64, state: &str) {
        let (revision, attempt) = (
            u64::try_from(revision).unwrap(),
            u32::try_from(attempt).unwrap(),
        );
        self.insert_raw_in_order(key, revision, order, attempt, state);
    }
    fn read(&self, key: &str) -> Option<(i64, String)> {
        self.raw(key)
            .map(|(rev, state)| (i64::try_from(rev).unwrap(), state))
    }
}

/// A temporary SQLite file, removed (with its WAL files) on drop.
pub(crate) struct TempDb(pub(crate) PathBuf);

static SEQ: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{what}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl TempDb {
    pub(crate) fn new() -> Self {
        TempDb(std::env::temp_dir().join(format!("{}.sqlite3", unique("direct_otp_stores"))))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Raw for TempDb {
    fn write(&self, key: &str, revision: i64, state: &str) {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO direct_otp_records (key, revision, in_flight_since, state, updated_at) \
             VALUES (?1, ?2, NULL, ?3, 0)",
            rusqlite::params![key, revision, state],
        )
        .unwrap();
    }
    fn write_in_order(&self, key: &str, revision: i64, order: &str, attempt: i64, state: &str) {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO direct_otp_records \
             (key, revision, in_flight_since, state, updated_at, order_id, attempt) \
             VALUES (?1, ?2, NULL, ?3, 0, ?4, ?5)",
            rusqlite::params![key, revision, state, order, attempt],
        )
        .unwrap();
    }
    fn read(&self, key: &str) -> Option<(i64, String)> {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        let mut stmt = conn
            .prepare("SELECT revision, state FROM direct_otp_records WHERE key = ?1")
            .unwrap();
        let mut rows = stmt.query([key]).unwrap();
        rows.next()
            .unwrap()
            .map(|row| (row.get(0).unwrap(), row.get(1).unwrap()))
    }
}

/// A table of its own in PostgreSQL, dropped on drop.
struct PgTable {
    store: PgStore,
    rt: Arc<Runtime>,
}

impl Raw for PgTable {
    fn write(&self, key: &str, revision: i64, state: &str) {
        let sql = format!(
            "INSERT INTO {} (key, revision, in_flight_since, state, updated_at) VALUES ($1, $2, NULL, $3, 0) \
             ON CONFLICT (key) DO UPDATE SET revision = $2, state = $3",
            self.store.table()
        );
        self.rt.block_on(async {
            let client = self.store.pool().get().await.unwrap();
            client
                .execute(&sql, &[&key, &revision, &state])
                .await
                .unwrap();
        });
    }
    fn write_in_order(&self, key: &str, revision: i64, order: &str, attempt: i64, state: &str) {
        let sql = format!(
            "INSERT INTO {} (key, revision, in_flight_since, state, updated_at, order_id, attempt) \
             VALUES ($1, $2, NULL, $3, 0, $4, $5) \
             ON CONFLICT (key) DO UPDATE SET revision = $2, state = $3, order_id = $4, attempt = $5",
            self.store.table()
        );
        self.rt.block_on(async {
            let client = self.store.pool().get().await.unwrap();
            client
                .execute(&sql, &[&key, &revision, &state, &order, &attempt])
                .await
                .unwrap();
        });
    }
    fn read(&self, key: &str) -> Option<(i64, String)> {
        let sql = format!(
            "SELECT revision, state FROM {} WHERE key = $1",
            self.store.table()
        );
        self.rt.block_on(async {
            let client = self.store.pool().get().await.unwrap();
            let row = client.query_opt(&sql, &[&key]).await.unwrap();
            row.map(|row| (row.get(0), row.get(1)))
        })
    }
}

impl Drop for PgTable {
    fn drop(&mut self) {
        let sql = format!("DROP TABLE IF EXISTS {}", self.store.table());
        self.rt.block_on(async {
            if let Ok(client) = self.store.pool().get().await {
                let _ = client.batch_execute(&sql).await;
            }
        });
    }
}

/// One fresh store for one case.
struct Target {
    ops: Box<dyn Ops>,
    raw: Box<dyn Raw>,
}

// ----- The cases ------------------------------------------------------------------------

type Case = fn(&Target);

const CASES: &[(&str, Case)] = &[
    ("insert then load round trip", round_trip),
    ("duplicate insert is a conflict", duplicate_insert),
    (
        "compare-and-swap succeeds on the loaded revision",
        cas_success,
    ),
    (
        "compare-and-swap on a stale revision conflicts, nothing written",
        cas_stale,
    ),
    (
        "compare-and-swap to a lower or equal revision is refused",
        cas_not_advancing,
    ),
    (
        "compare-and-swap of a missing record is NotFound",
        cas_missing,
    ),
    ("revisions over i64::MAX are refused", revision_too_large),
    (
        "in-flight listing: oldest first, before the cutoff, limited",
        stuck_listing,
    ),
    (
        "corrupt rows are reported with their key and left untouched",
        corrupt_rows,
    ),
    ("hostile keys are stored safely", hostile_keys_case),
    ("bad keys are refused before the database", bad_keys),
    (
        "concurrent compare-and-swap: one winner per revision",
        concurrent_cas,
    ),
    (
        "the latest attempt of an order, by attempt number",
        latest_for_order,
    ),
    (
        "a corrupt latest attempt is reported, bad order ids refused",
        latest_for_order_refusals,
    ),
];

fn round_trip(t: &Target) {
    let mut r = rec("order_42/1", 1);
    r.in_flight_ms = Some(T0_MS);
    r.count = 7;
    assert_eq!(t.ops.load("order_42/1").unwrap(), None);
    t.ops.insert(&r).unwrap();
    assert_eq!(t.ops.load("order_42/1").unwrap(), Some(r.clone()));
    // The state column is the record's JSON, as serde_json writes it.
    let (rev, state) = t.raw.read("order_42/1").unwrap();
    assert_eq!((rev, state), (1, serde_json::to_string(&r).unwrap()));
    assert_eq!(t.ops.load("order_42/2").unwrap(), None);
}

fn duplicate_insert(t: &Target) {
    let first = rec("order_7/1", 3);
    t.ops.insert(&first).unwrap();
    let before = t.raw.read("order_7/1");
    let err = t.ops.insert(&rec("order_7/1", 9)).unwrap_err();
    match &err {
        StoreError::Conflict { key, found } => {
            assert_eq!(key, "order_7/1");
            assert_eq!(*found, Some(3));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(err.is_conflict());
    assert!(
        err.to_string().contains("reload it and decide again"),
        "{err}"
    );
    assert_eq!(t.raw.read("order_7/1"), before);
    assert_eq!(t.ops.load("order_7/1").unwrap(), Some(first));
}

fn cas_success(t: &Target) {
    let r1 = rec("order_1/1", 1);
    t.ops.insert(&r1).unwrap();
    let loaded = t.ops.load("order_1/1").unwrap().unwrap();
    let mut r2 = next(&loaded, "write-ahead");
    r2.in_flight_ms = Some(T0_MS);
    t.ops.replace(loaded.revision, &r2).unwrap();
    assert_eq!(t.ops.load("order_1/1").unwrap(), Some(r2.clone()));
    // Revisions may jump, as long as they grow.
    let mut r9 = r2.clone();
    r9.revision = 9;
    r9.in_flight_ms = None;
    t.ops.replace(2, &r9).unwrap();
    assert_eq!(t.ops.load("order_1/1").unwrap(), Some(r9));
}

fn cas_stale(t: &Target) {
    let r1 = rec("order_2/1", 1);
    t.ops.insert(&r1).unwrap();
    // Two writers load revision 1; the first wins.
    t.ops.replace(1, &next(&r1, "first writer")).unwrap();
    let before = t.raw.read("order_2/1").unwrap();
    let err = t.ops.replace(1, &next(&r1, "second writer")).unwrap_err();
    match &err {
        StoreError::Conflict { key, found } => {
            assert_eq!(key, "order_2/1");
            assert_eq!(*found, Some(2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(err.key(), Some("order_2/1"));
    assert_eq!(t.raw.read("order_2/1").unwrap(), before, "nothing written");
    assert_eq!(
        t.ops.load("order_2/1").unwrap().unwrap().note,
        "first writer"
    );
}

fn cas_not_advancing(t: &Target) {
    let mut r = rec("order_3/1", 5);
    t.ops.insert(&r).unwrap();
    let before = t.raw.read("order_3/1").unwrap();
    for new in [5, 4, 0] {
        r.revision = new;
        r.note = "must not be written".into();
        match t.ops.replace(5, &r) {
            Err(StoreError::Rejected {
                key,
                reason:
                    Rejection::RevisionNotAdvanced {
                        expected: 5,
                        new: n,
                    },
            }) => assert_eq!((key.as_str(), n), ("order_3/1", new)),
            other => panic!("revision {new}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(t.raw.read("order_3/1").unwrap(), before);
}

fn cas_missing(t: &Target) {
    match t.ops.replace(1, &rec("order_4/1", 2)) {
        Err(StoreError::NotFound { key }) => assert_eq!(key, "order_4/1"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(t.raw.read("order_4/1"), None, "nothing inserted");
}

fn revision_too_large(t: &Target) {
    let big = u64::MAX;
    match t.ops.insert(&rec("order_5/1", big)) {
        Err(StoreError::Rejected {
            reason: Rejection::RevisionTooLarge { revision },
            ..
        }) => assert_eq!(revision, big),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(t.raw.read("order_5/1"), None);
    let max = rec("order_5/2", i64::MAX as u64);
    t.ops.insert(&max).unwrap();
    assert_eq!(t.ops.load("order_5/2").unwrap(), Some(max));
}

fn stuck_listing(t: &Target) {
    let cases = [
        ("idle", None),
        ("oldest", Some(T0_MS - 60_000)),
        ("older", Some(T0_MS - 5_000)),
        ("just_before", Some(T0_MS - 1)),
        ("at_cutoff", Some(T0_MS)),
        ("later", Some(T0_MS + 1_000)),
        // Same time as "older": ordered by key after time.
        ("a_older_twin", Some(T0_MS - 5_000)),
    ];
    for (key, since) in cases {
        let mut r = rec(key, 1);
        r.in_flight_ms = since;
        t.ops.insert(&r).unwrap();
    }
    let cutoff = at_ms(T0_MS);
    assert_eq!(
        t.ops.in_flight_before(cutoff, 100).unwrap(),
        ["oldest", "a_older_twin", "older", "just_before"]
    );
    assert_eq!(
        t.ops.in_flight_before(cutoff, 2).unwrap(),
        ["oldest", "a_older_twin"]
    );
    assert!(t.ops.in_flight_before(cutoff, 0).unwrap().is_empty());
    assert!(t.ops.in_flight_before(at_ms(0), 100).unwrap().is_empty());
    // A sub-millisecond cutoff counts by its millisecond.
    let cutoff_plus = cutoff + time::Duration::microseconds(999);
    assert_eq!(t.ops.in_flight_before(cutoff_plus, 100).unwrap().len(), 4);
    // Answered: no longer listed.
    let oldest = t.ops.load("oldest").unwrap().unwrap();
    let mut answered = next(&oldest, "answered");
    answered.in_flight_ms = None;
    t.ops.replace(1, &answered).unwrap();
    assert_eq!(
        t.ops.in_flight_before(cutoff, usize::MAX).unwrap(),
        ["a_older_twin", "older", "just_before"]
    );
}

fn corrupt_rows(t: &Target) {
    let other = serde_json::to_string(&rec("someone_else", 1)).unwrap();
    let good = serde_json::to_string(&rec("bad_revision", 1)).unwrap();
    let rows: [(&str, i64, &str); 5] = [
        ("not_json", 1, "{not json"),
        ("empty", 1, ""),
        (
            "unknown_format",
            1,
            r#"{"format":99,"key":"unknown_format"}"#,
        ),
        ("bad_revision", 4, &good),
        ("other_key", 1, &other),
    ];
    for (key, revision, state) in rows {
        t.raw.write(key, revision, state);
        match t.ops.load(key) {
            Err(err @ StoreError::Corrupt { .. }) => {
                assert_eq!(err.key(), Some(key));
                let shown = err.to_string();
                assert!(shown.contains(key) && shown.contains("inspect"), "{shown}");
            }
            other => panic!("{key}: expected Corrupt, got {other:?}"),
        }
        // Left as it was, and an insert does not overwrite it.
        assert_eq!(t.raw.read(key), Some((revision, state.to_owned())), "{key}");
        assert!(
            t.ops.insert(&rec(key, 1)).unwrap_err().is_conflict(),
            "{key}"
        );
        assert_eq!(t.raw.read(key), Some((revision, state.to_owned())), "{key}");
    }
}

fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "order'; DROP TABLE direct_otp_records; --",
        "o\"r\\d'e`r",
        "100%_done",
        "line\nbreak\ttab\r",
        "\u{202e}reversed\u{200b}",
        "заказ/1",
        "注文/1",
        "🧾💳/1",
        "e\u{301}",
        " ",
        "$1",
        "?1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    keys.push("k".repeat(MAX_KEY_LEN));
    // Exactly the limit in bytes, in 3-byte characters, plus one byte.
    keys.push(format!("{}x", "語".repeat((MAX_KEY_LEN - 1) / 3)));
    keys
}

fn hostile_keys_case(t: &Target) {
    let keys = hostile_keys();
    for (i, key) in keys.iter().enumerate() {
        assert!(key.len() <= MAX_KEY_LEN);
        let mut r = rec(key, 1);
        r.in_flight_ms = Some(T0_MS - 1_000 + i as i64);
        t.ops.insert(&r).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert_eq!(t.ops.load(key).unwrap().as_ref(), Some(&r), "{key:?}");
        t.ops.replace(1, &next(&r, "second")).unwrap();
        assert!(t.ops.insert(&r).unwrap_err().is_conflict(), "{key:?}");
    }
    // Each one its own row: the listing gives them all back, in the order written.
    assert_eq!(t.ops.in_flight_before(at_ms(T0_MS), 1000).unwrap(), keys);
    // The table survived the first one.
    assert_eq!(t.ops.load("order_1/1").unwrap(), None);
}

fn bad_keys(t: &Target) {
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let cases = [
        ("", Rejection::EmptyKey),
        ("nul\0byte", Rejection::KeyHasNul),
        (
            long.as_str(),
            Rejection::KeyTooLong {
                len: MAX_KEY_LEN + 1,
            },
        ),
    ];
    for (key, want) in cases {
        for (op, result) in [
            ("insert", t.ops.insert(&rec(key, 1)).map(|_| ())),
            ("replace", t.ops.replace(1, &rec(key, 2)).map(|_| ())),
            ("load", t.ops.load(key).map(|_| ())),
        ] {
            match result {
                Err(StoreError::Rejected { key: k, reason }) => {
                    assert_eq!((k.as_str(), &reason), (key, &want), "{op}")
                }
                other => panic!("{op} {key:?}: expected a refusal, got {other:?}"),
            }
        }
        if !key.contains('\0') {
            // (PostgreSQL text cannot even be asked for one.)
            assert_eq!(t.raw.read(key), None);
        }
    }
    // A huge key is cut in the message.
    let err = t.ops.insert(&rec(&long, 1)).unwrap_err().to_string();
    assert!(err.len() < 300 && err.contains("1025 bytes"), "{err}");
}

fn latest_for_order(t: &Target) {
    assert_eq!(t.ops.latest_for_order("order_a").unwrap(), None);
    // Attempts stored out of order; 10 sorts after 9 as a number, not as text.
    for attempt in [2, 1, 10, 9] {
        t.ops.insert(&attempt_rec("order_a", attempt, 1)).unwrap();
    }
    t.ops.insert(&attempt_rec("order_b", 1, 1)).unwrap();
    // A record of no order is never found by one, whatever its key.
    t.ops.insert(&rec("order_c/1", 1)).unwrap();
    let latest = t.ops.latest_for_order("order_a").unwrap().unwrap();
    assert_eq!(latest, attempt_rec("order_a", 10, 1));
    assert_eq!(
        t.ops.latest_for_order("order_b").unwrap(),
        Some(attempt_rec("order_b", 1, 1))
    );
    assert_eq!(t.ops.latest_for_order("order_c").unwrap(), None);
    assert_eq!(t.ops.latest_for_order("order_").unwrap(), None);
    assert_eq!(t.ops.latest_for_order("ORDER_A").unwrap(), None);
    // A replacement keeps it found, with its new revision.
    t.ops.replace(1, &next(&latest, "settled")).unwrap();
    let found = t.ops.latest_for_order("order_a").unwrap().unwrap();
    assert_eq!((found.revision, found.note.as_str()), (2, "settled"));
    // Attempt 11 then becomes the latest.
    t.ops.insert(&attempt_rec("order_a", 11, 1)).unwrap();
    assert_eq!(
        t.ops.latest_for_order("order_a").unwrap().unwrap().key,
        "order_a/11"
    );
    // Hostile order ids are values like any other.
    for order in ["o'; DROP TABLE x; --", "100%_%", "заказ", "🧾"] {
        t.ops.insert(&attempt_rec(order, 3, 1)).unwrap();
        let found = t.ops.latest_for_order(order).unwrap();
        assert_eq!(found, Some(attempt_rec(order, 3, 1)), "{order:?}");
    }
    assert_eq!(t.ops.latest_for_order("100%").unwrap(), None, "no LIKE");
}

fn latest_for_order_refusals(t: &Target) {
    let long = "o".repeat(MAX_KEY_LEN + 1);
    for (order, want) in [
        ("", Rejection::EmptyKey),
        ("nul\0order", Rejection::KeyHasNul),
        (
            long.as_str(),
            Rejection::KeyTooLong {
                len: MAX_KEY_LEN + 1,
            },
        ),
    ] {
        match t.ops.latest_for_order(order) {
            Err(StoreError::Rejected { reason, .. }) => assert_eq!(reason, want, "{order:?}"),
            other => panic!("{order:?}: expected a refusal, got {other:?}"),
        }
        // A record naming such an order is refused too, nothing written.
        let mut r = rec("order_bad/1", 1);
        r.order = Some((order.to_owned(), 1));
        assert!(
            matches!(t.ops.insert(&r), Err(StoreError::Rejected { .. })),
            "{order:?}"
        );
        assert_eq!(t.raw.read("order_bad/1"), None);
    }
    // A row whose JSON does not load, or names another order, is Corrupt, left untouched.
    let other = Rec {
        order: Some(("order_y".into(), 9)),
        ..rec("order_x/3", 1)
    };
    let other = serde_json::to_string(&other).unwrap();
    for (key, state) in [("order_x/2", "{not json"), ("order_x/3", other.as_str())] {
        t.raw.write_in_order(key, 1, "order_x", 9, state);
        match t.ops.latest_for_order("order_x") {
            Err(e @ StoreError::Corrupt { .. }) => assert_eq!(e.key(), Some(key)),
            other => panic!("{key}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(t.raw.read(key), Some((1, state.to_owned())));
        // Put aside (another attempt number) for the next one.
        t.raw.write_in_order(key, 1, "order_x_aside", 9, state);
    }
}

const THREADS: usize = 8;
const WINS_EACH: u64 = 12;

fn concurrent_cas(t: &Target) {
    let ops = &*t.ops;
    let key = "order_race/1";
    t.ops.insert(&rec(key, 1)).unwrap();
    let barrier = Barrier::new(THREADS);
    let won: Vec<Vec<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|id| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let mut won = Vec::new();
                    let mut conflicts = 0u64;
                    while (won.len() as u64) < WINS_EACH {
                        let loaded = ops.load(key).unwrap().unwrap();
                        let mut mine = next(&loaded, &format!("thread {id}"));
                        mine.count += 1;
                        match ops.replace(loaded.revision, &mine) {
                            Ok(()) => won.push(mine.revision),
                            Err(StoreError::Conflict { found, .. }) => {
                                // Someone else wrote a later revision.
                                assert!(found.unwrap() > loaded.revision);
                                conflicts += 1;
                                assert!(conflicts < 100_000, "livelock");
                            }
                            Err(e) => panic!("thread {id}: {e}"),
                        }
                    }
                    won
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = won.into_iter().flatten().collect();
    all.sort_unstable();
    let total = THREADS as u64 * WINS_EACH;
    // Every revision from 2 on was won exactly once, and no increment was lost.
    assert_eq!(all, (2..=total + 1).collect::<Vec<_>>());
    let last = t.ops.load(key).unwrap().unwrap();
    assert_eq!((last.revision, last.count), (total + 1, total));
}

// ----- Running the table ----------------------------------------------------------------

/// Runs every case on a fresh target from `make`, and fails listing every case that failed.
fn run_all(store: &str, make: &dyn Fn() -> Target) {
    let mut failed = Vec::new();
    for (name, case) in CASES {
        let target = make();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(&target))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{store}: {name}: {why}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn runtime() -> Arc<Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

#[test]
fn memory_store_contract_blocking() {
    run_all("memory (blocking)", &|| {
        let store = MemoryStore::new();
        Target {
            ops: Box::new(Blocking(store.clone())),
            raw: Box::new(store),
        }
    });
}

#[test]
fn memory_store_contract_async() {
    let rt = runtime();
    run_all("memory (async)", &|| {
        let store = MemoryStore::new();
        Target {
            ops: Box::new(Async {
                store: store.clone(),
                rt: rt.clone(),
            }),
            raw: Box::new(store),
        }
    });
}

#[test]
fn sqlite_store_contract() {
    run_all("sqlite", &|| {
        let db = TempDb::new();
        let store = SqliteStore::open(&db.0).unwrap();
        Target {
            ops: Box::new(Blocking(store)),
            raw: Box::new(db),
        }
    });
}

/// The same SQLite store through `AsyncStore` (feature `tokio`): its calls run on tokio's
/// blocking pool, with the same contract.
#[test]
fn sqlite_store_contract_async() {
    let rt = runtime();
    run_all("sqlite (async)", &|| {
        let db = TempDb::new();
        let store = SqliteStore::open(&db.0).unwrap();
        Target {
            ops: Box::new(Async {
                store,
                rt: rt.clone(),
            }),
            raw: Box::new(db),
        }
    });
}

/// Outside a tokio runtime, the async SQLite store fails with a typed error, no panic.
#[test]
fn sqlite_async_outside_a_runtime_is_a_backend_error() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.0).unwrap();
    let mut load = std::pin::pin!(AsyncStore::<Rec>::load(&store, "k/1"));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // It is ready at the first poll: no runtime, nothing to wait for.
    let std::task::Poll::Ready(result) = load.as_mut().poll(&mut cx) else {
        panic!("the load waits outside a runtime");
    };
    assert!(
        matches!(result, Err(StoreError::Backend { .. })),
        "{result:?}"
    );
}

#[test]
fn postgres_store_contract_needs_database_url() {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL store tests (set DATABASE_URL=postgres://...)"
        );
        return;
    };
    let rt = runtime();
    let base = rt
        .block_on(PgStore::connect(&url))
        .unwrap_or_else(|e| panic!("DATABASE_URL is set but: {e}"));
    run_all("postgres", &|| {
        let store = base.clone().with_table(&unique("dotp_test")).unwrap();
        rt.block_on(store.migrate()).unwrap();
        // Twice: migrate is idempotent.
        rt.block_on(store.migrate()).unwrap();
        Target {
            ops: Box::new(Async {
                store: store.clone(),
                rt: rt.clone(),
            }),
            raw: Box::new(PgTable {
                store,
                rt: rt.clone(),
            }),
        }
    });
}

// ----- Store-specific ---------------------------------------------------------------------

/// Several processes on one SQLite file: this test runs copies of itself as workers (the
/// variable below tells a copy it is one), each incrementing one record with
/// compare-and-swap while this process does the same; no increment may be lost.
#[test]
fn sqlite_store_several_processes() {
    const WORKER: &str = "DIRECT_OTP_SQLITE_WORKER";
    const PROCESSES: usize = 2;
    const WINS: u64 = 15;
    let key = "order_processes/1";
    let work = |store: &SqliteStore| {
        let mut wins = 0;
        while wins < WINS {
            let loaded: Rec = Store::load(store, key).unwrap().unwrap();
            let mut mine = next(&loaded, &format!("process {}", std::process::id()));
            mine.count += 1;
            match Store::replace(store, loaded.revision, &mine) {
                Ok(()) => wins += 1,
                Err(e) if e.is_conflict() => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    if let Some(path) = std::env::var_os(WORKER) {
        work(&SqliteStore::open(path).unwrap());
        return;
    }
    let db = TempDb::new();
    let store = SqliteStore::open(&db.0).unwrap();
    Store::insert(&store, &rec(key, 1)).unwrap();
    let exe = std::env::current_exe().unwrap();
    // This test's name in the harness: its module path without the crate's name.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let name = format!("{module}::sqlite_store_several_processes");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", &name, "--test-threads=1"])
                .env(WORKER, &db.0)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    work(&store);
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a worker process failed");
    }
    let last: Rec = Store::load(&store, key).unwrap().unwrap();
    let total = (PROCESSES as u64 + 1) * WINS;
    assert_eq!((last.revision, last.count), (total + 1, total));
}

/// The table as versions before the lookup by order made it (no `order_id`, `attempt`).
const OLD_TABLE: &str = "CREATE TABLE direct_otp_records (
    key             TEXT PRIMARY KEY NOT NULL,
    revision        INTEGER NOT NULL,
    in_flight_since INTEGER,
    state           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
)";

/// Payments stored before the migration: attempts 1 and 2 of one order, and rows the
/// migration must leave alone (not JSON; a record of no order).
fn old_rows() -> Vec<(String, i64, String)> {
    use direct_otp::{Payment, PaymentSource, StartRequest};
    let card = PaymentSource::Token {
        card_token: "tok_1".into(),
        cvv: None,
    };
    let start = StartRequest::new("ord_old", "acme", "cust_1", card).unwrap();
    let mut rows: Vec<(String, i64, String)> = [1, 2]
        .into_iter()
        .map(|attempt| {
            let p = Payment::new(&start, attempt, at_ms(T0_MS));
            let state = serde_json::to_string(&p).unwrap();
            (p.key().to_owned(), 1, state)
        })
        .collect();
    rows.push(("ord_old/junk".into(), 1, "{not json".into()));
    let plain = rec("ord_old/plain", 1);
    rows.push((plain.key.clone(), 1, serde_json::to_string(&plain).unwrap()));
    rows
}

fn check_migrated(latest: Option<direct_otp::Payment>) {
    let latest = latest.expect("the old payment is found by its order");
    assert_eq!((latest.key(), latest.attempt()), ("ord_old/2", 2));
}

/// A file made by an earlier version gains the columns, filled from its rows, on `open`.
#[test]
fn sqlite_store_migrates_an_old_table() {
    let db = TempDb::new();
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.execute_batch(OLD_TABLE).unwrap();
    for (key, revision, state) in old_rows() {
        conn.execute(
            "INSERT INTO direct_otp_records VALUES (?1, ?2, NULL, ?3, 0)",
            rusqlite::params![key, revision, state],
        )
        .unwrap();
    }
    drop(conn);
    // Two processes' worth of `open` at once: one migrates, the other finds it done.
    let stores: Vec<SqliteStore> = std::thread::scope(|s| {
        let opens: Vec<_> = (0..2)
            .map(|_| s.spawn(|| SqliteStore::open(&db.0).unwrap()))
            .collect();
        opens.into_iter().map(|o| o.join().unwrap()).collect()
    });
    for store in &stores {
        check_migrated(Store::latest_for_order(store, "ord_old").unwrap());
    }
    // The rows are untouched but for the new columns; the junk row got none.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let groups: Vec<(String, Option<String>, Option<i64>)> = conn
        .prepare("SELECT key, order_id, attempt FROM direct_otp_records ORDER BY key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        groups,
        [
            ("ord_old/1".into(), Some("ord_old".into()), Some(1)),
            ("ord_old/2".into(), Some("ord_old".into()), Some(2)),
            ("ord_old/junk".into(), None, None),
            ("ord_old/plain".into(), None, None),
        ]
    );
    assert_eq!(
        TempDb::read(&db, "ord_old/junk"),
        Some((1, "{not json".to_owned()))
    );
    // The lookup uses the index.
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT key, revision, state, attempt FROM direct_otp_records \
             WHERE order_id = ?1 ORDER BY attempt DESC, key DESC LIMIT 1",
            ["ord_old"],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("direct_otp_records_order"), "{plan}");

    // A rolling upgrade: an older version still inserts rows without the columns; the
    // next open fills them.
    let (key, _, state) = old_rows().remove(1);
    let state = state.replace("\"attempt\":2", "\"attempt\":3");
    let key = key.replace("/2", "/3");
    conn.execute(
        "INSERT INTO direct_otp_records (key, revision, in_flight_since, state, updated_at) \
         VALUES (?1, 1, NULL, ?2, 0)",
        rusqlite::params![key, state],
    )
    .unwrap();
    let store = SqliteStore::open(&db.0).unwrap();
    let latest: direct_otp::Payment = Store::latest_for_order(&store, "ord_old").unwrap().unwrap();
    assert_eq!((latest.key(), latest.attempt()), ("ord_old/3", 3));
}

/// `migrate` on a table made by an earlier version adds the columns and fills them.
#[test]
fn postgres_store_migrates_an_old_table_needs_database_url() {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL migration test (set DATABASE_URL=postgres://...)"
        );
        return;
    };
    let rt = runtime();
    let store = rt
        .block_on(PgStore::connect(&url))
        .unwrap()
        .with_table(&unique("dotp_old"))
        .unwrap();
    let table = store.table().to_owned();
    let old = OLD_TABLE
        .replace("direct_otp_records", &table)
        .replace("INTEGER", "BIGINT");
    rt.block_on(async {
        let client = store.pool().get().await.unwrap();
        client.batch_execute(&old).await.unwrap();
        for (key, revision, state) in old_rows() {
            client
                .execute(
                    &format!("INSERT INTO {table} VALUES ($1, $2, NULL, $3, 0)"),
                    &[&key, &revision, &state],
                )
                .await
                .unwrap();
        }
    });
    let guard = PgTable {
        store: store.clone(),
        rt: rt.clone(),
    };
    rt.block_on(store.migrate()).unwrap();
    rt.block_on(store.migrate()).unwrap();
    check_migrated(
        rt.block_on(AsyncStore::latest_for_order(&store, "ord_old"))
            .unwrap(),
    );
    assert_eq!(
        guard.read("ord_old/junk"),
        Some((1, "{not json".to_owned()))
    );
    let plain: Option<Rec> = rt
        .block_on(AsyncStore::latest_for_order(&store, "ord_old/plain"))
        .unwrap();
    assert_eq!(plain, None);
}

#[test]
fn store_is_dyn_compatible() {
    let store: Box<dyn Store<Rec>> = Box::new(MemoryStore::new());
    store.insert(&rec("order_dyn/1", 1)).unwrap();
    assert_eq!(
        store.load("order_dyn/1").unwrap(),
        Some(rec("order_dyn/1", 1))
    );
}

#[test]
fn sqlite_store_refuses_an_in_memory_database() {
    for path in ["", ":memory:", "file:x?mode=memory"] {
        match SqliteStore::open(path) {
            Err(StoreError::Config { reason }) => assert!(reason.contains("file path")),
            other => panic!("{path:?}: expected a configuration error, got {other:?}"),
        }
    }
}

#[test]
fn sqlite_store_uses_wal_and_reopens() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.0).unwrap();
    Store::insert(&store, &rec("order_9/1", 1)).unwrap();
    drop(store);
    // Open again: the schema is kept, the record too.
    let store = SqliteStore::open(&db.0)
        .unwrap()
        .busy_timeout(std::time::Duration::from_millis(250))
        .unwrap();
    assert_eq!(
        Store::<Rec>::load(&store, "order_9/1").unwrap(),
        Some(rec("order_9/1", 1))
    );
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_store_reports_a_missing_table_as_backend() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.0).unwrap();
    rusqlite::Connection::open(&db.0)
        .unwrap()
        .execute_batch("DROP TABLE direct_otp_records")
        .unwrap();
    let err = Store::<Rec>::load(&store, "order_1/1").unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("retry later"), "{err}");
}

#[test]
fn postgres_store_refuses_bad_table_names_and_urls() {
    let rt = runtime();
    // Parsed before any connection: no server needed.
    let err = rt
        .block_on(PgStore::connect("postgres://app:s3cretpw@host:notaport/db"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cretpw"), "{err}");

    // A pool opens no connection until asked.
    let config: tokio_postgres::Config = "postgres://app:s3cretpw@127.0.0.1/db".parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let store = PgStore::from_pool(deadpool_postgres::Pool::builder(manager).build().unwrap());
    assert_eq!(store.table(), PgStore::DEFAULT_TABLE);
    let too_long = "t".repeat(PgStore::MAX_TABLE_LEN + 1);
    for bad in [
        "",
        "Records",
        "1records",
        "records; DROP TABLE x",
        "a.b",
        "\"q\"",
        &too_long,
    ] {
        match store.clone().with_table(bad) {
            Err(StoreError::Config { .. }) => {}
            other => panic!("{bad:?}: expected a configuration error, got {other:?}"),
        }
    }
    assert!(!format!("{store:?}").contains("s3cretpw"));
    assert_eq!(
        store.with_table("payments_2").unwrap().table(),
        "payments_2"
    );
}
