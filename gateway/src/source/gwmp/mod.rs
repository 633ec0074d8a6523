//! The Semtech UDP packet forwarder protocol (GWMP, versions 1 and 2), as LoRa
//! gateways speak it to a network server: PUSH_DATA carries received packets
//! (`rxpk`) and gateway status (`stat`) as JSON and is answered with PUSH_ACK;
//! PULL_DATA keeps the downlink path open and is answered with PULL_ACK.
//!
//! Each `rxpk` becomes a frame whose bytes are the radio payload and whose meta
//! holds rssi, snr, frequency, data rate, timestamp, CRC status and the gateway
//! EUI. Packets whose CRC failed are counted as bad, not mapped. Each `stat`
//! becomes a frame with meta `gwmp: stat` whose bytes are the status as JSON.
//!
//! Commands go down as PULL_RESP (`txpk`) to the address of the chosen
//! gateway's latest PULL_DATA; a version 2 gateway answers with TX_ACK. Each
//! gateway's EU868 duty-cycle budget is charged before anything is sent.
//!
//! `codec` (bytes), `txpk` (options to JSON) and `gateways` (who is there) are
//! plain functions and state; `run` is the socket.

mod abp;
mod codec;
mod gateways;
mod run;
mod txpk;

pub use abp::{Abp, AbpSnapshot, AbpStats};
pub use codec::{
    ack, frames, lenient_base64, parse, parse_eui, pull_resp, tx_ack_report, Datagram, GwmpError,
    Kind, Received, TxAckReport,
};
pub use gateways::{Gateways, Target, MAX_GATEWAYS};
pub use run::{bind, run, Out, Settings};
pub use txpk::{build as txpk, Defaults, Txpk, MAX_PAYLOAD};

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod downlink_tests;
#[cfg(test)]
mod txpk_tests;
