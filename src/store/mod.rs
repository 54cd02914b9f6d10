//! Keeping records between web requests: the store contract, and the stores that move rows.
//!
//! A store keeps [`Record`]s, each a serde JSON blob under a key, with a revision that grows
//! with every change. Four operations, each one statement against the database:
//!
//! * **load** a record by key ([`Store::load`]);
//! * **insert** a new record, refused with [`StoreError::Conflict`] if the key exists;
//! * **replace** a record if the stored revision is still the one the caller loaded
//!   (compare-and-swap: `UPDATE ... WHERE key = $k AND revision = $expected`); anything else
//!   is a [`StoreError::Conflict`] and nothing is written;
//! * **list** the keys whose request has been in flight since before a given time, for a
//!   recovery sweep ([`Store::in_flight_before`]);
//! * **find** the latest attempt of an order ([`Store::latest_for_order`]), for a return URL
//!   or a webhook, which name the order and not the attempt.
//!
//! The blocking contract is [`Store`], the async one [`AsyncStore`] (its futures are
//! `Send`). Implement either for your own database; the stores here are:
//!
//! * [`MemoryStore`]: in memory, for tests (both contracts);
#![cfg_attr(
    feature = "sqlite",
    doc = "* [`SqliteStore`] (feature `sqlite`): one SQLite file, blocking, several threads and processes;"
)]
#![cfg_attr(
    not(feature = "sqlite"),
    doc = "* `SqliteStore` (feature `sqlite`): one SQLite file, blocking, several threads and processes;"
)]
#![cfg_attr(
    feature = "postgres",
    doc = "* [`PgStore`] (feature `postgres`): PostgreSQL, async, several servers."
)]
#![cfg_attr(
    not(feature = "postgres"),
    doc = "* `PgStore` (feature `postgres`): PostgreSQL, async, several servers."
)]
//!
//! The stores only move rows and map their errors: what to write, and when, is the caller's.
//! A row that does not load (not JSON, not a record, a column that disagrees with it) is
//! reported as [`StoreError::Corrupt`] with its key and is never deleted or overwritten.
//! `docs/stores.md` has the schema, what to do on each error, and how to plug your own store.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use time::OffsetDateTime;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use self::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use self::postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteStore;

/// The longest key a store accepts, in bytes. PostgreSQL's B-tree index refuses entries
/// over about 2,700 bytes; 1,024 leaves room and is far above `order id + "/" + attempt`.
pub const MAX_KEY_LEN: usize = 1024;

/// The largest revision a store accepts: SQL integers are signed 64-bit. One change per
/// nanosecond would take 292 years to reach it.
pub const MAX_REVISION: u64 = i64::MAX as u64;

/// A record the stores can keep: a serde blob plus the facts the stores index.
///
/// The stores write `serde_json::to_string(record)` in the `state` column and copy
/// [`key`](Record::key), [`revision`](Record::revision),
/// [`in_flight_since`](Record::in_flight_since) and, when the record has one, its
/// [`order_attempt`](Record::order_attempt) into their own columns, so that a
/// compare-and-swap, the recovery listing and the lookup by order read no JSON. On load they
/// check that the JSON agrees with the row's columns.
///
/// ```
/// use direct_otp::store::Record;
/// use time::OffsetDateTime;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Visit { key: String, revision: u64, sent_at_unix: Option<i64> }
///
/// impl Record for Visit {
///     fn key(&self) -> &str { &self.key }
///     fn revision(&self) -> u64 { self.revision }
///     fn in_flight_since(&self) -> Option<OffsetDateTime> {
///         self.sent_at_unix.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
///     }
/// }
/// ```
pub trait Record: serde::Serialize + serde::de::DeserializeOwned {
    /// The record's key, e.g. `"order_42/1"` (order id and attempt). Not empty, at most
    /// [`MAX_KEY_LEN`] bytes, no NUL character; it never changes.
    fn key(&self) -> &str;
    /// Grows with every change; at most [`MAX_REVISION`].
    fn revision(&self) -> u64;
    /// When the request in flight went out, or `None` when no request is in flight. Kept by
    /// the stores to the millisecond.
    fn in_flight_since(&self) -> Option<OffsetDateTime>;

