//! The PostgreSQL store (feature `postgres`): async, through tokio-postgres and a deadpool pool.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio_postgres::NoTls;

use super::{
    check_key, decode, decode_in_order, encode, now_ms, order_attempt_of, sql_limit, sql_revision,
    unix_ms, AsyncStore, Record, Row, StoreError,
};

/// Connections the pool of [`PgStore::connect`] opens at most.
const POOL_SIZE: usize = 16;
/// How long [`PgStore::connect`]'s pool waits to open a connection, or for a free one.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// A store in PostgreSQL (feature `postgres`), for several servers sharing one database:
/// async, its futures `Send`, through `tokio-postgres` and a `deadpool-postgres` pool (which
/// caches each connection's prepared statements).
///
/// One row per record in the table [`DEFAULT_TABLE`](Self::DEFAULT_TABLE) (or the one given
/// to [`with_table`](Self::with_table)), created by [`migrate`](Self::migrate). Every write
/// is one statement; a replacement checks the revision in the `UPDATE`'s `WHERE`, so two
/// servers can never both win the same revision. Cloning gives another handle to the same
/// pool. The schema is in `docs/stores.md`.
///
/// ```no_run
/// use direct_otp::store::{AsyncStore, PgStore, Record};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Visit { key: String, revision: u64 }
/// # impl Record for Visit {
/// #     fn key(&self) -> &str { &self.key }
/// #     fn revision(&self) -> u64 { self.revision }
/// #     fn in_flight_since(&self) -> Option<time::OffsetDateTime> { None }
/// # }
/// # async fn run() -> Result<(), direct_otp::store::StoreError> {
/// let store = PgStore::connect("postgres://app@db.internal/payments").await?;
/// store.migrate().await?; // CREATE TABLE IF NOT EXISTS: safe on every start
/// store.insert(&Visit { key: "order_42/1".into(), revision: 1 }).await?;
/// let visit: Option<Visit> = store.load("order_42/1").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    sql: Arc<Sql>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pool: its configuration holds the password.
        f.debug_struct("PgStore")
            .field("table", &self.sql.table)
            .finish_non_exhaustive()
    }
}

/// The statements, for one table.
struct Sql {
    table: String,
    load: String,
    insert: String,
    replace: String,
    revision: String,
    in_flight: String,
    latest: String,
}

impl Sql {
    fn new(table: &str) -> Self {
        Sql {
            table: table.to_owned(),
            load: format!("SELECT revision, state FROM {table} WHERE key = $1"),
            insert: format!(
                "INSERT INTO {table} \
                 (key, revision, in_flight_since, state, updated_at, order_id, attempt) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING"
            ),
            // `order_id` and `attempt` are written by the insert only: they never change.
            replace: format!(
                "UPDATE {table} SET revision = $3, in_flight_since = $4, state = $5, updated_at = $6 \
                 WHERE key = $1 AND revision = $2"
            ),
            revision: format!("SELECT revision FROM {table} WHERE key = $1"),
            in_flight: format!(
                "SELECT key FROM {table} \
                 WHERE in_flight_since IS NOT NULL AND in_flight_since < $1 \
                 ORDER BY in_flight_since, key LIMIT $2"
            ),
            latest: format!(
                "SELECT key, revision, state, attempt FROM {table} \
                 WHERE order_id = $1 ORDER BY attempt DESC, key DESC LIMIT 1"
            ),
        }
    }

    /// The table, if absent.
    fn table(&self) -> String {
        let table = &self.table;
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                key             TEXT PRIMARY KEY,
                revision        BIGINT NOT NULL,
                in_flight_since BIGINT,
                state           TEXT NOT NULL,
                updated_at      BIGINT NOT NULL,
                order_id        TEXT,
                attempt         BIGINT
            );"
        )
    }

    /// A table made before the lookup by order: the two columns it lacks.
    fn add_order_columns(&self) -> String {
        let table = &self.table;
        format!(
            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS order_id TEXT, \
             ADD COLUMN IF NOT EXISTS attempt BIGINT;"
        )
    }

    /// The indexes, made after the columns exist.
    fn indexes(&self) -> String {
        let table = &self.table;
        format!(
            "CREATE INDEX IF NOT EXISTS {table}_in_flight
                ON {table} (in_flight_since) WHERE in_flight_since IS NOT NULL;
            CREATE INDEX IF NOT EXISTS {table}_order ON {table} (order_id, attempt);"
        )
    }
}

/// Any client error as [`StoreError::Backend`].
fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::backend(e)
}

