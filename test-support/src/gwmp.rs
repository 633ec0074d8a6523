//! A fake Semtech packet forwarder on 127.0.0.1: it sends PULL_DATA and
//! PUSH_DATA as a LoRa gateway does, waits for their acknowledgements, receives
//! PULL_RESP and answers TX_ACK (or stays silent) as the test says.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

const PUSH_DATA: u8 = 0x00;
const PUSH_ACK: u8 = 0x01;
const PULL_DATA: u8 = 0x02;
const PULL_RESP: u8 = 0x03;
const PULL_ACK: u8 = 0x04;
const TX_ACK: u8 = 0x05;

/// A PULL_RESP as the forwarder received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResp {
    pub version: u8,
    pub token: u16,
    /// The JSON body, `{"txpk": {...}}`.
    pub json: String,
}

/// One fake gateway with its own socket (its own address, as a real one behind
/// its NAT).
#[derive(Debug)]
pub struct Forwarder {
    socket: UdpSocket,
    server: SocketAddr,
    eui: [u8; 8],
    version: u8,
    token: u16,
    /// Datagrams received while waiting for something else, oldest first.
    unclaimed: VecDeque<Vec<u8>>,
}

impl Forwarder {
    /// A gateway speaking protocol `version` (1 or 2) to the server at `server`.
    pub async fn new(server: SocketAddr, eui: [u8; 8], version: u8) -> Forwarder {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a UDP socket on 127.0.0.1");
        Forwarder {
            socket,
            server,
            eui,
            version,
            token: 0x1000,
            unclaimed: VecDeque::new(),
        }
    }

    /// The EUI as lower-case hex, as mqgate writes it.
    pub fn eui_hex(&self) -> String {
        self.eui.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Where the gateway sends from.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("a bound socket")
    }

    fn header(&mut self, identifier: u8) -> (u16, Vec<u8>) {
        self.token = self.token.wrapping_add(1);
        let [hi, lo] = self.token.to_be_bytes();
        let mut d = vec![self.version, hi, lo, identifier];
        d.extend_from_slice(&self.eui);
        (self.token, d)
    }

    /// Sends PULL_DATA and waits for its PULL_ACK (same version and token).
    pub async fn pull_data(&mut self, timeout: Duration) {
        let (token, d) = self.header(PULL_DATA);
        self.send(&d).await;
        let want = self.ack(token, PULL_ACK);
        self.take("PULL_ACK", timeout, |got| got == want).await;
    }

    /// Sends PUSH_DATA with `json` (e.g. `{"rxpk":[...]}`) and waits for PUSH_ACK.
    pub async fn push_data(&mut self, json: &str, timeout: Duration) {
        let (token, mut d) = self.header(PUSH_DATA);
        d.extend_from_slice(json.as_bytes());
        self.send(&d).await;
        let want = self.ack(token, PUSH_ACK);
        self.take("PUSH_ACK", timeout, |got| got == want).await;
    }

    /// The next PULL_RESP; panics if none comes within `timeout`.
    pub async fn pull_resp(&mut self, timeout: Duration) -> PullResp {
        let d = self
            .take("PULL_RESP", timeout, |got| {
                got.len() >= 4 && got[3] == PULL_RESP
            })
            .await;
        PullResp {
            version: d[0],
            token: u16::from_be_bytes([d[1], d[2]]),
            json: String::from_utf8(d[4..].to_vec()).expect("a PULL_RESP body is UTF-8"),
        }
    }

    /// Answers a PULL_RESP with TX_ACK: no body, or `body` (e.g.
    /// `{"txpk_ack":{"error":"TOO_LATE"}}`).
    pub async fn tx_ack(&self, token: u16, body: Option<&str>) {
        let [hi, lo] = token.to_be_bytes();
        let mut d = vec![2, hi, lo, TX_ACK];
        d.extend_from_slice(&self.eui);
        if let Some(body) = body {
            d.extend_from_slice(body.as_bytes());
        }
        self.send(&d).await;
    }

    fn ack(&self, token: u16, identifier: u8) -> Vec<u8> {
        let [hi, lo] = token.to_be_bytes();
        vec![self.version, hi, lo, identifier]
    }

    async fn send(&self, d: &[u8]) {
        self.socket
            .send_to(d, self.server)
            .await
            .expect("send a datagram to the server");
    }

    /// The first datagram (kept or new) that `wanted` accepts; the others are
    /// kept for later.
    async fn take(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Vec<u8> {
        if let Some(i) = self.unclaimed.iter().position(|d| wanted(d)) {
            return self.unclaimed.remove(i).expect("just found");
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = match tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await {
                Ok(r) => r.expect("receive a datagram"),
                Err(_) => panic!(
                    "gateway {}: no {what} within {timeout:?} (kept meanwhile: {:?})",
                    self.eui_hex(),
                    self.unclaimed
                ),
            };
            let d = buf[..n].to_vec();
            if wanted(&d) {
                return d;
            }
            self.unclaimed.push_back(d);
        }
    }
}
