//! The SQLite store (feature `sqlite`): one file, blocking.

use std::fmt;
#[cfg(feature = "tokio")]
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::{
    check_key, corrupt, decode, decode_in_order, encode, now_ms, order_attempt_of, sql_limit,
    sql_revision, unix_ms, Mismatch, Record, Row, Store, StoreError,
};

/// The table [`SqliteStore::open`] creates (if absent).
const TABLE: &str = "
CREATE TABLE IF NOT EXISTS direct_otp_records (
    key             TEXT PRIMARY KEY NOT NULL,
    revision        INTEGER NOT NULL,
    in_flight_since INTEGER,
    state           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    order_id        TEXT,
    attempt         INTEGER
);
";

/// A table made before the lookup by order: the two columns it lacks.
const ADD_ORDER_COLUMNS: &str = "
ALTER TABLE direct_otp_records ADD COLUMN order_id TEXT;
ALTER TABLE direct_otp_records ADD COLUMN attempt INTEGER;
";

/// The indexes, made after the columns exist.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS direct_otp_records_in_flight
    ON direct_otp_records (in_flight_since) WHERE in_flight_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS direct_otp_records_order
    ON direct_otp_records (order_id, attempt);
";

const LOAD: &str = "SELECT revision, state FROM direct_otp_records WHERE key = ?1";
const INSERT: &str = "INSERT INTO direct_otp_records \
     (key, revision, in_flight_since, state, updated_at, order_id, attempt) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO NOTHING";
// `order_id` and `attempt` are written by the insert only: they never change over a
// record's life, and naming an indexed column in the `SET` costs an index update per write.
const REPLACE: &str = "UPDATE direct_otp_records \
     SET revision = ?3, in_flight_since = ?4, state = ?5, updated_at = ?6 \
     WHERE key = ?1 AND revision = ?2";
const REVISION: &str = "SELECT revision FROM direct_otp_records WHERE key = ?1";
const IN_FLIGHT: &str = "SELECT key FROM direct_otp_records \
     WHERE in_flight_since IS NOT NULL AND in_flight_since < ?1 \
     ORDER BY in_flight_since, key LIMIT ?2";
const LATEST: &str = "SELECT key, revision, state, attempt FROM direct_otp_records \
     WHERE order_id = ?1 ORDER BY attempt DESC, key DESC LIMIT 1";

/// Connections kept open between calls, at most. A thread takes one for the length of a
/// call and opens a new one when none is idle (opening one reads the schema: keep enough
/// for every thread that calls at once).
const MAX_IDLE: usize = 32;

/// A store in one SQLite file (feature `sqlite`), through rusqlite and the SQLite it
/// bundles: blocking, shared by the threads of a process and by several processes on one
/// machine.
///
/// * **WAL mode**: readers never wait for the writer; writers take turns.
/// * **Busy timeout** ([`DEFAULT_BUSY_TIMEOUT`](Self::DEFAULT_BUSY_TIMEOUT), or
///   [`busy_timeout`](Self::busy_timeout)): a write that finds the file locked by another
///   connection (this process or another) waits that long before it fails as
///   [`StoreError::Backend`].
/// * **Durability**: SQLite's default `synchronous = FULL`; an acknowledged write survives
///   a power loss, which the write-ahead before a send relies on.
/// * **Threads**: a small pool of connections, one per thread for the length of each call
///   (at most 32 kept idle), so WAL readers run side by side; each connection caches its
///   prepared statements. Writes run in `BEGIN IMMEDIATE` transactions, and the writers of
///   one store (and its clones) take turns in the process before asking SQLite for its
///   write lock: they wait on a condition variable, woken as soon as the writer before
///   them is done, instead of in SQLite's busy handler, which polls with sleeps of up to
///   100 ms and lets some writers wait far longer than others (at 16 writers, a step's p99
///   falls from about 1.3 s to 0.25 s: `docs/benchmarks.md`). That wait counts against the
///   busy timeout too. Other processes on the file still meet in SQLite's busy handler.
///
/// Cloning gives another handle to the same pool. The schema is in `docs/stores.md`.
///
/// ```no_run
/// use direct_otp::store::{Record, SqliteStore, Store};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Visit { key: String, revision: u64 }
/// # impl Record for Visit {
/// #     fn key(&self) -> &str { &self.key }
/// #     fn revision(&self) -> u64 { self.revision }
/// #     fn in_flight_since(&self) -> Option<time::OffsetDateTime> { None }
/// # }
/// let store = SqliteStore::open("payments.sqlite3")?; // creates the file and the table
/// store.insert(&Visit { key: "order_42/1".into(), revision: 1 })?;
/// let visit: Option<Visit> = store.load("order_42/1")?;
/// # Ok::<(), direct_otp::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    busy_timeout: Mutex<Duration>,
    idle: Mutex<Vec<Connection>>,
    /// This process's writers take turns here before asking SQLite for the write lock.
    gate: WriteGate,
}

