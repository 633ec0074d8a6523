//! End-to-end test helpers: the `mqgate` binary, child processes that are killed
//! when dropped, Mosquitto and mosquitto_sub, pseudo-terminals and scratch folders.

pub mod captures;
pub mod feeder;
pub mod http;
pub mod mqgate;
pub mod mqtt;
pub mod process;
pub mod relay;
pub mod scratch;
pub mod seqsub;
pub mod tls;
pub mod upstream;
pub mod webdriver;
