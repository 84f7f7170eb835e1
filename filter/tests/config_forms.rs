//! The filter config as Envoy hands it over: a YAML `google.protobuf.Struct` (what every
//! shipped config uses) and JSON in a `StringValue` both load; a Struct with an unknown
//! field is refused with the field named (`envoy --mode validate` runs the config hook).

fn validate(filter_config: &str) -> (bool, String) {
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          route_config: {{virtual_hosts: [{{name: a, domains: ["*"], routes: [{{match: {{prefix: "/"}}, direct_response: {{status: 200}}}}]}}]}}
          http_filters:
          - name: oidc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {{name: envoy_oidc, do_not_close: true}}
              filter_name: oidc
              filter_config: {filter_config}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
    );
    testkit::envoy::validate(&yaml, &testkit::envoy::module_dir("envoy_oidc"))
}

const KEY: &str = "dGVzdC1zZXNzaW9uLWtleS0zMi1ieXRlcy1sb25nISE";

#[test]
fn yaml_struct_and_json_string_both_load() {
    let yaml = format!(
        r#"{{"@type": type.googleapis.com/google.protobuf.Struct, value: {{issuer: "https://idp.example", client_id: c, client_secret: {{inline: s}}, redirect_uri: "https://app.example/oauth2/callback", session: {{keys: [{{inline: {KEY}}}], idle_timeout_secs: 600}}, scopes: [openid, email]}}}}"#
    );
    let (ok, text) = validate(&yaml);
    assert!(ok, "Struct form:\n{text}");
    let json = format!(
        r#"{{"@type": type.googleapis.com/google.protobuf.StringValue, value: '{{"issuer": "https://idp.example", "client_id": "c", "client_secret": {{"inline": "s"}}, "redirect_uri": "https://app.example/oauth2/callback", "session": {{"keys": [{{"inline": "{KEY}"}}]}}}}'}}"#
    );
    let (ok, text) = validate(&json);
    assert!(ok, "StringValue form:\n{text}");
}

#[test]
fn a_struct_with_an_unknown_field_is_refused_naming_it() {
    let yaml = format!(
        r#"{{"@type": type.googleapis.com/google.protobuf.Struct, value: {{issuer: "https://idp.example", client_id: c, client_secret: {{inline: s}}, redirect_uri: "https://app.example/oauth2/callback", session: {{keys: [{{inline: {KEY}}}], idle_timout_secs: 600}}}}}}"#
    );
    let (ok, text) = validate(&yaml);
    assert!(!ok, "must be refused:\n{text}");
    assert!(
        text.contains("idle_timout_secs"),
        "the message names the field:\n{text}"
    );
}