/// One writer of this process at a time. SQLite lets one connection write at once, and a
/// connection that finds the lock taken polls for it, sleeping 1 ms, then 2, 5, ... up to
/// 100 ms between tries: under a dozen writers some wait far longer than the lock is held,
/// and some past the busy timeout (`database is locked`). Here the waiting threads sleep on
/// a condition variable and one wakes as soon as the writer before it is done; SQLite's busy
/// handler is left with the other processes only.
#[derive(Default)]
struct WriteGate {
    taken: Mutex<bool>,
    freed: Condvar,
}

impl WriteGate {
    /// Waits for the gate, at most `timeout` (then fails as SQLite would: busy).
    fn enter(&self, timeout: Duration) -> Result<GateGuard<'_>, StoreError> {
        let taken = lock(&self.taken);
        let (mut taken, waited) = self
            .freed
            .wait_timeout_while(taken, timeout, |taken| *taken)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() && *taken {
            return Err(StoreError::backend(format!(
                "database is locked: this process's other writers held it past the busy timeout ({} ms)",
                timeout.as_millis()
            )));
        }
        *taken = true;
        Ok(GateGuard(self))
    }
}

struct GateGuard<'a>(&'a WriteGate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.taken) = false;
        self.0.freed.notify_one();
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("busy_timeout", &*lock(&self.inner.busy_timeout))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteStore {
    /// The table the records are kept in.
    pub const TABLE: &'static str = "direct_otp_records";

    /// How long a write waits for a lock held by another connection before it fails: 5 s.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// Opens (or creates) the SQLite file at `path`, switches it to WAL mode and creates
    /// the table and its index if absent. Safe to call from several processes at once.
    ///
    /// `path` must name a file: an in-memory database (`:memory:`, `""`) is private to one
    /// connection and is refused (use [`MemoryStore`](super::MemoryStore) in tests).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.to_string_lossy();
        if shown.is_empty() || shown == ":memory:" || shown.contains("mode=memory") {
            return Err(StoreError::Config {
                reason:
                    "an in-memory SQLite database is private to one connection: give a file path"
                        .to_owned(),
            });
        }
        let store = SqliteStore {
            inner: Arc::new(Inner {
                path,
                busy_timeout: Mutex::new(Self::DEFAULT_BUSY_TIMEOUT),
                idle: Mutex::new(Vec::new()),
                gate: WriteGate::default(),
            }),
        };
        let conn = store.connect()?;
        // journal_mode answers with the mode now in force.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(StoreError::backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::backend(format!(
                "SQLite refused WAL mode (journal_mode is {mode})"
            )));
        }
        Self::migrate(&conn)?;
        store.put_back(conn);
        Ok(store)
    }

    /// Creates the table and its indexes if absent; a table made before the lookup by order
    /// gets its `order_id` and `attempt` columns; rows without them are filled from their
    /// JSON ([`order_attempt_of`]). One write transaction, so processes opening the file at
    /// once take turns.
    fn migrate(conn: &Connection) -> Result<(), StoreError> {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            .map_err(StoreError::backend)?;
        tx.execute_batch(TABLE).map_err(StoreError::backend)?;
        let has_order: bool = tx
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('direct_otp_records') WHERE name = 'order_id'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_err(StoreError::backend)?
            > 0;
        if !has_order {
            tx.execute_batch(ADD_ORDER_COLUMNS)
                .map_err(StoreError::backend)?;
        }
        tx.execute_batch(INDEXES).map_err(StoreError::backend)?;
        // Rows without an order: those of a table just given the columns, and those an
        // older version inserted since (a rolling upgrade). Rows of no order are read again
        // on every open; the index finds them.
        {
            let rows: Vec<(String, String)> = tx
                .prepare("SELECT key, state FROM direct_otp_records WHERE order_id IS NULL")
                .and_then(|mut s| {
                    s.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<Result<_, _>>()
                })
                .map_err(StoreError::backend)?;
            let mut fill = tx
                .prepare("UPDATE direct_otp_records SET order_id = ?2, attempt = ?3 WHERE key = ?1")
                .map_err(StoreError::backend)?;
            for (key, state) in rows {
                if let Some((order_id, attempt)) = order_attempt_of(&state) {
                    fill.execute(params![key, order_id, attempt])
                        .map_err(StoreError::backend)?;
                }
            }
            drop(fill);
        }
        tx.commit().map_err(StoreError::backend)
    }

    /// Sets how long a write waits for a lock held by another connection before it fails
    /// as [`StoreError::Backend`]. Call it right after [`open`](Self::open): it applies to
    /// the idle connections and to those opened later, not to one in use by another thread.
    pub fn busy_timeout(self, timeout: Duration) -> Result<Self, StoreError> {
        *lock(&self.inner.busy_timeout) = timeout;
        for conn in lock(&self.inner.idle).iter() {
            conn.busy_timeout(timeout).map_err(StoreError::backend)?;
        }
        Ok(self)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.inner.path).map_err(StoreError::backend)?;
        conn.busy_timeout(*lock(&self.inner.busy_timeout))
            .map_err(StoreError::backend)?;
        Ok(conn)
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = lock(&self.inner.idle);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `f` on an idle connection (or a new one), then keeps it for the next call.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = lock(&self.inner.idle).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = f(&conn);
        self.put_back(conn);
        result
    }

    /// Runs the write `f` on a connection: this process's writers one at a time (the
    /// [`WriteGate`]), in a `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock
    /// (waiting in the busy handler for other processes) before reading anything, so the
    /// statement and the revision read after a refused one see the same snapshot. `f`'s
    /// error rolls the transaction back.
    fn with_write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let timeout = *lock(&self.inner.busy_timeout);
        let _turn = self.inner.gate.enter(timeout)?;
        self.with_conn(|conn| {
            // Cached statements, not `execute_batch`: parsing them on every write cost more
            // than the rest of the store's work.
            let run = |sql: &str| {
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.execute([]))
                    .map_err(StoreError::backend)
            };
            run("BEGIN IMMEDIATE")?;
            let result = f(conn).and_then(|value| run("COMMIT").map(|_| value));
            if result.is_err() && !conn.is_autocommit() {
                // Nothing of a refused or failed write stays (a failed COMMIT included).
                let _ = run("ROLLBACK");
            }
            result
        })
    }

    fn found_revision(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
        let found: Option<i64> = conn
            .prepare_cached(REVISION)
            .and_then(|mut s| s.query_row([key], |row| row.get(0)).optional())
            .map_err(StoreError::backend)?;
        Ok(found.map(|r| u64::try_from(r).unwrap_or(0)))
    }

    fn insert_row(&self, row: &Row) -> Result<(), StoreError> {
        self.with_write(|conn| {
            let changed = conn
                .prepare_cached(INSERT)
                .and_then(|mut s| {
                    s.execute(params![
                        row.key,
                        row.revision,
                        row.in_flight_since,
                        row.state,
                        now_ms(),
                        row.order_id,
                        row.attempt
                    ])
                })
                .map_err(StoreError::backend)?;
            if changed == 1 {
                return Ok(());
            }
            Err(StoreError::Conflict {
                key: row.key.clone(),
                found: Self::found_revision(conn, &row.key)?,
            })
        })
    }

    fn replace_row(&self, expected: i64, row: &Row) -> Result<(), StoreError> {
        self.with_write(|conn| {
            let changed = conn
                .prepare_cached(REPLACE)
                .and_then(|mut s| {
                    s.execute(params![
                        row.key,
                        expected,
                        row.revision,
                        row.in_flight_since,
                        row.state,
                        now_ms()
                    ])
                })
                .map_err(StoreError::backend)?;
            if changed == 1 {
                return Ok(());
            }
            match Self::found_revision(conn, &row.key)? {
                None => Err(StoreError::NotFound {
                    key: row.key.clone(),
                }),
                found => Err(StoreError::Conflict {
                    key: row.key.clone(),
                    found,
                }),
            }
        })
    }
}

