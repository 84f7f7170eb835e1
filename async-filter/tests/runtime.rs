//! The shared runtime as configured: its thread count and its threads' priority.

use async_filter::RuntimeSettings;

#[test]
fn the_first_settings_build_the_runtime_below_envoys_priority() {
    let own_nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok();
    let before = own_nice();
    let wanted = RuntimeSettings { threads: 3, nice: 7 };
    assert_eq!(async_filter::configure_runtime(wanted), wanted);
    let other = RuntimeSettings { threads: 1, nice: 0 };
    assert_eq!(
        async_filter::configure_runtime(other),
        wanted,
        "the first settings stay"
    );
    let rt = async_filter::runtime().expect("runtime");
    assert_eq!(rt.metrics().num_workers(), 3);
    let (name, nice) = rt
        .block_on(rt.spawn(async {
            let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid()));
            (std::thread::current().name().map(str::to_owned), nice.ok())
        }))
        .expect("task");
    assert_eq!(name.as_deref(), Some("oidc-async"));
    assert_eq!(nice, Some(7), "the runtime's threads yield to Envoy's workers");
    assert_eq!(own_nice(), before, "only the runtime's threads are lowered");
}
