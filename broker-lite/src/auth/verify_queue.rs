//! The password-check slots (one per core) and two queues in front of them: a
//! freed slot goes to the longest-waiting `Clean` login, and to a `Suspect`
//! one only when no clean one waits. Within a lane, first come first served.
//! With two slots or more, suspects hold all but one at most: a clean login
//! then waits for no suspect's check, only for clean ones.
//!
//! Waiting is bounded by the caller (a deadline around `acquire`); a waiter
//! that gives up leaves a closed entry behind, skipped when its turn comes and
//! swept when another one queues.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::throttle::Lane;

/// Slots for password checks, handed out by lane.
#[derive(Debug)]
pub(crate) struct VerifyQueue {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Slots nobody holds. Only above 0 while no clean login waits.
    free: usize,
    /// Slots held by suspects, and the most they may hold.
    suspects: usize,
    max_suspects: usize,
    /// Waiting logins, by `Lane as usize`.
    waiting: [VecDeque<oneshot::Sender<Slot>>; 2],
}

/// The right to run one password check; the slot is passed on when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    queue: Option<Arc<VerifyQueue>>,
    lane: Lane,
}

impl VerifyQueue {
    pub(crate) fn new(slots: usize) -> Arc<VerifyQueue> {
        let slots = slots.max(1);
        Arc::new(VerifyQueue {
            inner: Mutex::new(Inner {
                free: slots,
                suspects: 0,
                max_suspects: (slots - 1).max(1),
                waiting: [VecDeque::new(), VecDeque::new()],
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait for a slot in `lane`.
    pub(crate) async fn acquire(self: &Arc<Self>, lane: Lane) -> Slot {
        let turn = {
            let mut inner = self.lock();
            if inner.free > 0 && (lane == Lane::Clean || inner.suspects < inner.max_suspects) {
                inner.free -= 1;
                if lane == Lane::Suspect {
                    inner.suspects += 1;
                }
                return Slot {
                    queue: Some(self.clone()),
                    lane,
                };
            }
            let (tx, rx) = oneshot::channel();
            let queue = &mut inner.waiting[lane as usize];
            queue.retain(|w| !w.is_closed());
            queue.push_back(tx);
            rx
        };
        match turn.await {
            Ok(slot) => slot,
            // The sender is only dropped unsent together with the queue, which
            // `self` keeps alive: not reached.
            Err(_) => Slot { queue: None, lane },
        }
    }

    /// Logins waiting now, by lane (closed entries included).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> [usize; 2] {
        let inner = self.lock();
        [inner.waiting[0].len(), inner.waiting[1].len()]
    }

    /// Pass a slot freed by `lane` on: to the first live clean waiter, else
    /// to the first suspect if suspects may hold one more.
    fn release(self: &Arc<Self>, freed: Lane) {
        let mut inner = self.lock();
        if freed == Lane::Suspect {
            inner.suspects -= 1;
        }
        loop {
            let lane = if !inner.waiting[Lane::Clean as usize].is_empty() {
                Lane::Clean
            } else if !inner.waiting[Lane::Suspect as usize].is_empty()
                && inner.suspects < inner.max_suspects
            {
                Lane::Suspect
            } else {
                inner.free += 1;
                return;
            };
            let Some(waiter) = inner.waiting[lane as usize].pop_front() else {
                continue;
            };
            let slot = Slot {
                queue: Some(self.clone()),
                lane,
            };
            if lane == Lane::Suspect {
                inner.suspects += 1;
            }
            match waiter.send(slot) {
                Ok(()) => return,
                // That waiter gave up: disarm the slot (dropping it here would
                // release again under the lock) and try the next.
                Err(mut slot) => {
                    slot.queue = None;
                    if lane == Lane::Suspect {
                        inner.suspects -= 1;
                    }
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.release(self.lane);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls `fut` once: whether it is ready without waiting.
    async fn ready_now<F: std::future::Future>(fut: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::ZERO, fut).await.ok()
    }

    #[tokio::test]
    async fn free_slots_are_taken_at_once_and_given_back_on_drop() {
        let q = VerifyQueue::new(2);
        let a = ready_now(q.acquire(Lane::Suspect)).await.expect("slot 1");
        let _b = ready_now(q.acquire(Lane::Clean)).await.expect("slot 2");
        assert!(ready_now(q.acquire(Lane::Clean)).await.is_none());
        drop(a);
        assert!(ready_now(q.acquire(Lane::Suspect)).await.is_some());
    }

    #[tokio::test]
    async fn a_clean_login_goes_before_suspects_that_came_first() {
        let q = VerifyQueue::new(1);
        let held = q.acquire(Lane::Clean).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, lane) in [
            ("s1", Lane::Suspect),
            ("s2", Lane::Suspect),
            ("c1", Lane::Clean),
        ] {
            let (q2, order) = (q.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = q2.acquire(lane).await;
                order.lock().unwrap().push(name);
            }));
            // Queued in this order before the next one.
            while q.waiting().iter().sum::<usize>() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("every waiter is served")
                .unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["c1", "s1", "s2"]);
    }

    #[tokio::test]
    async fn suspects_leave_one_of_two_slots_to_clean_logins() {
        let q = VerifyQueue::new(2);
        let s1 = ready_now(q.acquire(Lane::Suspect)).await.expect("a slot");
        // A second suspect queues although a slot is free...
        let q2 = q.clone();
        let suspect = tokio::spawn(async move { q2.acquire(Lane::Suspect).await });
        while q.waiting()[1] == 0 {
            tokio::task::yield_now().await;
        }
        // ...which a clean login gets at once, and gets again after giving it back.
        let c1 = ready_now(q.acquire(Lane::Clean))
            .await
            .expect("the kept slot");
        drop(c1);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!suspect.is_finished(), "a suspect took the kept slot");
        assert!(ready_now(q.acquire(Lane::Clean)).await.is_some());
        drop(s1);
        let got = tokio::time::timeout(Duration::from_secs(5), suspect).await;
        assert!(got.is_ok(), "the suspect gets the suspects' slot");
    }

    #[tokio::test]
    async fn one_slot_is_shared_by_both_lanes() {
        let q = VerifyQueue::new(1);
        let s = ready_now(q.acquire(Lane::Suspect)).await.expect("the slot");
        drop(s);
        assert!(ready_now(q.acquire(Lane::Suspect)).await.is_some());
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_does_not_keep_the_slot() {
        let q = VerifyQueue::new(1);
        let held = q.acquire(Lane::Clean).await;
        // Gives up: its entry stays behind, closed.
        assert!(
            tokio::time::timeout(Duration::from_millis(1), q.acquire(Lane::Clean))
                .await
                .is_err()
        );
        let q2 = q.clone();
        let next = tokio::spawn(async move { q2.acquire(Lane::Suspect).await });
        while q.waiting()[1] == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let slot = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the live waiter is served")
            .unwrap();
        drop(slot);
        // All back: one free slot, nobody queued.
        assert!(ready_now(q.acquire(Lane::Suspect)).await.is_some());
        assert_eq!(q.waiting(), [0, 0]);
    }

    #[tokio::test]
    async fn a_slot_sent_to_a_waiter_that_then_gives_up_comes_back() {
        let q = VerifyQueue::new(1);
        let held = q.acquire(Lane::Clean).await;
        let q2 = q.clone();
        let waiter = tokio::spawn(async move {
            // Never polled again after the slot is sent: aborted below.
            let _slot = q2.acquire(Lane::Clean).await;
            std::future::pending::<()>().await;
        });
        while q.waiting()[0] == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        waiter.abort();
        let _ = waiter.await;
        let again = tokio::time::timeout(Duration::from_secs(5), q.acquire(Lane::Suspect)).await;
        assert!(again.is_ok(), "the slot was lost");
    }
}
