//! Several IdPs in one filter config, through `OidcFilter` over a fake stream: which IdP a
//! request meets (route, host, own endpoints), and that sessions, cookies and identity
//! headers stay each IdP's own.

mod fakes;

use envoy_oidc::config::RouteSettings;
use fakes::{Exchanged, Harness, APP};
use serde_json::json;

/// The default IdP, `partners` on its own host, `staff` on routes that name it.
fn three() -> Harness {
    Harness::new(json!({"idps": [
        {"name": "partners", "hosts": ["partners.test"], "redirect_uri": "https://partners.test/oauth2/callback"},
        {"name": "staff", "redirect_uri": format!("{APP}/oauth2/staff/callback"),
         "logout": {"path": "/oauth2/staff/sign_out", "backchannel_path": "/oauth2/staff/backchannel"},
         "headers": {"user": "x-staff-user"}},
    ]}))
}

fn route_idp(name: &str) -> Option<RouteSettings> {
    Some(RouteSettings::parse(json!({ "idp": name }).to_string().as_bytes()).expect("route"))
}

fn public() -> Option<RouteSettings> {
    Some(RouteSettings::parse(br#"{"disabled": true}"#).expect("route"))
}

/// Logs `user` in at `host` (on `route`): the redirect URI the IdP was given, the flow
/// cookie's and the session cookie's `name=value`.
fn login_at(h: &Harness, host: &str, route: Option<RouteSettings>, user: &str) -> (String, String, String) {
    let start = h.request(
        &[(":authority", host), (":path", "/home"), ("accept", "text/html")],
        route,
    );
    assert_eq!(start.reply().status, 302, "login redirect: {}", start.body());
    let location = start.header("location").expect("location");
    let q: std::collections::HashMap<String, String> = url::Url::parse(&location)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    let flow = first_cookie(&start);
    let callback = h.idp.authorize(&location, user);
    // The callback's route is the app's catch-all: the path alone finds the IdP.
    let done = h.request(
        &[
            (":authority", host),
            (":path", &callback),
            ("cookie", &flow),
            ("accept", "text/html"),
        ],
        None,
    );
    assert_eq!(done.reply().status, 302, "callback: {}", done.body());
    assert_eq!(done.header("location").as_deref(), Some("/home"));
    (q["redirect_uri"].clone(), flow, first_cookie(&done))
}

fn first_cookie(r: &Exchanged) -> String {
    let set = r.header("set-cookie").expect("set-cookie");
    set.split(';').next().expect("pair").to_owned()
}

#[test]
fn each_idp_logs_in_with_its_own_redirect_uri_and_cookies() {
    let h = three();
    let (redirect, flow, session) = login_at(&h, "app.test", None, "alice");
    assert_eq!(redirect, format!("{APP}/oauth2/callback"));
    assert!(flow.starts_with("__Host-oidc_flow_"), "{flow}");
    assert!(session.starts_with("__Host-oidc_session="), "{session}");

    let (redirect, flow, session) = login_at(&h, "partners.test", None, "bob");
    assert_eq!(redirect, "https://partners.test/oauth2/callback", "chosen by host");
    assert!(flow.starts_with("__Host-partners-oidc_flow_"), "{flow}");
    assert!(session.starts_with("__Host-partners-oidc_session="), "{session}");

    let (redirect, flow, session) = login_at(&h, "app.test", route_idp("staff"), "carol");
    assert_eq!(redirect, format!("{APP}/oauth2/staff/callback"), "chosen by route");
    assert!(flow.starts_with("__Host-staff-oidc_flow_"), "{flow}");
    assert!(session.starts_with("__Host-staff-oidc_session="), "{session}");
    let admitted = h.request(
        &[(":path", "/x"), ("cookie", &session), ("x-staff-user", "forged")],
        route_idp("staff"),
    );
    assert!(admitted.passed);
    assert_eq!(
        admitted.upstream("x-staff-user").as_deref(),
        Some("carol"),
        "its own headers"
    );
}

#[test]
fn a_session_serves_only_the_idp_that_made_it() {
    let h = three();
    let (_, _, partners) = login_at(&h, "partners.test", None, "bob");
    let at_home = h.request(
        &[(":authority", "partners.test"), (":path", "/x"), ("cookie", &partners)],
        None,
    );
    assert_eq!(at_home.upstream("x-auth-request-user").as_deref(), Some("bob"));

    // On the default host, or on a route of another IdP, it is no session at all.
    let (_, value) = partners.split_once('=').expect("pair");
    for (host, route, cookie) in [
        ("app.test", None, partners.clone()),
        ("app.test", None, format!("__Host-oidc_session={value}")),
        ("partners.test", route_idp("staff"), partners.clone()),
        (
            "partners.test",
            route_idp("staff"),
            format!("__Host-staff-oidc_session={value}"),
        ),
    ] {
        let r = h.request(
            &[
                (":authority", host),
                (":path", "/x"),
                ("accept", "text/html"),
                ("cookie", &cookie),
            ],
            route,
        );
        assert_eq!(r.reply().status, 302, "{host} {cookie}: sent to log in");
        assert!(r.header("location").expect("location").contains("/auth?"));
    }

    // No IdP's cookie reaches the app, whichever IdP the request met; nor any IdP's
    // identity header.
    let r = h.request(
        &[
            (":path", "/public"),
            ("cookie", &format!("{partners}; theme=dark; __Host-staff-oidc_flow_x=1")),
            ("x-staff-user", "forged"),
            ("x-auth-request-user", "forged"),
        ],
        public(),
    );
    assert!(r.passed);
    assert_eq!(r.upstream("cookie").as_deref(), Some("theme=dark"));
    assert_eq!(r.upstream("x-staff-user"), None);
    assert_eq!(r.upstream("x-auth-request-user"), None);
}

#[test]
fn the_route_wins_over_the_host_and_own_endpoints_find_their_idp() {
    let h = three();
    // The default named on a route of the partners' host.
    let r = h.request(
        &[
            (":authority", "partners.test"),
            (":path", "/x"),
            ("accept", "text/html"),
        ],
        route_idp("default"),
    );
    let location = r.header("location").expect("location");
    assert!(
        location.contains(&fakes::urlencode(&format!("{APP}/oauth2/callback"))),
        "{location}"
    );
    // The staff sign-out path reaches staff from any route: its page is served, not the
    // default's 404 for unknown paths under /oauth2/.
    let r = h.request(&[(":path", "/oauth2/staff/sign_out"), ("accept", "text/html")], None);
    assert_ne!(r.reply().status, 404, "{}", r.body());
    let r = h.request(&[(":path", "/oauth2/other"), ("accept", "text/html")], None);
    assert_eq!(r.reply().status, 404);
}

#[test]
fn a_route_naming_an_idp_the_config_lacks_is_a_clear_500() {
    let h = three();
    let r = h.request(&[(":path", "/x"), ("accept", "application/json")], route_idp("nope"));
    let reply = r.reply();
    assert_eq!(reply.status, 500);
    assert!(!r.passed);
    assert!(r.body().contains("trace-1"), "{}", r.body());
}