/// The same calls, async (features `sqlite` and `tokio`): each runs on tokio's blocking
/// pool (`spawn_blocking`), so no async worker thread waits on SQLite, and a call whose
/// future is dropped still finishes (a write-ahead is written or not, never half). The
/// record is encoded before the call leaves the caller's task. Needs a tokio runtime
/// (either flavour); outside one, the call fails as [`StoreError::Backend`].
#[cfg(feature = "tokio")]
impl<R: Record + Send + 'static> super::AsyncStore<R> for SqliteStore {
    async fn load(&self, key: &str) -> Result<Option<R>, StoreError> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || Store::load(&store, &key)).await
    }

    fn insert(&self, record: &R) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (store, row) = (self.clone(), encode(record, None));
        async move {
            let row = row?;
            blocking(move || store.insert_row(&row)).await
        }
    }

    fn replace(
        &self,
        expected: u64,
        record: &R,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (store, row) = (self.clone(), encode(record, Some(expected)));
        async move {
            let row = row?;
            let expected = sql_revision(&row.key, expected)?;
            blocking(move || store.replace_row(expected, &row)).await
        }
    }

    async fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let store = self.clone();
        blocking(move || Store::<R>::in_flight_before(&store, cutoff, limit)).await
    }

    async fn latest_for_order(&self, order_id: &str) -> Result<Option<R>, StoreError> {
        let (store, order_id) = (self.clone(), order_id.to_owned());
        blocking(move || Store::latest_for_order(&store, &order_id)).await
    }
}

