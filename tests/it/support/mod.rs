//! What the tests share: brokers served in-process or as the real binary (and what it logs),
//! callers with credentials, crash schedules, a local Flink cluster, keys and certificates, and
//! PostgreSQL.

pub(crate) use flinkbroker_testkit::standin as sql_gateway_standin;

pub mod broker;
pub mod broker_binary;
pub mod callers;
pub mod counting_jobmanager;
pub mod crash;
pub mod flink_cluster;
pub mod jwt;
pub mod pki;
pub mod postgres;

/// The PostgreSQL support under the name the crash tests use.
pub(crate) use postgres as postgres_support;

/// A local address nothing listens on, held for as long as the returned socket lives: the
/// socket is bound but never listens, so connecting is refused at once, and no other test's
/// listener can be given the port meanwhile (as it could a port bound and let go).
pub(crate) fn refused_address() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let address = socket.local_addr().expect("address");
    (socket, address)
}
