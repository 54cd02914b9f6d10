//! The in-memory store, for tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use super::{
    check_key, decode, decode_in_order, encode, sql_revision, unix_ms, AsyncStore, Record, Store,
    StoreError,
};

/// A store in memory, **for tests**: it keeps nothing when the process ends and is shared
/// only by the threads of one process (clones are handles to the same rows).
///
/// It keeps each record as its JSON text, like the database stores, and checks keys,
/// revisions and conflicts the same way, so code tested against it behaves the same against
/// them. It implements both [`Store`] and [`AsyncStore`].
///
/// ```
/// use direct_otp::store::{MemoryStore, Record, Store};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Visit { key: String, revision: u64 }
/// # impl Record for Visit {
/// #     fn key(&self) -> &str { &self.key }
/// #     fn revision(&self) -> u64 { self.revision }
/// #     fn in_flight_since(&self) -> Option<time::OffsetDateTime> { None }
/// # }
/// let store = MemoryStore::new();
/// store.insert(&Visit { key: "order_42/1".into(), revision: 1 })?;
/// let visit: Option<Visit> = store.load("order_42/1")?;
/// assert_eq!(visit.map(|v| v.revision), Some(1));
/// # Ok::<(), direct_otp::store::StoreError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    rows: Arc<Mutex<HashMap<String, MemoryRow>>>,
}

#[derive(Debug, Clone)]
struct MemoryRow {
    revision: i64,
    in_flight_since: Option<i64>,
    state: String,
    order_id: Option<String>,
    attempt: Option<i64>,
}