impl PgStore {
    /// The table used unless [`with_table`](Self::with_table) names another.
    pub const DEFAULT_TABLE: &'static str = "direct_otp_records";

    /// The longest table name [`with_table`](Self::with_table) takes (PostgreSQL cuts
    /// identifiers at 63 bytes, and the index name adds 10).
    pub const MAX_TABLE_LEN: usize = 48;

    /// Connects to the database at `url` (`postgres://user:password@host:port/db?...`, or
    /// `host=... user=...`) without TLS, through a pool of up to 16 connections that waits
    /// at most 10 s to open one or for a free one, and checks that one connection opens.
    ///
    /// For TLS, another pool size or other timeouts, build a `deadpool_postgres::Pool`
    /// yourself and use [`from_pool`](Self::from_pool). Call [`migrate`](Self::migrate)
    /// before the first use of a new database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        // tokio-postgres's parse errors never repeat the URL (which may hold a password).
        let config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Config {
            reason: format!("the PostgreSQL URL does not parse: {e}"),
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(POOL_TIMEOUT))
            .wait_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Config {
                reason: format!("the connection pool cannot be built: {e}"),
            })?;
        drop(pool.get().await.map_err(backend)?);
        Ok(Self::from_pool(pool))
    }

    /// A store over a pool you built (TLS, size, timeouts, recycling are yours), using
    /// [`DEFAULT_TABLE`](Self::DEFAULT_TABLE).
    pub fn from_pool(pool: Pool) -> Self {
        PgStore {
            pool,
            sql: Arc::new(Sql::new(Self::DEFAULT_TABLE)),
        }
    }

    /// The same store using the table `table`: a plain lowercase SQL name (`a`-`z`, `0`-`9`,
    /// `_`, not starting with a digit, at most [`MAX_TABLE_LEN`](Self::MAX_TABLE_LEN)
    /// bytes), refused as [`StoreError::Config`] otherwise. To use another schema, set
    /// `search_path` in the connection options (`?options=-csearch_path%3Dpayments`).
    pub fn with_table(self, table: &str) -> Result<Self, StoreError> {
        let plain = !table.is_empty()
            && table.len() <= Self::MAX_TABLE_LEN
            && !table.starts_with(|c: char| c.is_ascii_digit())
            && table
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            return Err(StoreError::Config {
                reason: format!(
                    "the table name {:?} is not a plain lowercase SQL name of at most {} bytes",
                    table.chars().take(64).collect::<String>(),
                    Self::MAX_TABLE_LEN
                ),
            });
        }
        Ok(PgStore {
            pool: self.pool,
            sql: Arc::new(Sql::new(table)),
        })
    }

    /// The table the records are kept in.
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    /// The pool, for your own statements (reports, inspecting a corrupt row).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates the table and its indexes if they do not exist (`CREATE ... IF NOT EXISTS`),
    /// in one transaction under an advisory lock, so several servers may call it at once on
    /// every start. A table made by an earlier version, without the `order_id` and
    /// `attempt` columns of the lookup by order ([`AsyncStore::latest_for_order`]), gets
    /// them and their index; rows without them are filled from their JSON (a payment's
    /// `order_id` and `attempt`; a row that is not JSON or lacks them keeps `NULL`s). It
    /// never drops anything.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        /// The advisory lock's number: "dotp" in ASCII, any fixed value would do.
        const LOCK: i64 = 0x646f_7470;
        let mut client = self.pool.get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute(&self.sql.table()).await.map_err(backend)?;
        let has_order = tx
            .query_opt(
                "SELECT 1 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 AND column_name = 'order_id'",
                &[&self.sql.table],
            )
            .await
            .map_err(backend)?
            .is_some();
        if !has_order {
            tx.batch_execute(&self.sql.add_order_columns())
                .await
                .map_err(backend)?;
        }
        tx.batch_execute(&self.sql.indexes())
            .await
            .map_err(backend)?;
        // Rows without an order: a table just given the columns, or rows an older version
        // inserted since (a rolling upgrade); the index finds them.
        {
            let table = &self.sql.table;
            let rows = tx
                .query(
                    &format!("SELECT key, state FROM {table} WHERE order_id IS NULL"),
                    &[],
                )
                .await
                .map_err(backend)?;
            let fill = tx
                .prepare(&format!(
                    "UPDATE {table} SET order_id = $2, attempt = $3 WHERE key = $1"
                ))
                .await
                .map_err(backend)?;
            for row in rows {
                let key: &str = row.try_get(0).map_err(backend)?;
                let state: &str = row.try_get(1).map_err(backend)?;
                if let Some((order_id, attempt)) = order_attempt_of(state) {
                    tx.execute(&fill, &[&key, &order_id, &attempt])
                        .await
                        .map_err(backend)?;
                }
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn load_row<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        check_key(key)?;
        let client = self.pool.get().await.map_err(backend)?;
        let stmt = client
            .prepare_cached(&self.sql.load)
            .await
            .map_err(backend)?;
        let Some(row) = client.query_opt(&stmt, &[&key]).await.map_err(backend)? else {
            return Ok(None);
        };
        drop(client);
        let revision: i64 = row.try_get(0).map_err(backend)?;
        let state: &str = row.try_get(1).map_err(backend)?;
        decode(key, revision, state).map(Some)
    }

    async fn found_revision(
        &self,
        client: &deadpool_postgres::Object,
        key: &str,
    ) -> Result<Option<u64>, StoreError> {
        let stmt = client
            .prepare_cached(&self.sql.revision)
            .await
            .map_err(backend)?;
        let row = client.query_opt(&stmt, &[&key]).await.map_err(backend)?;
        row.map(|row| row.try_get::<_, i64>(0))
            .transpose()
            .map_err(backend)
            .map(|r| r.map(|r| u64::try_from(r).unwrap_or(0)))
    }

    async fn insert_row(&self, row: Row) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(backend)?;
        let stmt = client
            .prepare_cached(&self.sql.insert)
            .await
            .map_err(backend)?;
        let changed = client
            .execute(
                &stmt,
                &[
                    &row.key,
                    &row.revision,
                    &row.in_flight_since,
                    &row.state,
                    &now_ms(),
                    &row.order_id,
                    &row.attempt,
                ],
            )
            .await
            .map_err(backend)?;
        if changed == 1 {
            return Ok(());
        }
        let found = self.found_revision(&client, &row.key).await?;
        Err(StoreError::Conflict {
            key: row.key,
            found,
        })
    }

    async fn replace_row(&self, expected: i64, row: Row) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(backend)?;
        let stmt = client
            .prepare_cached(&self.sql.replace)
            .await
            .map_err(backend)?;
        let changed = client
            .execute(
                &stmt,
                &[
                    &row.key,
                    &expected,
                    &row.revision,
                    &row.in_flight_since,
                    &row.state,
                    &now_ms(),
                ],
            )
            .await
            .map_err(backend)?;
        if changed == 1 {
            return Ok(());
        }
        match self.found_revision(&client, &row.key).await? {
            None => Err(StoreError::NotFound { key: row.key }),
            found => Err(StoreError::Conflict {
                key: row.key,
                found,
            }),
        }
    }

    async fn list_in_flight(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await.map_err(backend)?;
        let stmt = client
            .prepare_cached(&self.sql.in_flight)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&unix_ms(cutoff), &sql_limit(limit)])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| row.try_get::<_, String>(0).map_err(backend))
            .collect()
    }
}

