//! A put/get loop against a store while something is done to its Redis: counts failed
//! calls, the slowest call, and when calls last failed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use session_store::SessionStore;

use super::key;

/// The running loop.
pub struct Load {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    slowest_ms: Arc<AtomicU64>,
    last_failure: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the loop saw.
pub struct Seen {
    /// Calls that failed.
    pub failed: u64,
    /// The slowest put + get, in ms.
    pub slowest_ms: u64,
    /// The last failure, after `since` (zero if none).
    pub last_failure: Duration,
}

impl Load {
    /// Starts putting and reading fresh keys (from 1000 up) in a loop.
    pub fn start(store: Arc<dyn SessionStore>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (failed, slowest_ms) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let last_failure = Arc::new(Mutex::new(None::<Instant>));
        let (s, f, sl, lf) = (stop.clone(), failed.clone(), slowest_ms.clone(), last_failure.clone());
        let task = tokio::spawn(async move {
            let mut n = 1_000u32;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let t = Instant::now();
                let ok = store
                    .put(&key(n), b"during", Duration::from_secs(300), &[])
                    .await
                    .is_ok()
                    && store.get(&key(n)).await.is_ok_and(|v| v.is_some());
                sl.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                if !ok {
                    f.fetch_add(1, Ordering::Relaxed);
                    *lf.lock().expect("lock") = Some(Instant::now());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Load {
            stop,
            failed,
            slowest_ms,
            last_failure,
            task,
        }
    }

    /// Waits until calls have succeeded for 2 s in a row (at least until `settled` has
    /// passed since `since`), then stops the loop.
    pub async fn until_recovered(self, since: Instant, settled: Duration) -> Seen {
        let last = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let last = *self.last_failure.lock().expect("lock");
            if last.is_some_and(|t| t.elapsed() > Duration::from_secs(2))
                || (last.is_none() && since.elapsed() > settled)
            {
                break last;
            }
            assert!(since.elapsed() < Duration::from_secs(60), "the store never recovered");
        };
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load");
        Seen {
            failed: self.failed.load(Ordering::Relaxed),
            slowest_ms: self.slowest_ms.load(Ordering::Relaxed),
            last_failure: last.map_or(Duration::ZERO, |t| t - since),
        }
    }
}