    /// The order this record is an attempt of, and the attempt's number (1, 2, ...), when
    /// records are grouped by order: a [`Payment`](crate::Payment) gives its order id and
    /// attempt. [`Store::latest_for_order`] finds the record of an order with the highest
    /// attempt. `None` (the default): the record belongs to no order and no lookup by order
    /// finds it. Neither may change over the record's life. The order id is checked like a
    /// key (not empty, at most [`MAX_KEY_LEN`] bytes, no NUL).
    fn order_attempt(&self) -> Option<(&str, u32)> {
        None
    }
}

/// A payment is the record the stores are for: keyed `{order_id}/{attempt}`.
impl Record for crate::Payment {
    fn key(&self) -> &str {
        crate::Payment::key(self)
    }

    fn revision(&self) -> u64 {
        crate::Payment::revision(self)
    }

    fn in_flight_since(&self) -> Option<OffsetDateTime> {
        crate::Payment::in_flight_since(self)
    }

    fn order_attempt(&self) -> Option<(&str, u32)> {
        Some((
            crate::Payment::order_id(self),
            crate::Payment::attempt(self),
        ))
    }
}

/// The blocking store contract. [`MemoryStore`] implements it, and so does `SqliteStore`
/// (feature `sqlite`).
///
/// Every method is one atomic step against the store; none retries, none waits for a
/// conflict to clear. See [`StoreError`] for what to do with each error.
///
/// ```
/// use direct_otp::store::{MemoryStore, Record, Store, StoreError};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// # struct Visit { key: String, revision: u64 }
/// # impl Record for Visit {
/// #     fn key(&self) -> &str { &self.key }
/// #     fn revision(&self) -> u64 { self.revision }
/// #     fn in_flight_since(&self) -> Option<time::OffsetDateTime> { None }
/// # }
/// let store = MemoryStore::new();
/// store.insert(&Visit { key: "order_42/1".into(), revision: 1 })?;
///
/// let mut visit: Visit = store.load("order_42/1")?.expect("inserted above");
/// let loaded = visit.revision;
/// visit.revision += 1;
/// store.replace(loaded, &visit)?;
///
/// // A second writer that loaded revision 1 too is refused, and nothing is written.
/// let stale = Visit { key: "order_42/1".into(), revision: 2 };
/// assert!(matches!(store.replace(1, &stale), Err(StoreError::Conflict { found: Some(2), .. })));
/// # Ok::<(), StoreError>(())
/// ```
pub trait Store<R: Record> {
    /// The record stored under `key`, or `None` if there is none.
    ///
    /// A row that does not decode to a record that agrees with its columns is
    /// [`StoreError::Corrupt`], and is left as it is.
    fn load(&self, key: &str) -> Result<Option<R>, StoreError>;

    /// Stores a new record. [`StoreError::Conflict`] (with the revision found) if its key is
    /// already stored; nothing is written then.
    fn insert(&self, record: &R) -> Result<(), StoreError>;

    /// Replaces the record under `record.key()` if its stored revision is still `expected`
    /// (the revision the caller loaded). `record.revision()` must be greater than
    /// `expected` ([`Rejection::RevisionNotAdvanced`] otherwise).
    ///
    /// [`StoreError::Conflict`] if the stored revision is another one (someone else wrote
    /// first), [`StoreError::NotFound`] if there is no such record; nothing is written in
    /// either case.
    fn replace(&self, expected: u64, record: &R) -> Result<(), StoreError>;

    /// Up to `limit` keys of records whose request has been in flight since before `cutoff`
    /// (to the millisecond), oldest first: the candidates of a recovery sweep, which loads
    /// and settles each (a sweep passes `now - grace`).
    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// The latest attempt of the order `order_id`: of the records whose
    /// [`order_attempt`](Record::order_attempt) names this order, the one with the highest
    /// attempt (ties, which keys `{order_id}/{attempt}` never make, by the greatest key), or
    /// `None`. One indexed lookup. `order_id` is checked like a key
    /// ([`StoreError::Rejected`] when empty, too long or holding a NUL); a row that does not
    /// load is [`StoreError::Corrupt`], as on [`load`](Self::load).
    fn latest_for_order(&self, order_id: &str) -> Result<Option<R>, StoreError>;
}