impl From<super::Row> for MemoryRow {
    fn from(row: super::Row) -> Self {
        MemoryRow {
            revision: row.revision,
            in_flight_since: row.in_flight_since,
            state: row.state,
            order_id: row.order_id,
            attempt: row.attempt,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a row as given, unchecked, replacing any row under `key`: for tests of how
    /// code handles a row that does not load (`state` not JSON, or another record's JSON).
    /// The row belongs to no order; [`insert_raw_in_order`](Self::insert_raw_in_order)
    /// gives it one.
    pub fn insert_raw(
        &self,
        key: &str,
        revision: u64,
        in_flight_since: Option<OffsetDateTime>,
        state: &str,
    ) {
        self.rows().insert(
            key.to_owned(),
            MemoryRow {
                revision: i64::try_from(revision).unwrap_or(i64::MAX),
                in_flight_since: in_flight_since.map(unix_ms),
                state: state.to_owned(),
                order_id: None,
                attempt: None,
            },
        );
    }

    /// Writes a row as given, unchecked, as attempt `attempt` of the order `order_id` (what
    /// [`Store::latest_for_order`] looks up): for tests of a corrupt row found by its order.
    pub fn insert_raw_in_order(
        &self,
        key: &str,
        revision: u64,
        order_id: &str,
        attempt: u32,
        state: &str,
    ) {
        self.rows().insert(
            key.to_owned(),
            MemoryRow {
                revision: i64::try_from(revision).unwrap_or(i64::MAX),
                in_flight_since: None,
                state: state.to_owned(),
                order_id: Some(order_id.to_owned()),
                attempt: Some(i64::from(attempt)),
            },
        );
    }

    /// The row under `key` as stored: its revision and its JSON text. For tests.
    pub fn raw(&self, key: &str) -> Option<(u64, String)> {
        self.rows()
            .get(key)
            .map(|row| (u64::try_from(row.revision).unwrap_or(0), row.state.clone()))
    }

    /// How many records are stored.
    pub fn len(&self) -> usize {
        self.rows().len()
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> bool {
        self.rows().is_empty()
    }

    fn rows(&self) -> MutexGuard<'_, HashMap<String, MemoryRow>> {
        // Nothing panics while the lock is held; a poisoned lock still holds whole rows.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load_row<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        check_key(key)?;
        let row = self.rows().get(key).cloned();
        row.map(|row| decode(key, row.revision, &row.state))
            .transpose()
    }

    fn insert_row(&self, row: super::Row) -> Result<(), StoreError> {
        let mut rows = self.rows();
        if let Some(found) = rows.get(&row.key) {
            return Err(StoreError::Conflict {
                found: u64::try_from(found.revision).ok(),
                key: row.key,
            });
        }
        let key = row.key.clone();
        rows.insert(key, row.into());
        Ok(())
    }

    fn replace_row(&self, expected: i64, row: super::Row) -> Result<(), StoreError> {
        let mut rows = self.rows();
        match rows.get_mut(&row.key) {
            None => Err(StoreError::NotFound { key: row.key }),
            Some(stored) if stored.revision != expected => Err(StoreError::Conflict {
                found: u64::try_from(stored.revision).ok(),
                key: row.key,
            }),
            Some(stored) => {
                // The order and attempt are the insert's (they never change), as in SQL.
                let (order_id, attempt) = (stored.order_id.take(), stored.attempt);
                *stored = MemoryRow {
                    order_id,
                    attempt,
                    ..row.into()
                };
                Ok(())
            }
        }
    }

    fn list_in_flight(&self, cutoff: OffsetDateTime, limit: usize) -> Vec<String> {
        let cutoff = unix_ms(cutoff);
        let mut found: Vec<(i64, String)> = self
            .rows()
            .iter()
            .filter_map(|(key, row)| match row.in_flight_since {
                Some(since) if since < cutoff => Some((since, key.clone())),
                _ => None,
            })
            .collect();
        found.sort_unstable();
        found.truncate(limit);
        found.into_iter().map(|(_, key)| key).collect()
    }

    fn latest_row<R: Record>(&self, order_id: &str) -> Result<Option<R>, StoreError> {
        check_key(order_id)?;
        let latest = self
            .rows()
            .iter()
            .filter(|(_, row)| row.order_id.as_deref() == Some(order_id))
            .max_by(|(ka, a), (kb, b)| (a.attempt, ka).cmp(&(b.attempt, kb)))
            .map(|(key, row)| (key.clone(), row.clone()));
        latest
            .map(|(key, row)| {
                decode_in_order(&key, row.revision, &row.state, order_id, row.attempt)
            })
            .transpose()
    }
}

impl<R: Record> Store<R> for MemoryStore {
    fn load(&self, key: &str) -> Result<Option<R>, StoreError> {
        self.load_row(key)
    }

    fn insert(&self, record: &R) -> Result<(), StoreError> {
        self.insert_row(encode(record, None)?)
    }

    fn replace(&self, expected: u64, record: &R) -> Result<(), StoreError> {
        let row = encode(record, Some(expected))?;
        let expected = sql_revision(&row.key, expected)?;
        self.replace_row(expected, row)
    }

    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.list_in_flight(cutoff, limit))
    }

    fn latest_for_order(&self, order_id: &str) -> Result<Option<R>, StoreError> {
        self.latest_row(order_id)
    }
}

/// The same steps as the blocking [`Store`]; each future does its work when first polled
/// and never waits.
impl<R: Record> AsyncStore<R> for MemoryStore {
    async fn load(&self, key: &str) -> Result<Option<R>, StoreError> {
        self.load_row(key)
    }

    fn insert(&self, record: &R) -> impl Future<Output = Result<(), StoreError>> + Send {
        // Encoded now, so the future does not hold the record (which need not be `Sync`).
        let row = encode(record, None);
        async move { self.insert_row(row?) }
    }

    fn replace(
        &self,
        expected: u64,
        record: &R,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let row = encode(record, Some(expected));
        async move {
            let row = row?;
            let expected = sql_revision(&row.key, expected)?;
            self.replace_row(expected, row)
        }
    }

    async fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.list_in_flight(cutoff, limit))
    }

    async fn latest_for_order(&self, order_id: &str) -> Result<Option<R>, StoreError> {
        self.latest_row(order_id)
    }
}
