//! Spawning a stream's task and handing its outcome back to the worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envoy_module::{HttpStream, Scheduler};
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::runtime::{runtime, AsyncError};

/// The event id a finished task commits; filters route it to [`Pending::take`].
pub const COMPLETION_EVENT: u64 = 0x6173_796e_6300;

/// Results one Envoy worker may have waiting for it at once. Envoy runs every callback
/// posted to a worker in one batch: without a bound, hundreds of logins ending together
/// (their IdP answered, or their deadline passed) are applied back to back while the
/// worker's signed-in requests wait. With it, the rest wait on the runtime, the permit
/// comes back as the worker takes the result, and the worker gets back to its sockets
/// in between. One, by `scripts/bench_isolation.py`: signed-in p99 with 500 logins held
/// at the IdP 1.07-1.23x the control with one, 1.30-1.48x with four.
pub const WORKER_COMPLETIONS: usize = 1;

/// Spacing of paced results ([`AsyncCore::spawn_paced`]) per worker. Logins stuck at a
/// slow IdP end in waves (they started together, the IdP holds each as long): handed to
/// the worker one right after another, a wave and the browsers' next requests keep the
/// worker busy for tens of milliseconds while signed-in requests queue. Spaced, a wave
/// of 250 takes 250 ms; a login ends at most that much later, and a worker still takes
/// 1,000 logins a second. `scripts/bench_isolation.py`, IdP answering after 2 s, same
/// runs: signed-in p99 1.17x and 1.00x the control paced, 1.25x and 1.09x not.
pub const PACE: Duration = Duration::from_millis(1);

thread_local! {
    /// The permits of the Envoy worker this thread is (spawns happen on workers).
    static WORKER_GATE: Arc<Semaphore> = Arc::new(Semaphore::new(WORKER_COMPLETIONS));
    /// When this worker's next paced result may be handed over.
    static WORKER_PACE: Arc<Pace> = Arc::new(Pace(Mutex::new(Instant::now())));
}

/// One worker's next free slot for a paced result.
struct Pace(Mutex<Instant>);

impl Pace {
    /// Reserves the next slot (now, if the last one is past) and returns it.
    fn reserve(&self, every: Duration) -> Instant {
        let mut next = lock(&self.0);
        let at = (*next).max(Instant::now());
        *next = at + every;
        at
    }
}

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

/// Why a task ended without a value of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskFailure {
    /// It panicked; the panic was caught (and logged) at the barrier.
    Panicked,
    /// It ran past the core's deadline and was dropped.
    DeadlineExceeded,
}

/// What a finished task hands back to the worker. The filter decides what the stream
/// gets; the core maps nothing to HTTP.
#[derive(Debug)]
pub enum Completed<T> {
    /// The task ran to its end with this value.
    Done(T),
    /// The task did not finish.
    Failed(TaskFailure),
    /// Nothing was parked (a stray event).
    NotReady,
}

/// What the task and the filter share: the cancellation flag, the parked result and the
/// worker's permit it holds until the worker takes it.
struct Slot<T> {
    cancelled: bool,
    result: Option<Result<T, TaskFailure>>,
    permit: Option<OwnedSemaphorePermit>,
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // A slot and a pace hold plain data, consistent even if a holder panicked.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts one in-flight task for as long as it exists, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The filter's side of a spawned task. Dropping it cancels the task.
pub struct Pending<T> {
    slot: Arc<Mutex<Slot<T>>>,
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

    /// Starts `task` for the stream; the hook must then return `StopIteration` and, on
    /// [`COMPLETION_EVENT`], take the task's result with [`Pending::take`]. On error
    /// nothing was started.
    pub fn spawn<F, T>(&self, stream: &mut dyn HttpStream, task: F) -> Result<Pending<T>, AsyncError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.start(stream, task, None)
    }

