//! Test databases for the store's and the server's test suites (behind the
//! `test-support` feature): a fresh SQLite file or a fresh PostgreSQL
//! database per test, removed afterwards.
//!
//! PostgreSQL is reached at `TRADECORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/test` starts a
//! server when none answers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Store, StoreOptions};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server the tests use, as an admin URL.
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("TRADECORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced by `name` (query kept).
#[must_use]
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The URL to connect to (as `database.url` would be).
    pub url: String,
    name: String,
    dir: PathBuf,
}

impl TestDatabase {
    /// Creates an empty database for `backend` (`sqlite` or `postgres`).
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached: the tests need it.
    pub async fn create(backend: &str, label: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("tc_{label}_{}_{n}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let url = if backend == "sqlite" {
            format!("sqlite:{}", dir.join("tradecore.db").display())
        } else {
            let admin_url = postgres_admin_url();
            let admin = Store::connect(&admin_url, StoreOptions { max_connections: 1, ..StoreOptions::default() })
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is needed for these tests: {e}"));
            admin.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap_or_else(|e| panic!("{e}"));
            admin.close().await;
            with_database(&admin_url, &name)
        };
        Self { backend: backend.to_string(), url, name, dir }
    }

    /// A connected, migrated store on this database.
    ///
    /// # Panics
    /// When the database cannot be opened or migrated.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, StoreOptions::default()).await.unwrap_or_else(|e| panic!("{e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        store
    }

    /// Removes the database (its file, or the PostgreSQL database even with
    /// connections still open).
    pub async fn remove(self) {
        if self.backend == "postgres"
            && let Ok(admin) =
                Store::connect(&postgres_admin_url(), StoreOptions { max_connections: 1, ..StoreOptions::default() })
                    .await
        {
            let _ = admin.execute_admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
            admin.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
