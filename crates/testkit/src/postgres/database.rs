//! A fresh PostgreSQL database per test, on the server of [`test_server`], dropped with its
//! connections afterwards.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use super::test_server;

/// A fresh PostgreSQL database, dropped (with its connections) when this value is.
#[derive(Debug)]
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
    /// Where the database is.
    pub url: String,
}

impl PostgresDatabase {
    /// Creates a database named `{prefix}_{random}` on the tests' server.
    ///
    /// Panics, with one line saying what is missing, when there is no server.
    pub async fn create(prefix: &str) -> PostgresDatabase {
        let server = match tokio::task::spawn_blocking(test_server).await {
            Ok(Ok(server)) => server,
            Ok(Err(error)) => panic!("{error}"),
            Err(error) => panic!("choosing the PostgreSQL server failed: {error}"),
        };
        let admin_url = server.url().to_owned();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_connection(&admin_url).await.unwrap_or_else(|error| {
            panic!(
                "cannot connect to PostgreSQL at {admin_url} ({}): {error}",
                server.origin()
            )
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
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
pub fn with_database(url: &str, name: &str) -> String {
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