    /// [`spawn`](Self::spawn) for work that may wait (logins): its result reaches the
    /// worker at most one per [`PACE`] per worker, so results that come in a wave do not
    /// reach it as one.
    pub fn spawn_paced<F, T>(&self, stream: &mut dyn HttpStream, task: F) -> Result<Pending<T>, AsyncError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.start(stream, task, Some(WORKER_PACE.with(Arc::clone)))
    }

    fn start<F, T>(
        &self,
        stream: &mut dyn HttpStream,
        task: F,
        pace: Option<Arc<Pace>>,
    ) -> Result<Pending<T>, AsyncError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let rt = runtime()?;
        let guard = self.reserve()?;
        // Moved from here on by pointer: a login's future is kilobytes (the HTTP client's
        // state inlined), and each move of it by value was a memcpy on the worker.
        let task = Box::pin(task);
        let trace_id = stream.trace_id();
        let scheduler = stream.new_scheduler();
        let slot = Arc::new(Mutex::new(Slot {
            cancelled: false,
            result: None,
            permit: None,
        }));
        let deadline = self.limits.deadline;
        let span = tracing::info_span!("request", trace_id = %trace_id);
        let task_slot = slot.clone();
        let gate = WORKER_GATE.with(Arc::clone);
        let handle = rt.spawn(
            async move {
                let _guard = guard;
                let result = run_guarded(task, deadline).await;
                if let Some(pace) = pace {
                    // Before the gate: results of other work are not held up meanwhile.
                    tokio::time::sleep_until(pace.reserve(PACE).into()).await;
                }
                // The gate is never closed: acquiring only waits for the worker.
                let permit = gate.acquire_owned().await.ok();
                deliver(&task_slot, scheduler.as_ref(), result, permit);
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

impl AsyncCore {
    /// Starts `task` with no stream to wake (a store write after the request went on),
    /// under the same in-flight bound, deadline and panic barrier; its end is only logged.
    pub fn spawn_detached<F>(&self, task: F) -> Result<(), AsyncError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let rt = runtime()?;
        let guard = self.reserve()?;
        let task = Box::pin(task);
        let deadline = self.limits.deadline;
        rt.spawn(async move {
            let _guard = guard;
            let _ = run_guarded(task, deadline).await;
        });
        Ok(())
    }
}

/// Runs the task under the panic barrier and the deadline.
async fn run_guarded<F, T>(task: F, deadline: Duration) -> Result<T, TaskFailure>
where
    F: Future<Output = T>,
{
    match tokio::time::timeout(deadline, AssertUnwindSafe(task).catch_unwind()).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(payload)) => {
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("non-string panic payload");
            tracing::error!("async task panicked: {msg}");
            Err(TaskFailure::Panicked)
        }
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "async task exceeded its deadline"
            );
            Err(TaskFailure::DeadlineExceeded)
        }
    }
}

/// Parks the result (and the worker's permit) and wakes the worker, unless the stream is
/// already gone.
fn deliver<T>(
    slot: &Mutex<Slot<T>>,
    scheduler: &dyn Scheduler,
    result: Result<T, TaskFailure>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let mut s = lock(slot);
    if s.cancelled {
        return;
    }
    s.result = Some(result);
    s.permit = permit;
    // Committing under the lock: the destroy path cannot interleave between the check
    // above and the commit.
    scheduler.commit(COMPLETION_EVENT);
}

impl<T> Pending<T> {
    /// On the worker, in `on_scheduled`: the task's result. With nothing parked (a stray
    /// event) the stream stays stopped.
    pub fn take(&self) -> Completed<T> {
        let mut s = lock(&self.slot);
        let result = s.result.take();
        if result.is_some() {
            // The worker has this one: the next result may come.
            s.permit = None;
        }
        match result {
            Some(Ok(value)) => Completed::Done(value),
            Some(Err(failure)) => Completed::Failed(failure),
            None => Completed::NotReady,
        }
    }

    /// Cancels the task: its outcome will never be delivered, and it stops at its next
    /// await point. Idempotent; also done on drop.
    pub fn cancel(&self) {
        let mut s = lock(&self.slot);
        s.cancelled = true;
        s.permit = None;
        drop(s);
        self.abort.abort();
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        self.cancel();
    }
}
