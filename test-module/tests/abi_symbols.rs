//! The module's symbols against the pinned Envoy binary: every callback we import exists,
//! every hook Envoy 1.40 requires is exported.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

/// Hooks Envoy 1.40 resolves (it refuses a module missing any of them).
const REQUIRED_HOOKS: &[&str] = &[
    "program_init",
    "http_filter_config_new",
    "http_filter_config_destroy",
    "http_filter_new",
    "http_filter_destroy",
    "http_filter_request_headers",
    "http_filter_request_body",
    "http_filter_request_trailers",
    "http_filter_response_headers",
    "http_filter_response_body",
    "http_filter_response_trailers",
    "http_filter_stream_complete",
    "http_filter_scheduled",
    "http_filter_http_callout_done",
    "http_filter_http_stream_headers",
    "http_filter_http_stream_data",
    "http_filter_http_stream_trailers",
    "http_filter_http_stream_complete",
    "http_filter_http_stream_reset",
    "http_filter_downstream_above_write_buffer_high_watermark",
    "http_filter_downstream_below_write_buffer_low_watermark",
    "http_filter_per_route_config_new",
    "http_filter_per_route_config_destroy",
];

fn nm(args: &[&str], file: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(args)
        .arg(file)
        .output()
        .expect("nm (binutils) is installed");
    assert!(out.status.success(), "nm failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|s| s.split('@').next().unwrap_or(s).to_owned())
        .collect()
}

#[test]
fn imported_callbacks_exist_in_envoy_and_required_hooks_are_exported() {
    let module = support::module_dir().join("libtest_module.so");
    let envoy = support::envoy_bin();

    let imported: BTreeSet<String> = nm(&["-D", "-u"], &module)
        .into_iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_callback_"))
        .collect();
    let provided: BTreeSet<String> = nm(&["-D", "--defined-only"], &envoy)
        .into_iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_callback_"))
        .collect();
    assert!(
        imported.len() >= 20,
        "the module imports the callbacks it uses: {imported:?}"
    );
    assert!(
        provided.len() > 700,
        "the pinned Envoy exports its callbacks ({} found)",
        provided.len()
    );
    let missing: Vec<_> = imported.difference(&provided).collect();
    assert!(
        missing.is_empty(),
        "callbacks the module needs but Envoy lacks: {missing:?}"
    );

    let exported = nm(&["-D", "--defined-only"], &module);
    let absent: Vec<_> = REQUIRED_HOOKS
        .iter()
        .map(|h| format!("envoy_dynamic_module_on_{h}"))
        .filter(|h| !exported.contains(h))
        .collect();
    assert!(
        absent.is_empty(),
        "hooks Envoy requires but the module lacks: {absent:?}"
    );
}
