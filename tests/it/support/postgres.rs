//! A fresh PostgreSQL database per test, dropped with its connections afterwards, on the server
//! `flinkbroker_testkit::postgres` chooses: the one `FLINKBROKER_TEST_POSTGRES_URL` names, else
//! `postgres://postgres@127.0.0.1:5432/test` when something answers there, else one the test
//! process starts from PostgreSQL's binaries and stops when it exits.
// The benches include this file too, and use less of it.
#![allow(unused_imports)]

pub(crate) use flinkbroker_testkit::postgres::{PostgresDatabase, with_database};
