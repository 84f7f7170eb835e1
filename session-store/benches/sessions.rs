//! The per-request session check: open the cookie + cache hit, and its parts.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use session_store::{
    AccessToken, Check, Claims, IdToken, KeyRing, Lifetimes, MemoryStore, RefreshToken, Session, SessionCache,
    SessionStore, Sessions, Ticket, Tokens,
};

fn session(now: u64) -> Session {
    let mut claims = Claims::default();
    claims.insert("email", vec!["alice@example.com".into()]);
    claims.insert("groups", vec!["admins".into(), "dev".into()]);
    Session::new(
        "alice".into(),
        "https://idp.example".into(),
        Some("sid".into()),
        claims,
        Tokens {
            access: AccessToken::new("a".repeat(900)),
            access_expires_at: Some(now + 300),
            refresh: Some(RefreshToken::new("r".repeat(400))),
            id_token: Some(IdToken::new("i".repeat(900))),
        },
        now,
        Lifetimes {
            absolute_secs: 86_400,
            idle_secs: 3_600,
        },
    )
}

fn bench_check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ring = Arc::new(KeyRing::from_secrets(&[[7u8; 32], [8u8; 32]]).expect("ring"));
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(100_000));
    let sessions = Sessions::new(
        ring,
        store,
        SessionCache::new(100_000, Duration::from_secs(60)),
        "__Host-oidc".into(),
    );
    let now = session_store::unix_now();
    let (cookie, _, _) = rt.block_on(sessions.create(session(now), now)).expect("create");
    assert!(matches!(sessions.check(&cookie, now), Check::Hit(..)));

    c.bench_function("check: open cookie + cache hit", |b| {
        b.iter(|| match sessions.check(black_box(&cookie), now) {
            Check::Hit(s, _) => black_box(s),
            _ => unreachable!("the session is cached"),
        })
    });
    c.bench_function("open cookie only", |b| {
        b.iter(|| {
            black_box(
                sessions
                    .sealer()
                    .open::<Ticket>("__Host-oidc", black_box(&cookie), now)
                    .is_ok(),
            )
        })
    });
    let bad = format!("{}x", &cookie[..cookie.len() - 1]);
    c.bench_function("reject tampered cookie", |b| {
        b.iter(|| black_box(sessions.check(black_box(&bad), now)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_check
}
criterion_main!(benches);