/// Runs `call` on tokio's blocking pool; a panic in it is resumed here.
#[cfg(feature = "tokio")]
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(StoreError::backend)?;
    match runtime.spawn_blocking(call).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::backend(e)), // the runtime is shutting down
    }
}

impl<R: Record> Store<R> for SqliteStore {
    fn load(&self, key: &str) -> Result<Option<R>, StoreError> {
        check_key(key)?;
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(LOAD).map_err(StoreError::backend)?;
            let mut rows = stmt.query([key]).map_err(StoreError::backend)?;
            let Some(row) = rows.next().map_err(StoreError::backend)? else {
                return Ok(None);
            };
            let (revision, state) = revision_and_state(key, row, 0)?;
            decode(key, revision, state).map(Some)
        })
    }

    fn latest_for_order(&self, order_id: &str) -> Result<Option<R>, StoreError> {
        check_key(order_id)?;
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(LATEST).map_err(StoreError::backend)?;
            let mut rows = stmt.query([order_id]).map_err(StoreError::backend)?;
            let Some(row) = rows.next().map_err(StoreError::backend)? else {
                return Ok(None);
            };
            let key: String = row.get(0).map_err(StoreError::backend)?;
            let (revision, state) = revision_and_state(&key, row, 1)?;
            let attempt = row.get_ref(3).map_err(StoreError::backend)?.as_i64().ok();
            decode_in_order(&key, revision, state, order_id, attempt).map(Some)
        })
    }

    fn insert(&self, record: &R) -> Result<(), StoreError> {
        self.insert_row(&encode(record, None)?)
    }

    fn replace(&self, expected: u64, record: &R) -> Result<(), StoreError> {
        let row = encode(record, Some(expected))?;
        self.replace_row(sql_revision(&row.key, expected)?, &row)
    }

    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(IN_FLIGHT)
                .map_err(StoreError::backend)?;
            let keys = stmt
                .query_map(params![unix_ms(cutoff), sql_limit(limit)], |row| row.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
                .map_err(StoreError::backend)?;
            Ok(keys)
        })
    }
}

/// The revision and state columns of a row, at `first` and `first + 1`. What is in the row
/// is checked here, not by rusqlite: a wrong type or bad UTF-8 is the row's fault
/// (Corrupt), not the database's (Backend).
fn revision_and_state<'r>(
    key: &str,
    row: &'r rusqlite::Row<'_>,
    first: usize,
) -> Result<(i64, &'r str), StoreError> {
    let revision = row.get_ref(first).map_err(StoreError::backend)?;
    let revision = revision.as_i64().map_err(|_| {
        corrupt(
            key,
            Mismatch(format!("its revision column holds {revision:?}")),
        )
    })?;
    let state = row.get_ref(first + 1).map_err(StoreError::backend)?;
    let state = state
        .as_str()
        .map_err(|e| corrupt(key, Mismatch(format!("its state column is not text: {e}"))))?;
    Ok((revision, state))
}
