//! The informer's work queue, in the manner of client-go's: a set of dirty container IDs.
//! Pushing never blocks and never drops: an ID already waiting is not queued twice, and an
//! ID being processed is queued again once its worker is done, so one container is never
//! inspected by two workers at once and the last inspect always reflects the last event.
//! Memory is bounded by the number of distinct containers, not by the event rate; this is
//! how the event reader stays ahead of the engine's 100 ms drop deadline.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, watch};

#[derive(Default)]
pub(crate) struct WorkQueue {
    state: Mutex<QueueState>,
    wake: Notify,
}

#[derive(Default)]
struct QueueState {
    order: VecDeque<String>,
    /// IDs waiting to be processed, with the trackers to signal when they are.
    dirty: HashMap<String, Vec<Arc<Tracker>>>,
    processing: HashSet<String>,
}

/// Counts down the IDs of one re-list, so the informer knows when the picture is complete.
pub(crate) struct Tracker {
    remaining: watch::Sender<usize>,
}

impl Tracker {
    pub(crate) fn new(n: usize) -> Arc<Tracker> {
        Arc::new(Tracker {
            remaining: watch::Sender::new(n),
        })
    }

    fn done(&self) {
        self.remaining.send_modify(|n| *n = n.saturating_sub(1));
    }

    pub(crate) async fn wait(&self) {
        let mut rx = self.remaining.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// One unit of work handed to a worker; `finish` must be called when it is processed.
pub(crate) struct Item {
    pub id: String,
    trackers: Vec<Arc<Tracker>>,
}

impl WorkQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, id: &str, tracker: Option<Arc<Tracker>>) {
        let mut s = self.lock();
        let new = !s.dirty.contains_key(id);
        let entry = s.dirty.entry(id.to_string()).or_default();
        entry.extend(tracker);
        if new && !s.processing.contains(id) {
            s.order.push_back(id.to_string());
            drop(s);
            self.wake.notify_one();
        }
    }

    pub(crate) async fn pop(&self) -> Item {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut s = self.lock();
                if let Some(id) = s.order.pop_front() {
                    let trackers = s.dirty.remove(&id).unwrap_or_default();
                    s.processing.insert(id.clone());
                    let more = !s.order.is_empty();
                    drop(s);
                    if more {
                        self.wake.notify_one();
                    }
                    return Item { id, trackers };
                }
            }
            woken.await;
        }
    }

    pub(crate) fn finish(&self, item: Item) {
        {
            let mut s = self.lock();
            s.processing.remove(&item.id);
            if s.dirty.contains_key(&item.id) {
                s.order.push_back(item.id.clone());
                drop(s);
                self.wake.notify_one();
            }
        }
        for t in item.trackers {
            t.done();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().dirty.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_waiting_ids_and_requeues_ids_dirtied_while_processing() {
        let q = WorkQueue::default();
        q.push("a", None);
        q.push("b", None);
        q.push("a", None);
        assert_eq!(q.len(), 2);
        let a = q.pop().await;
        assert_eq!(a.id, "a");
        q.push("a", None); // event while "a" is being processed
        let b = q.pop().await;
        assert_eq!(b.id, "b", "a must not be handed to a second worker");
        q.finish(a);
        let a2 = q.pop().await;
        assert_eq!(a2.id, "a");
        q.finish(b);
        q.finish(a2);
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn trackers_complete_when_their_ids_are_processed() {
        let q = WorkQueue::default();
        let t = Tracker::new(2);
        q.push("x", Some(t.clone()));
        q.push("y", Some(t.clone()));
        let x = q.pop().await;
        q.finish(x);
        assert_eq!(*t.remaining.borrow(), 1);
        let y = q.pop().await;
        q.finish(y);
        tokio::time::timeout(std::time::Duration::from_secs(1), t.wait())
            .await
            .unwrap();
    }
}
