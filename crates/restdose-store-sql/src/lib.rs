//! The restdose `Store` on PostgreSQL and on SQLite, each statement written once.
//!
//! `SqlStore<Db>` is one type for both databases (`PgStore`, `SqliteStore`). The area modules
//! (`registrants`, `portal`, `matcher`, `lifecycle`, `statistics`) write every statement once
//! with `$N` placeholders (sqlx's SQLite driver binds `$N` too) and are compiled once per
//! database by [`for_both_databases!`]. Values the databases store differently (times, days)
//! are bound and read through `encode`. What truly differs lives in the two dialect modules:
//! connecting, error codes, write transactions (`BEGIN IMMEDIATE` on SQLite), bulk inserts
//! (PostgreSQL's arrays), leases (`FOR UPDATE SKIP LOCKED`) and the candidate query.
//!
//! Runtime-checked queries (`sqlx::query` / `query_as` with `FromRow` rows) rather than the
//! `query!` macros, so the crate builds without a database or offline query data. Migrations
//! from `migrations/postgres` and `migrations/sqlite` are embedded at build time.

use restdose_store::{StoreError, StoreResult};

mod encode;
mod lifecycle;
mod matcher;
mod portal;
mod postgres;
mod registrants;
mod sqlite;
mod statistics;

pub use sqlx::{Postgres, Sqlite};

/// The store on database `Db` (`sqlx::Postgres` or `sqlx::Sqlite`).
#[derive(Debug)]
pub struct SqlStore<Db: sqlx::Database> {
    pool: sqlx::Pool<Db>,
}

impl<Db: sqlx::Database> Clone for SqlStore<Db> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
        }
    }
}

pub type PgStore = SqlStore<Postgres>;
pub type SqliteStore = SqlStore<Sqlite>;

impl<Db: sqlx::Database> SqlStore<Db> {
    pub fn from_pool(pool: sqlx::Pool<Db>) -> Self {
        SqlStore { pool }
    }

    pub fn pool(&self) -> &sqlx::Pool<Db> {
        &self.pool
    }
}

/// Compiles the item that follows once per database. Inside it, `Db` is the database type,
/// `dialect` the module of what differs (`sqlite` or `postgres`) and `db_error` its error
/// mapping. Used as `#[apply(for_both_databases!)]` so that rustfmt still formats the item.
macro_rules! for_both_databases {
    ($($item:tt)*) => {
        const _: () = {
            #[allow(unused_imports)]
            use crate::sqlite::{self as dialect, db_error};
            #[allow(dead_code)]
            type Db = sqlx::Sqlite;
            $($item)*
        };
        const _: () = {
            #[allow(unused_imports)]
            use crate::postgres::{self as dialect, db_error};
            #[allow(dead_code)]
            type Db = sqlx::Postgres;
            $($item)*
        };
    };
}
pub(crate) use for_both_databases;

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::other(what.into())
}

fn count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(format!("negative count {n}")))
}

/// A stored language code as the domain's `Lang`.
fn lang(code: &str) -> StoreResult<restdose_domain::Lang> {
    restdose_domain::Lang::from_code(code)
        .ok_or_else(|| corrupt(format!("unknown language code {code:?}")))
}

fn radius_to_db(radius_km: u16) -> StoreResult<i16> {
    i16::try_from(radius_km).map_err(|_| corrupt(format!("radius {radius_km} km out of range")))
}
