//! End-to-end tests: the real `crm-ledger` binary over real sockets.
//!
//! Run with `cargo test -p crm-ledger --test e2e`.

mod support;
mod verify;

mod analysts;
mod auth;
mod bad_input;
mod bench;
mod corruption;
mod crash;
mod disk_full;
mod kafka;
mod kafka_faults;
mod process;
mod publish_and_query;
mod shutdown_and_limits;
