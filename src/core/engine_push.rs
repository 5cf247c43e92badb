//! One pushed batch, from sending to its answers in the store: chained to the batch before it
//! (`despues_de`) and sent again unchained if the hub never saw that one, split in halves when
//! the hub finds it too large, its answers written to the store. The sync loop
//! (`push_then_pull`) keeps two of these in flight.

use std::future::Future;
use std::pin::Pin;

use futures::future::{maybe_done, MaybeDone};
use uuid::Uuid;

use super::{EngineError, SyncEngine, SyncSummary};
use crate::core::model::{rfc3339, OpStatus, Operation};
use crate::core::protocol::{PushRequest, PREDECESSOR_MISSING};
use crate::core::store::Store;
use crate::core::transport::{Transport, TransportError};

impl SyncSummary {
    /// Adds a push's counts (the fields a push sets) to this summary.
    pub(super) fn add(&mut self, push: &SyncSummary) {
        self.pushed += push.pushed;
        self.applied += push.applied;
        self.duplicates += push.duplicates;
        self.deferred += push.deferred;
        self.conflicts += push.conflicts;
        self.rejected += push.rejected;
        self.batches += push.batches;
    }
}

impl<S: Store, T: Transport> SyncEngine<S, T> {
    /// Writes a pushed batch's answers to the store.
    pub(super) async fn settle(&self, settlement: Settlement) -> Result<(), EngineError> {
        if settlement.remove.is_empty() && settlement.update.is_empty() {
            return Ok(());
        }
        Ok(self
            .store
            .settle(&settlement.remove, &settlement.update)
            .await?)
    }

