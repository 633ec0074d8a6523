//! Helpers shared by the workspace's tests: child processes that are killed when
//! dropped, scratch folders, free ports, waits with a deadline, plain HTTP GETs,
//! Mosquitto and its command line clients, throw-away TLS certificates,
//! pseudo-terminals and a fake instrument answering queries on one, per-thread
//! CPU time, file modes and a fake LoRa packet forwarder.
//!
//! A dev-dependency only: nothing here is built into a shipped binary.

pub mod cpu;
pub mod files;
pub mod gwmp;
pub mod http;
pub mod instrument;
pub mod mosquitto;
pub mod mosquitto_tls;
pub mod net;
pub mod pki;
pub mod process;
pub mod pty;
pub mod scratch;
pub mod wait;

pub use net::{free_port, wait_for_port};
pub use process::Proc;
pub use scratch::Scratch;
pub use wait::{wait_for, wait_until};