/// The async store contract: the same four steps as [`Store`], with futures that are
/// `Send` (so they run inside tokio or axum handlers). [`MemoryStore`] implements it, and
/// so does `PgStore` (feature `postgres`).
///
/// Implement it with `async fn` in your `impl` block; the compiler checks that each future
/// is `Send`. The trait is used through generics (`S: AsyncStore<R>`), not as `dyn`.
pub trait AsyncStore<R: Record> {
    /// See [`Store::load`].
    fn load(&self, key: &str) -> impl Future<Output = Result<Option<R>, StoreError>> + Send;

    /// See [`Store::insert`].
    fn insert(&self, record: &R) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// See [`Store::replace`].
    fn replace(
        &self,
        expected: u64,
        record: &R,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// See [`Store::in_flight_before`].
    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// See [`Store::latest_for_order`].
    fn latest_for_order(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<R>, StoreError>> + Send;
}

/// What went wrong in a store, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record was changed (or inserted) by someone else first: the stored revision is
    /// `found` (`None` when it was not read). Nothing was written. **Reload the record and
    /// decide again**; do not retry the same write.
    #[error("record {} was written by someone else first (stored revision {}); nothing was written: reload it and decide again", ShortKey(key), Found(*found))]
    Conflict {
        /// The record's key.
        key: String,
        /// The revision in the store just after the refused write, when known.
        found: Option<u64>,
    },
    /// There is no record under this key to replace. Nothing was written. **Insert it
    /// first** (or load it: it may never have been stored).
    #[error(
        "no record {} to replace; nothing was written: insert it first",
        ShortKey(key)
    )]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// The key or the record cannot be stored as given; nothing was read or written. **A bug
    /// in the caller**: see the [`Rejection`].
    #[error("record {} refused: {reason}; nothing was written", ShortKey(key))]
    Rejected {
        /// The key (as given: it may be the reason).
        key: String,
        /// Why.
        reason: Rejection,
    },
    /// The stored row does not load: not JSON, not a record of this type (an unknown format
    /// version, say), or its JSON disagrees with the row's key or revision. The row is left
    /// untouched. **Inspect it** (the `state` column); the source says why.
    #[error(
        "record {} does not load ({source}); the row is left untouched: inspect it",
        ShortKey(key)
    )]
    Corrupt {
        /// The row's key.
        key: String,
        /// Why it does not load (a `serde_json::Error`, or a column that disagrees).
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The store is set up wrong: a URL that does not parse, a table name that is not a
    /// plain SQL name, an in-memory SQLite path. **Fix the configuration.**
    #[error("the store is set up wrong: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The database failed: unreachable, busy past the timeout, disk full, schema missing.
    /// The write may or may not have been applied if the failure came while it ran. **Retry
    /// later** (reload first); if it persists, check the database.
    #[error("the store's database failed ({source}); reload and retry later")]
    Backend {
        /// The database client's error.
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl StoreError {
    /// The key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            StoreError::Conflict { key, .. }
            | StoreError::NotFound { key }
            | StoreError::Rejected { key, .. }
            | StoreError::Corrupt { key, .. } => Some(key),
            StoreError::Config { .. } | StoreError::Backend { .. } => None,
        }
    }

    /// A stable snake_case code: `store_conflict`, `store_not_found`, `store_rejected`,
    /// `store_corrupt`, `store_config`, `store_backend`. Codes never change meaning; new
    /// ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Conflict { .. } => "store_conflict",
            StoreError::NotFound { .. } => "store_not_found",
            StoreError::Rejected { .. } => "store_rejected",
            StoreError::Corrupt { .. } => "store_corrupt",
            StoreError::Config { .. } => "store_config",
            StoreError::Backend { .. } => "store_backend",
        }
    }

    /// Whether this is a [`StoreError::Conflict`]: someone else wrote first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// A [`StoreError::Backend`] from any database client error.
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError::Backend {
            source: source.into(),
        }
    }
}

/// Why a store refused a key or a record without touching the database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The key is empty.
    EmptyKey,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The key holds a NUL character (PostgreSQL text cannot).
    KeyHasNul,
    /// A replacement's revision is not greater than the revision it replaces.
    RevisionNotAdvanced {
        /// The revision the caller loaded.
        expected: u64,
        /// The new record's revision.
        new: u64,
    },
    /// The revision is over [`MAX_REVISION`].
    RevisionTooLarge {
        /// The revision.
        revision: u64,
    },
    /// `serde_json` could not serialize the record (a bug in its `Serialize`).
    Unserializable {
        /// serde_json's message.
        message: String,
    },
}

