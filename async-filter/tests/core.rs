//! The async core against a fake stream: results, barriers, bounds and cancellation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_filter::{
    AsyncCore, AsyncError, Completed, HeaderEdit, Limits, LocalReply, Outcome, TaskFailure, COMPLETION_EVENT, PACE,
    WORKER_COMPLETIONS,
};
use envoy_module::testing::{FakeStream, SchedulerLog};
use envoy_module::{HeaderKind, HttpStream};

fn core(max_in_flight: usize, deadline_ms: u64) -> AsyncCore {
    AsyncCore::new(Limits {
        max_in_flight,
        deadline: Duration::from_millis(deadline_ms),
    })
}

fn stream() -> FakeStream {
    FakeStream::with_request_headers(&[(":path", "/x"), ("x-request-id", "trace-42"), ("x-old", "1")])
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What a filter does on the completion event: applies the outcome the task returned.
fn apply(pending: &async_filter::Pending<Outcome>, s: &mut FakeStream) -> Completed<()> {
    match pending.take() {
        Completed::Done(outcome) => {
            outcome.apply(s);
            Completed::Done(())
        }
        Completed::Failed(f) => Completed::Failed(f),
        Completed::NotReady => Completed::NotReady,
    }
}

fn wait_commit(log: &Arc<SchedulerLog>) {
    wait_for("the completion commit", || log.committed() == vec![COMPLETION_EVENT]);
}

#[test]
fn continue_applies_edits_then_resumes() {
    let core = core(10, 1_000);
    let mut s = stream();
    let pending = core
        .spawn(&mut s, async {
            Outcome::Continue(vec![
                HeaderEdit::Set("x-user".into(), b"alice".to_vec()),
                HeaderEdit::Add("x-group".into(), b"a".to_vec()),
                HeaderEdit::Add("x-group".into(), b"b".to_vec()),
                HeaderEdit::Remove("x-old".into()),
            ])
        })
        .expect("spawn");
    wait_commit(&s.schedulers);
    assert!(matches!(apply(&pending, &mut s), Completed::Done(())));
    assert_eq!(s.continued_decoding, 1);
    assert_eq!(s.header(HeaderKind::Request, "x-user"), Some(&b"alice"[..]));
    assert_eq!(
        s.header_values(HeaderKind::Request, "x-group"),
        vec![&b"a"[..], &b"b"[..]]
    );
    assert_eq!(s.header(HeaderKind::Request, "x-old"), None);
    assert!(s.reply.is_none());
    wait_for("the scheduler to be deleted", || s.schedulers.live() == 0);
    assert_eq!(core.in_flight(), 0);
}

#[test]
fn reply_is_sent_with_repeated_headers() {
    let core = core(10, 1_000);
    let mut s = stream();
    let pending = core
        .spawn(&mut s, async {
            Outcome::Reply(LocalReply {
                status: 302,
                headers: vec![
                    ("location".into(), b"/home".to_vec()),
                    ("set-cookie".into(), b"a=1".to_vec()),
                    ("set-cookie".into(), b"b=2".to_vec()),
                ],
                body: Vec::new(),
                details: "test".into(),
            })
        })
        .expect("spawn");
    wait_commit(&s.schedulers);
    assert!(matches!(apply(&pending, &mut s), Completed::Done(())));
    let reply = s.reply.clone().expect("a reply");
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header_values("set-cookie"), vec![&b"a=1"[..], &b"b=2"[..]]);
    assert_eq!(s.continued_decoding, 0);
}

#[test]
fn panic_in_task_is_reported_not_answered() {
    let core = core(10, 1_000);
    let mut s = stream();
    let pending: async_filter::Pending<Outcome> = core.spawn(&mut s, async { panic!("boom") }).expect("spawn");
    wait_commit(&s.schedulers);
    assert!(matches!(pending.take(), Completed::Failed(TaskFailure::Panicked)));
    assert!(s.reply.is_none(), "the filter, not the core, decides the reply");
    assert_eq!(core.in_flight(), 0);
}

