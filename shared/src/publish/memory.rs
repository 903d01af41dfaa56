//! The in-memory bus: a bounded queue, used by the local gateway and tests.

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{BusEntry, EntryFailure, EventPublisher, MAX_ENTRIES_PER_CALL, PublishError};

/// Publishes into a bounded in-process queue. A call is all or nothing:
/// when the queue cannot take every entry, none is queued and the call fails
/// as [`PublishError::Unavailable`], which is the local gateway's
/// back-pressure.
#[derive(Debug, Clone)]
pub struct MemoryPublisher {
    queue: mpsc::Sender<BusEntry>,
}

impl MemoryPublisher {
    /// A publisher and the receiving end of its queue, which holds
    /// `capacity` entries (at least one call's worth).
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<BusEntry>) {
        let (queue, rx) = mpsc::channel(capacity.max(MAX_ENTRIES_PER_CALL));
        (Self { queue }, rx)
    }

    /// The queue's sending side, for the local gateway: it reserves room
    /// for events waiting to be redelivered (so they count against the
    /// bound) and reads the queue's depth.
    pub fn sender(&self) -> &mpsc::Sender<BusEntry> {
        &self.queue
    }
}

impl EventPublisher for MemoryPublisher {
    async fn put_events(
        &self,
        entries: &[BusEntry],
    ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
        match self.queue.try_reserve_many(entries.len()) {
            Ok(permits) => {
                for (permit, entry) in permits.zip(entries) {
                    permit.send(entry.clone());
                }
                Ok(vec![Ok(()); entries.len()])
            }
            Err(TrySendError::Full(())) => Err(PublishError::Unavailable(
                "the local queue is full".to_owned(),
            )),
            Err(TrySendError::Closed(())) => Err(PublishError::Refused(
                "the local queue is closed".to_owned(),
            )),
        }
    }
}
