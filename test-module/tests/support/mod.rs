//! Test fixtures for the test module: its Envoy configs over `testkit`'s processes.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

pub use testkit::echo::{Echo, Seen};
pub use testkit::envoy::{envoy_bin, Envoy};
pub use testkit::{client, eventually};

/// The directory holding the `libtest_module.so` built with this test binary.
pub fn module_dir() -> PathBuf {
    testkit::envoy::module_dir("test_module")
}

/// Where the listener config lives.
pub enum Listeners {
    /// In the bootstrap.
    Static,
    /// In a file Envoy watches (LDS), so a test can swap it.
    File,
}

/// Starts Envoy with the probe filter configured by `filter_config` (JSON).
pub async fn start(filter_config: &str, upstream_port: u16, listeners: Listeners) -> Envoy {
    Envoy::start(&module_dir(), |dir| {
        let lds_dir = dir.join("lds");
        std::fs::create_dir_all(&lds_dir).expect("lds dir");
        let (static_listeners, dynamic) = match listeners {
            Listeners::Static => (static_listeners(filter_config), String::new()),
            Listeners::File => {
                write_lds(&lds_dir, filter_config);
                (
                    String::new(),
                    format!(
                        "dynamic_resources:\n  lds_config:\n    path_config_source:\n      path: {}\n      watched_directory: {{path: {}}}\n",
                        lds_dir.join("lds.yaml").display(),
                        lds_dir.display()
                    ),
                )
            }
        };
        format!(
            "node: {{id: probe, cluster: probe}}\nstats_flush_interval: 0.5s\nadmin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}\n{dynamic}static_resources:\n{static_listeners}{}",
            cluster_yaml(upstream_port)
        )
    })
    .await
}

/// The bootstrap's `listeners:` block with the probe filter configured by `filter_config`.
fn static_listeners(filter_config: &str) -> String {
    let indented: String = listener_yaml(filter_config)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    format!("  listeners:{indented}")
}

/// A bootstrap with static listeners, for `envoy --mode validate`.
pub fn static_bootstrap(filter_config: &str, upstream_port: u16) -> String {
    format!(
        "static_resources:\n{}{}",
        static_listeners(filter_config),
        cluster_yaml(upstream_port)
    )
}

/// Swaps the LDS file (atomic rename) to a listener with a new filter config.
pub fn reload(envoy: &Envoy, filter_config: &str) {
    write_lds(&envoy.dir().join("lds"), filter_config);
}

/// The number of async tasks in flight, as the module reports it.
pub async fn in_flight(envoy: &Envoy) -> usize {
    let body = client()
        .get(envoy.url("/probe/inflight"))
        .send()
        .await
        .expect("inflight")
        .text()
        .await
        .expect("text");
    body.trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad inflight body {body:?}"))
}

fn listener_yaml(filter_config: &str) -> String {
    let filter_config = filter_config.replace('\'', "''");
    format!(
        r#"
- name: main
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress
        route_config:
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - match: {{prefix: "/probe/echo/tagged"}}
              route: {{cluster: upstream}}
              typed_per_filter_config:
                probe:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute
                  dynamic_module_config: {{name: test_module, do_not_close: true}}
                  filter_name: probe
                  filter_config: {{"@type": type.googleapis.com/google.protobuf.StringValue, value: '{{"tag":"blue"}}'}}
            - match: {{prefix: "/async/continue/nowhere"}}
              route: {{cluster: empty}}
            - match: {{prefix: "/"}}
              route: {{cluster: upstream, timeout: 60s}}
        http_filters:
        - name: probe
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
            dynamic_module_config: {{name: test_module, do_not_close: true}}
            filter_name: probe
            filter_config: {{"@type": type.googleapis.com/google.protobuf.StringValue, value: '{filter_config}'}}
        - name: envoy.filters.http.router
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
    )
}

fn cluster_yaml(upstream_port: u16) -> String {
    format!(
        r#"
  clusters:
  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}}}}}}}]}}]
  - name: empty
    connect_timeout: 1s
    load_assignment: {{cluster_name: empty}}
"#
    )
}

fn write_lds(dir: &Path, filter_config: &str) {
    let yaml = format!(
        "resources:\n{}",
        listener_yaml(filter_config).replacen(
            "\n- name: main",
            "\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: main",
            1
        )
    );
    let tmp = dir.join("lds.yaml.tmp");
    std::fs::write(&tmp, yaml).expect("write lds");
    std::fs::rename(&tmp, dir.join("lds.yaml")).expect("swap lds");
}