#[test]
fn deadline_is_reported() {
    let core = core(10, 50);
    let mut s = stream();
    let started = Instant::now();
    let pending = core
        .spawn(&mut s, async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Outcome::Continue(Vec::new())
        })
        .expect("spawn");
    wait_commit(&s.schedulers);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        pending.take(),
        Completed::Failed(TaskFailure::DeadlineExceeded)
    ));
    assert!(s.reply.is_none());
}

#[test]
fn overload_fails_fast_and_frees_on_completion() {
    let core = core(2, 5_000);
    let mut streams: Vec<FakeStream> = (0..3).map(|_| stream()).collect();
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Outcome::Continue(Vec::new())
    };
    let a = core.spawn(&mut streams[0], slow()).expect("first");
    let b = core.spawn(&mut streams[1], slow()).expect("second");
    match core.spawn(&mut streams[2], slow()) {
        Err(AsyncError::Overloaded { limit: 2 }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("third task must be refused"),
    }
    assert_eq!(streams[2].schedulers.live(), 0, "a refused spawn creates no scheduler");
    // The worker takes each result as it comes (one at a time: the worker's gate).
    let mut done = [false, false];
    wait_for("both results", || {
        for (i, p) in [&a, &b].into_iter().enumerate() {
            if !done[i] && !streams[i].schedulers.committed().is_empty() {
                assert!(matches!(apply(p, &mut streams[i]), Completed::Done(())));
                done[i] = true;
            }
        }
        done == [true, true]
    });
    wait_for("both tasks to finish", || core.in_flight() == 0);
    core.spawn(&mut streams[2], slow()).expect("capacity is back");
}

#[test]
fn cancel_drops_the_outcome_and_the_task() {
    let core = core(10, 5_000);
    let mut s = stream();
    let pending = core
        .spawn(&mut s, async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Outcome::Continue(Vec::new())
        })
        .expect("spawn");
    assert_eq!(core.in_flight(), 1);
    drop(pending); // what the destroy hook does
    wait_for("the aborted task to release its slot", || core.in_flight() == 0);
    wait_for("the scheduler to be deleted", || s.schedulers.live() == 0);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        s.schedulers.committed().is_empty(),
        "nothing may be committed to a destroyed stream"
    );
}

#[test]
fn cancel_after_commit_is_harmless() {
    let core = core(10, 5_000);
    let mut s = stream();
    let pending = core
        .spawn(&mut s, async { Outcome::Continue(Vec::new()) })
        .expect("spawn");
    wait_commit(&s.schedulers);
    pending.cancel();
    pending.cancel();
    assert_eq!(core.in_flight(), 0);
}

#[test]
fn many_concurrent_tasks_all_complete() {
    let core = core(1_000, 5_000);
    let mut streams: Vec<FakeStream> = (0..200).map(|_| stream()).collect();
    let pendings: Vec<_> = streams
        .iter_mut()
        .enumerate()
        .map(|(i, s)| {
            core.spawn(s, async move {
                tokio::time::sleep(Duration::from_millis((i % 7) as u64)).await;
                Outcome::Continue(vec![HeaderEdit::Set("x-n".into(), i.to_string().into_bytes())])
            })
            .expect("spawn")
        })
        .collect();
    // As a worker does: apply whichever results were committed, until all were.
    let mut done = vec![false; streams.len()];
    wait_for("every result", || {
        for (i, (s, p)) in streams.iter_mut().zip(&pendings).enumerate() {
            if !done[i] && !s.schedulers.committed().is_empty() {
                assert!(matches!(apply(p, s), Completed::Done(())));
                assert_eq!(s.header(HeaderKind::Request, "x-n"), Some(i.to_string().as_bytes()));
                done[i] = true;
            }
        }
        done.iter().all(|d| *d)
    });
    wait_for("all slots released", || core.in_flight() == 0);
}