impl PgStore {
    async fn latest_row<R: Record>(&self, order_id: &str) -> Result<Option<R>, StoreError> {
        check_key(order_id)?;
        let client = self.pool.get().await.map_err(backend)?;
        let stmt = client
            .prepare_cached(&self.sql.latest)
            .await
            .map_err(backend)?;
        let Some(row) = client
            .query_opt(&stmt, &[&order_id])
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        drop(client);
        let key: &str = row.try_get(0).map_err(backend)?;
        let revision: i64 = row.try_get(1).map_err(backend)?;
        let state: &str = row.try_get(2).map_err(backend)?;
        let attempt: Option<i64> = row.try_get(3).map_err(backend)?;
        decode_in_order(key, revision, state, order_id, attempt).map(Some)
    }
}

impl<R: Record> AsyncStore<R> for PgStore {
    fn load(&self, key: &str) -> impl Future<Output = Result<Option<R>, StoreError>> + Send {
        self.load_row(key)
    }

    fn insert(&self, record: &R) -> impl Future<Output = Result<(), StoreError>> + Send {
        // Encoded before the future, which so never holds the record (it need not be `Sync`).
        let row = encode(record, None);
        async move { self.insert_row(row?).await }
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
            self.replace_row(expected, row).await
        }
    }

    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        self.list_in_flight(cutoff, limit)
    }

    fn latest_for_order(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<R>, StoreError>> + Send {
        self.latest_row(order_id)
    }
}
