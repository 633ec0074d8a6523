//! The way down: a source's transport takes transmissions (bytes, already encoded
//! by a command's script) one at a time and says how each went. Sources know
//! nothing of MQTT here either: the command path above them asks, they answer.

use tokio::sync::{mpsc, oneshot, watch};

use crate::message::Part;

/// One command's bytes for the device, and where to say how it went.
#[derive(Debug)]
pub struct TxRequest {
    pub parts: Vec<Part>,
    pub reply: oneshot::Sender<TxOutcome>,
}

/// How a transmission went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    /// The transport confirmed it (written and drained, `radio_tx_ok`, TX_ACK...).
    Sent,
    /// It was tried and did not go out; the text says why, naming the device.
    Failed(String),
    /// The transport refused it by rule before trying (a radio's duty-cycle
    /// budget); the text starts with the rule's name, e.g. `duty_cycle: ...`.
    Rejected(String),
    /// The device is not there (unplugged, not yet open): nothing was tried, and
    /// the command may wait for it.
    NotReady(String),
}

/// The command path's end: send transmissions, and see whether the device is there.
#[derive(Debug, Clone)]
pub struct CommandLink {
    pub tx: mpsc::Sender<TxRequest>,
    pub ready: watch::Receiver<bool>,
}

/// The transport's end, held by the source's task.
#[derive(Debug)]
pub struct DeviceSide {
    rx: mpsc::Receiver<TxRequest>,
    ready: watch::Sender<bool>,
}

/// A link between a source's command path and its transport. One request is in
/// flight at a time: the command path waits for each answer before the next.
pub fn link() -> (CommandLink, DeviceSide) {
    let (tx, rx) = mpsc::channel(1);
    let (ready_tx, ready) = watch::channel(false);
    (
        CommandLink { tx, ready },
        DeviceSide {
            rx,
            ready: ready_tx,
        },
    )
}

impl DeviceSide {
    /// A side no command ever reaches (a source without commands).
    pub fn none() -> DeviceSide {
        link().1
    }

    /// Whether a command path is at the other end.
    pub fn is_linked(&self) -> bool {
        !self.rx.is_closed()
    }

    /// The device can take transmissions now (or no longer).
    pub fn set_ready(&self, ready: bool) {
        self.ready
            .send_if_modified(|r| std::mem::replace(r, ready) != ready);
    }

    /// The next transmission; never resolves once the command path is gone, so
    /// that it can sit in a `select!` beside the reads.
    pub async fn next(&mut self) -> TxRequest {
        match self.rx.recv().await {
            Some(request) => request,
            None => std::future::pending().await,
        }
    }

    /// Answer transmissions with `NotReady(why)` until `wait` finishes, and return
    /// what it returned: a source waiting to reopen its port does not leave the
    /// command path hanging.
    pub async fn refuse_during<T>(
        &mut self,
        why: &str,
        wait: impl std::future::Future<Output = T>,
    ) -> T {
        self.set_ready(false);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                out = &mut wait => return out,
                request = self.next() => {
                    let _ = request.reply.send(TxOutcome::NotReady(why.to_string()));
                }
            }
        }
    }
}
