//! Spawning a stream's task and handing its outcome back to the worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use envoy_module::{HttpStream, Scheduler};
use futures::FutureExt;
use tracing::Instrument;

use crate::outcome::Outcome;
use crate::runtime::{runtime, AsyncError};

/// The event id a finished task commits; filters route it to [`Pending::complete`].
pub const COMPLETION_EVENT: u64 = 0x6173_796e_6300;

/// Bounds applied to every task of one core.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Tasks allowed in flight at once across all workers; past it, spawn fails fast.
    pub max_in_flight: usize,
    /// Time a task may take before the stream gets a 504.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 10_000,
            deadline: Duration::from_secs(10),
        }
    }
}

/// One filter config's gateway to the shared runtime.
#[derive(Debug)]
pub struct AsyncCore {
    limits: Limits,
    in_flight: Arc<AtomicUsize>,
}

/// What a finished task hands back to the worker: the outcome it applied, and the
/// task's own report (`None` when the barrier replaced the outcome: panic or deadline).
#[derive(Debug)]
pub enum Completed<R> {
    /// The task ran to its end; the outcome was applied.
    Done(R),
    /// The task panicked or ran out of time; an error reply was sent.
    Failed,
    /// No outcome was parked (a stray event).
    NotReady,
}

/// What the task and the filter share: the cancellation flag and the parked outcome.
struct Slot<R> {
    cancelled: bool,
    outcome: Option<(Outcome, Option<R>)>,
}

fn lock<R>(slot: &Mutex<Slot<R>>) -> MutexGuard<'_, Slot<R>> {
    // The slot holds plain data, consistent even if a holder panicked.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts one in-flight task for as long as it exists, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The filter's side of a spawned task. Dropping it cancels the task.
pub struct Pending<R = ()> {
    slot: Arc<Mutex<Slot<R>>>,
    abort: tokio::task::AbortHandle,
}

impl AsyncCore {
    /// A core with the given bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Tasks currently in flight (spawned and neither finished nor cancelled).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The bounds of this core.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn reserve(&self) -> Result<InFlight, AsyncError> {
        let max = self.limits.max_in_flight;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| AsyncError::Overloaded { limit: max })?;
        Ok(InFlight(self.in_flight.clone()))
    }

    /// Starts `task` for the stream; the hook must then return `StopIteration` and route
    /// [`COMPLETION_EVENT`] to [`Pending::complete`]. On error nothing was started and the
    /// caller replies with [`AsyncError::status`].
    pub fn spawn<F>(&self, stream: &mut dyn HttpStream, task: F) -> Result<Pending, AsyncError>
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        self.spawn_with_report(stream, async move { (task.await, ()) })
    }

    /// Like [`AsyncCore::spawn`], for a task that also returns a report `R` (e.g. which
    /// metrics to count), handed back on the worker by [`Pending::complete`].
    pub fn spawn_with_report<F, R>(&self, stream: &mut dyn HttpStream, task: F) -> Result<Pending<R>, AsyncError>
    where
        F: Future<Output = (Outcome, R)> + Send + 'static,
        R: Send + 'static,
    {
        let rt = runtime()?;
        let guard = self.reserve()?;
        let trace_id = stream.trace_id();
        let scheduler = stream.new_scheduler();
        let slot = Arc::new(Mutex::new(Slot {
            cancelled: false,
            outcome: None,
        }));
        let deadline = self.limits.deadline;
        let span = tracing::info_span!("request", trace_id = %trace_id);
        let task_slot = slot.clone();
        let handle = rt.spawn(
            async move {
                let _guard = guard;
                let outcome = run_guarded(task, deadline).await;
                deliver(&task_slot, scheduler.as_ref(), outcome);
                // `scheduler` is dropped (deleted) here, exactly once, after any commit.
            }
            .instrument(span),
        );
        Ok(Pending {
            slot,
            abort: handle.abort_handle(),
        })
    }
}

/// Runs the task under the panic barrier and the deadline.
async fn run_guarded<F, R>(task: F, deadline: Duration) -> (Outcome, Option<R>)
where
    F: Future<Output = (Outcome, R)>,
{
    let failed = match tokio::time::timeout(deadline, AssertUnwindSafe(task).catch_unwind()).await {
        Ok(Ok((outcome, report))) => return (outcome, Some(report)),
        Ok(Err(payload)) => {
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("non-string panic payload");
            tracing::error!("async task panicked: {msg}");
            Outcome::Error {
                status: 500,
                reason: "Internal Server Error",
                details: "async_panic",
            }
        }
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "async task exceeded its deadline"
            );
            Outcome::Error {
                status: 504,
                reason: "Gateway Timeout",
                details: "async_deadline",
            }
        }
    };
    (failed, None)
}

/// Parks the outcome and wakes the worker, unless the stream is already gone.
fn deliver<R>(slot: &Mutex<Slot<R>>, scheduler: &dyn Scheduler, outcome: (Outcome, Option<R>)) {
    let mut s = lock(slot);
    if s.cancelled {
        return;
    }
    s.outcome = Some(outcome);
    // Committing under the lock: the destroy path cannot interleave between the check
    // above and the commit.
    scheduler.commit(COMPLETION_EVENT);
}

impl<R> Pending<R> {
    /// On the worker, in `on_scheduled`: applies the parked outcome and hands back the
    /// task's report. With nothing parked (a stray event) the stream stays stopped.
    pub fn complete(&self, stream: &mut dyn HttpStream) -> Completed<R> {
        let parked = lock(&self.slot).outcome.take();
        match parked {
            Some((outcome, report)) => {
                outcome.apply(stream);
                report.map_or(Completed::Failed, Completed::Done)
            }
            None => Completed::NotReady,
        }
    }

    /// Cancels the task: its outcome will never be delivered, and it stops at its next
    /// await point. Idempotent; also done on drop.
    pub fn cancel(&self) {
        lock(&self.slot).cancelled = true;
        self.abort.abort();
    }
}

impl<R> Drop for Pending<R> {
    fn drop(&mut self) {
        self.cancel();
    }
}