    /// Sends a batch (the first poll of its push issues the request) and returns it in flight.
    pub(super) async fn send<'a>(
        &'a self,
        batch: &'a [Operation],
        after: Option<Uuid>,
    ) -> Flight<'a> {
        let pushing: Pushing<'a> = Box::pin(async move {
            let mut counts = SyncSummary::default();
            let result = self.push_splitting(batch, after, &mut counts).await;
            (result, counts)
        });
        let mut flight = Flight {
            batch,
            chained: after.is_some(),
            answer: maybe_done(pushing),
        };
        let _ = futures::poll!(Pin::new(&mut flight.answer));
        flight
    }

    /// Waits for a batch's answer while the answers before it are written to the store, and
    /// returns what the store must record for it. A chained batch the hub did not apply
    /// because it never saw the batch before it (that one's last operation was refused here
    /// as too large, or the hub was slower than its wait) is sent again, unchained: every
    /// batch before it has been answered by now.
    pub(super) async fn land(
        &self,
        flight: Flight<'_>,
        previous: Settlement,
        summary: &mut SyncSummary,
    ) -> Result<Settlement, EngineError> {
        let (batch, chained) = (flight.batch, flight.chained);
        let ((result, counts), settled) = futures::join!(flight.outcome(), self.settle(previous));
        summary.add(&counts);
        settled?;
        match result {
            Err(EngineError::Transport(TransportError::Http {
                status: 409,
                body: Some(body),
            })) if chained && body.code == PREDECESSOR_MISSING => {
                let (result, counts) = self.send(batch, None).await.outcome().await;
                summary.add(&counts);
                result
            }
            other => other,
        }
    }

    /// Pushes a batch; when the hub answers 413 (too large), pushes each half instead, in
    /// order. A single operation the hub finds too large is refused here, with the hub's
    /// reason, so it cannot block the queue behind it. Returns what the store must record;
    /// on an error, what was already answered is recorded before the error returns.
    async fn push_splitting(
        &self,
        batch: &[Operation],
        mut after: Option<Uuid>,
        summary: &mut SyncSummary,
    ) -> Result<Settlement, EngineError> {
        let mut done = Settlement::default();
        let mut work = vec![batch];
        while let Some(part) = work.pop() {
            // Only the first part the hub applies waits for the batch before; the rest follow it.
            match self.push_batch(part, after, summary).await {
                Ok(settlement) => {
                    after = None;
                    done.remove.extend(settlement.remove);
                    done.update.extend(settlement.update);
                }
                Err(EngineError::Transport(TransportError::Http { status: 413, body })) => {
                    if part.len() > 1 {
                        let (first, second) = part.split_at(part.len() / 2);
                        work.push(second);
                        work.push(first);
                    } else {
                        let reason = body.map_or("too large for the hub".to_owned(), |b| b.detail);
                        let refused = Operation {
                            status: OpStatus::Rejected,
                            error: Some(reason),
                            processed_at: Some(rfc3339((self.now_ms)())),
                            ..part[0].clone()
                        };
                        done.update.push(refused);
                        summary.rejected += 1;
                    }
                }
                Err(e) => {
                    self.settle(done).await?;
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Pushes one batch and reads the hub's answers. A failed push records the attempt on
    /// each operation (they stay pending) before the error returns.
    async fn push_batch(
        &self,
        batch: &[Operation],
        after: Option<Uuid>,
        summary: &mut SyncSummary,
    ) -> Result<Settlement, EngineError> {
        let request = PushRequest {
            after,
            store: self.store_id(),
            operations: batch
                .iter()
                .map(|o| Operation {
                    seq: None,
                    ..o.clone()
                })
                .collect(),
        };
        summary.batches += 1;
        summary.pushed += batch.len() as u64;
        let response = match self.transport.push(&request).await {
            Ok(r) => r,
            Err(e) => {
                // Record the failed attempt; the operations stay pending and keep their ids.
                let failed: Vec<Operation> = batch
                    .iter()
                    .map(|o| Operation {
                        attempts: o.attempts + 1,
                        error: Some(e.to_string()),
                        ..o.clone()
                    })
                    .collect();
                self.store.settle(&[], &failed).await?;
                return Err(e.into());
            }
        };
        if response.results.len() != batch.len()
            || response
                .results
                .iter()
                .zip(batch)
                .any(|(r, o)| r.id != o.id)
        {
            return Err(EngineError::Protocol(format!(
                "the hub answered {} results for a batch of {}, or out of order",
                response.results.len(),
                batch.len()
            )));
        }
        let processed_at = rfc3339((self.now_ms)());
        let mut remove = Vec::new();
        let mut update = Vec::new();
        for (result, op) in response.results.iter().zip(batch) {
            let seq = op.seq.ok_or_else(|| {
                EngineError::Protocol("queued operation without a sequence".into())
            })?;
            match result.status {
                OpStatus::Applied => {
                    summary.applied += 1;
                    summary.duplicates += u64::from(result.duplicate);
                    remove.push(seq);
                    continue;
                }
                OpStatus::Deferred => summary.deferred += 1,
                OpStatus::Conflict => summary.conflicts += 1,
                OpStatus::Rejected => summary.rejected += 1,
                OpStatus::Pending => {
                    return Err(EngineError::Protocol(format!(
                        "the hub left operation {} pending",
                        op.id
                    )))
                }
            }
            update.push(Operation {
                status: result.status,
                has_conflict: result.status == OpStatus::Conflict,
                attempts: op.attempts + 1,
                error: result.error.clone(),
                processed_at: Some(processed_at.clone()),
                ..op.clone()
            });
        }
        Ok(Settlement { remove, update })
    }
}

/// What a pushed batch leaves for the store: the applied operations to remove (by sequence
/// number) and the others to rewrite with the hub's answer.
#[derive(Default)]
pub(super) struct Settlement {
    remove: Vec<u64>,
    update: Vec<Operation>,
}

/// A push's answer, with the counts it adds to the sync's summary.
type Pushing<'a> =
    Pin<Box<dyn Future<Output = (Result<Settlement, EngineError>, SyncSummary)> + 'a>>;

/// A batch sent to the hub whose answer has not been read yet.
pub(super) struct Flight<'a> {
    pub(super) batch: &'a [Operation],
    /// Whether it waits on the hub for the batch sent before it.
    chained: bool,
    answer: MaybeDone<Pushing<'a>>,
}

impl Flight<'_> {
    /// The push's result and counts, once the hub has answered.
    pub(super) async fn outcome(mut self) -> (Result<Settlement, EngineError>, SyncSummary) {
        (&mut self.answer).await;
        Pin::new(&mut self.answer)
            .take_output()
            .expect("a finished push holds its answer")
    }
}