impl Rejection {
    /// A stable snake_case code of the reason: `empty_key`, `key_too_long`, `key_has_nul`,
    /// `revision_not_advanced`, `revision_too_large`, `unserializable`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::EmptyKey => "empty_key",
            Rejection::KeyTooLong { .. } => "key_too_long",
            Rejection::KeyHasNul => "key_has_nul",
            Rejection::RevisionNotAdvanced { .. } => "revision_not_advanced",
            Rejection::RevisionTooLarge { .. } => "revision_too_large",
            Rejection::Unserializable { .. } => "unserializable",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::EmptyKey => f.write_str("the key is empty"),
            Rejection::KeyTooLong { len } => {
                write!(
                    f,
                    "the key is {len} bytes, over the {MAX_KEY_LEN}-byte limit"
                )
            }
            Rejection::KeyHasNul => f.write_str("the key holds a NUL character"),
            Rejection::RevisionNotAdvanced { expected, new } => write!(
                f,
                "the new revision {new} is not greater than the loaded revision {expected}"
            ),
            Rejection::RevisionTooLarge { revision } => {
                write!(f, "revision {revision} is over {MAX_REVISION}")
            }
            Rejection::Unserializable { message } => {
                write!(f, "it does not serialize to JSON: {message}")
            }
        }
    }
}

/// A key in a message: escaped, and cut after 64 characters (a hostile key may be huge).
struct ShortKey<'a>(&'a str);

impl fmt::Display for ShortKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        short_key(f, self.0)
    }
}

/// Writes `key` escaped, cut after 64 characters.
pub(crate) fn short_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    const SHOWN: usize = 64;
    match key.char_indices().nth(SHOWN) {
        None => write!(f, "{key:?}"),
        Some((cut, _)) => write!(f, "{:?}... ({} bytes)", &key[..cut], key.len()),
    }
}

/// A revision found, in a message.
struct Found(Option<u64>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{r}"),
            None => f.write_str("not read"),
        }
    }
}

// ----- What every store shares: checking keys, encoding rows, decoding them ---------------

/// A record as a row: the columns a store writes.
pub(crate) struct Row {
    pub key: String,
    pub revision: i64,
    pub in_flight_since: Option<i64>,
    pub state: String,
    /// The order this record is an attempt of ([`Record::order_attempt`]), if any.
    pub order_id: Option<String>,
    /// The attempt's number, with `order_id`.
    pub attempt: Option<i64>,
}

/// Refuses a key no store can keep.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        Rejection::EmptyKey
    } else if key.len() > MAX_KEY_LEN {
        Rejection::KeyTooLong { len: key.len() }
    } else if key.contains('\0') {
        Rejection::KeyHasNul
    } else {
        return Ok(());
    };
    Err(rejected(key, reason))
}

fn rejected(key: &str, reason: Rejection) -> StoreError {
    StoreError::Rejected {
        key: key.to_owned(),
        reason,
    }
}

/// A revision as an SQL integer.
pub(crate) fn sql_revision(key: &str, revision: u64) -> Result<i64, StoreError> {
    i64::try_from(revision).map_err(|_| rejected(key, Rejection::RevisionTooLarge { revision }))
}

/// The row for `record`, checked; for a replacement, `expected` is the revision loaded.
pub(crate) fn encode<R: Record>(record: &R, expected: Option<u64>) -> Result<Row, StoreError> {
    let key = record.key();
    check_key(key)?;
    let revision = record.revision();
    if let Some(expected) = expected {
        if revision <= expected {
            return Err(rejected(
                key,
                Rejection::RevisionNotAdvanced {
                    expected,
                    new: revision,
                },
            ));
        }
    }
    let sql_rev = sql_revision(key, revision)?;
    let (order_id, attempt) = match record.order_attempt() {
        Some((order_id, attempt)) => {
            check_key(order_id)?;
            (Some(order_id.to_owned()), Some(i64::from(attempt)))
        }
        None => (None, None),
    };
    let state = serde_json::to_string(record).map_err(|e| {
        rejected(
            key,
            Rejection::Unserializable {
                message: e.to_string(),
            },
        )
    })?;
    Ok(Row {
        key: key.to_owned(),
        revision: sql_rev,
        in_flight_since: record.in_flight_since().map(unix_ms),
        state,
        order_id,
        attempt,
    })
}

