//! A fresh PostgreSQL database per test, on the server of `FLINKBROKER_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), dropped with its connections afterwards.
#![allow(dead_code)]

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// The variable naming the PostgreSQL server the tests use.
pub(crate) const POSTGRES_VAR: &str = "FLINKBROKER_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh PostgreSQL database, dropped (with its connections) when this value is.
pub(crate) struct PostgresDatabase {
    admin_url: String,
    name: String,
    /// Where the database is.
    pub url: String,
}

impl PostgresDatabase {
    /// Creates a database named `{prefix}_{random}`.
    pub(crate) async fn create(prefix: &str) -> PostgresDatabase {
        let admin_url =
            std::env::var(POSTGRES_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_connection(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL must be reachable at {admin_url} for these tests: {e}")
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create the test database");
        admin.close().await.expect("close the admin connection");
        let url = with_database(&admin_url, &name);
        PostgresDatabase {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside the test's runtime (or while unwinding): use a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(admin) = admin_connection(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn admin_connection(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Replaces the database name of a PostgreSQL URL.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a url with a scheme");
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{name}{query}")
}
