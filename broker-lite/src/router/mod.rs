//! The router: one task that owns every session, the subscription tree and the
//! retained messages. Connections and the in-process handle talk to it through
//! `Event`s on one bounded channel; it answers by writing into outboxes.

mod dispatch;
mod event;

pub(crate) use dispatch::Router;
pub(crate) use event::Event;

use tokio::sync::mpsc;

/// Events taken per wake-up; a batch is processed before any connection is woken.
const BATCH: usize = 256;

/// Run until every sender is gone or a `Shutdown` event arrives.
pub(crate) async fn run(mut router: Router, mut rx: mpsc::Receiver<Event>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            break;
        }
        let mut stop = false;
        for event in batch.drain(..) {
            if router.handle(event) {
                stop = true;
                break;
            }
        }
        router.wake_dirty();
        if stop {
            break;
        }
    }
    router.close_all();
}