/// A row as a record, checked against its columns. Never touches the row.
pub(crate) fn decode<R: Record>(key: &str, revision: i64, state: &str) -> Result<R, StoreError> {
    let record: R = serde_json::from_str(state).map_err(|e| corrupt(key, e))?;
    if record.key() != key {
        return Err(corrupt(
            key,
            Mismatch(format!("its JSON names the key {}", ShortKey(record.key()))),
        ));
    }
    if i64::try_from(record.revision()).ok() != Some(revision) {
        return Err(corrupt(
            key,
            Mismatch(format!(
                "its JSON has revision {} but its revision column {revision}",
                record.revision()
            )),
        ));
    }
    Ok(record)
}

/// A row found by [`Store::latest_for_order`] as a record: checked against its columns,
/// its order and attempt too.
pub(crate) fn decode_in_order<R: Record>(
    key: &str,
    revision: i64,
    state: &str,
    order_id: &str,
    attempt: Option<i64>,
) -> Result<R, StoreError> {
    let record: R = decode(key, revision, state)?;
    let agrees = record
        .order_attempt()
        .is_some_and(|(o, a)| o == order_id && Some(i64::from(a)) == attempt);
    if !agrees {
        return Err(corrupt(
            key,
            Mismatch(format!(
                "its JSON does not name order {} attempt {}",
                ShortKey(order_id),
                attempt.map_or_else(|| "NULL".to_owned(), |a| a.to_string())
            )),
        ));
    }
    Ok(record)
}

/// The order and attempt a stored row's JSON names at its top level (`"order_id"`, a
/// string that is a valid key, and `"attempt"`, a `u32`): how a table made before the
/// `order_id` and `attempt` columns existed fills them (a [`Payment`](crate::Payment)'s
/// JSON has both). A row that is not JSON, or lacks either, gets none.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn order_attempt_of(state: &str) -> Option<(String, i64)> {
    #[derive(serde::Deserialize)]
    struct Grouping {
        order_id: String,
        attempt: u32,
    }
    let g: Grouping = serde_json::from_str(state).ok()?;
    check_key(&g.order_id).ok()?;
    Some((g.order_id, i64::from(g.attempt)))
}

/// A [`StoreError::Corrupt`] for the row `key`.
pub(crate) fn corrupt(key: &str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        source: source.into(),
    }
}

/// A row whose columns disagree with its JSON, or hold what no store writes.
#[derive(Debug)]
pub(crate) struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Mismatch {}

/// Milliseconds since the Unix epoch, rounded down (saturating, far outside any real date).
pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The writing process's clock, for the informative `updated_at` column only.
pub(crate) fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// A listing limit as an SQL integer.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_key_cuts_long_keys_and_escapes() {
        let long = "é".repeat(100);
        let shown = ShortKey(&long).to_string();
        assert!(shown.ends_with("... (200 bytes)"), "{shown}");
        assert_eq!(shown.matches('é').count(), 64);
        assert_eq!(ShortKey("a\"b\n").to_string(), r#""a\"b\n""#);
    }

    #[test]
    fn unix_ms_rounds_down_and_saturates() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(unix_ms(t), -1);
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_999_999).unwrap();
        assert_eq!(unix_ms(t), 1);
    }

    #[test]
    fn keys_no_store_can_keep_are_refused() {
        let cases: [(&str, Option<Rejection>); 4] = [
            ("", Some(Rejection::EmptyKey)),
            ("a\0b", Some(Rejection::KeyHasNul)),
            (&"k".repeat(MAX_KEY_LEN), None),
            ("order_42/1", None),
        ];
        for (key, want) in cases {
            let got = check_key(key).err().map(|e| match e {
                StoreError::Rejected { reason, .. } => reason,
                other => panic!("{other}"),
            });
            assert_eq!(got, want, "{key:?}");
        }
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(matches!(
            check_key(&long),
            Err(StoreError::Rejected { reason: Rejection::KeyTooLong { len }, .. }) if len == MAX_KEY_LEN + 1
        ));
    }
}