#[test]
fn paced_results_reach_a_worker_spaced_and_hold_back_no_other_result() {
    let core = core(1_000, 5_000);
    let n = 40;
    let mut streams: Vec<FakeStream> = (0..=n).map(|_| stream()).collect();
    let start = Instant::now();
    let mut pendings: Vec<_> = streams[..n]
        .iter_mut()
        .map(|s| {
            core.spawn_paced(s, async { Outcome::Continue(Vec::new()) })
                .expect("spawn")
        })
        .collect();
    // Signed-in work spawned behind the wave.
    pendings.push(
        core.spawn(&mut streams[n], async { Outcome::Continue(Vec::new()) })
            .expect("spawn"),
    );
    // As a worker does: take each result once committed, noting when.
    let mut taken: Vec<Option<Duration>> = vec![None; n + 1];
    wait_for("every result", || {
        for (i, (s, p)) in streams.iter_mut().zip(&pendings).enumerate() {
            if taken[i].is_none() && !s.schedulers.committed().is_empty() {
                assert!(matches!(apply(p, s), Completed::Done(())));
                taken[i] = Some(start.elapsed());
            }
        }
        taken.iter().all(Option::is_some)
    });
    let paced: Vec<Duration> = taken[..n].iter().flatten().copied().collect();
    let last = paced.iter().max().copied().unwrap_or_default();
    let spacing = PACE * u32::try_from(n - 1).unwrap_or(u32::MAX);
    assert!(
        last >= spacing,
        "{n} paced results within {last:?}, expected at least {spacing:?}"
    );
    let prompt = taken[n].unwrap_or_default();
    assert!(
        prompt < last / 2,
        "the other result came at {prompt:?}, behind the paced wave ending at {last:?}"
    );
}

#[test]
fn a_worker_has_a_bounded_number_of_results_waiting() {
    let core = core(1_000, 5_000);
    let mut streams: Vec<FakeStream> = (0..20).map(|_| stream()).collect();
    let pendings: Vec<_> = streams
        .iter_mut()
        .map(|s| core.spawn(s, async { Outcome::Continue(Vec::new()) }).expect("spawn"))
        .collect();
    let committed = |streams: &[FakeStream]| {
        streams
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.schedulers.committed().is_empty())
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    wait_for("the first batch", || committed(&streams).len() == WORKER_COMPLETIONS);
    std::thread::sleep(Duration::from_millis(50));
    let first = committed(&streams);
    assert_eq!(first.len(), WORKER_COMPLETIONS, "no more until the worker takes one");
    // Taking a result lets the next one through; so does a stream that went away.
    assert!(matches!(pendings[first[0]].take(), Completed::Done(_)));
    wait_for("one more", || committed(&streams).len() == WORKER_COMPLETIONS + 1);
    let second = committed(&streams);
    let newest = second.iter().find(|i| !first.contains(i)).copied().expect("a new one");
    pendings[newest].cancel();
    wait_for("one more again", || committed(&streams).len() == WORKER_COMPLETIONS + 2);
    // Another worker (thread) has its own permits.
    let other = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut s = stream();
                let p = core
                    .spawn(&mut s, async { Outcome::Continue(Vec::new()) })
                    .expect("spawn");
                wait_commit(&s.schedulers);
                matches!(p.take(), Completed::Done(_))
            })
            .join()
    });
    assert!(matches!(other, Ok(true)), "another worker's result is not held back");
    for (s, p) in streams.iter_mut().zip(&pendings) {
        let _ = apply(p, s);
    }
}

#[test]
fn any_value_comes_back_on_the_worker_once() {
    let core = core(10, 1_000);
    let mut s = stream();
    let pending = core
        .spawn(&mut s, async { (Outcome::Continue(Vec::new()), "login_succeeded") })
        .expect("spawn");
    wait_commit(&s.schedulers);
    assert!(matches!(pending.take(), Completed::Done((_, "login_succeeded"))));
    assert!(matches!(pending.take(), Completed::NotReady), "a result is taken once");
}

#[test]
fn detached_tasks_count_against_the_bound_and_end() {
    let core = core(1, 1_000);
    let (tx, rx) = std::sync::mpsc::channel();
    core.spawn_detached(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(());
    })
    .expect("spawn");
    let mut s = stream();
    assert!(matches!(
        core.spawn(&mut s, async {}),
        Err(AsyncError::Overloaded { limit: 1 })
    ));
    rx.recv_timeout(Duration::from_secs(5)).expect("the detached task ran");
    wait_for("the slot to be released", || core.in_flight() == 0);
}
