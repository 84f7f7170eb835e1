//! The hardening issue's attacks, each sent through the real Envoy 1.40 (the shipped
//! demo config) to the real IdP (oidc-provider): what the attacker tries, what the app
//! sees, what the client gets.

mod support;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use support::{assert_traced, client, logged_in, seen, Browser, Options, Seen, Setup, CLIENT_ID};
use url::Url;

fn now() -> u64 {
    session_store::unix_now()
}

async fn bearer_status(setup: &Setup, token: &str) -> u16 {
    client()
        .get(setup.url("/api/items"))
        .header("accept", "application/json")
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_logout_tokens_and_other_clients_tokens_are_not_bearer_credentials() {
    let setup = Setup::start(Options::default()).await;
    // The ID token the sign-out page hands the browser as id_token_hint.
    let b = logged_in(&setup, "alice", "/").await;
    let out = b.navigate(&setup.url("/oauth2/sign_out")).await;
    let (_, fields) = support::first_form(&out[0]).expect("end-session form");
    let id_token = fields
        .iter()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.clone())
        .expect("id_token_hint");
    assert_eq!(bearer_status(&setup, &id_token).await, 401, "the ID token");

    let iss = setup.idp.issuer.clone();
    let t = now();
    let base = json!({"iss": iss, "aud": CLIENT_ID, "sub": "svc", "iat": t, "exp": t + 300});
    let with = |extra: Value| {
        let mut c = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let good = setup.idp.mint(with(json!({"__typ": "at+jwt"}))).await;
    assert_eq!(bearer_status(&setup, &good).await, 200, "an access token");
    for (what, claims) in [
        (
            "a logout token",
            with(
                json!({"jti": "x", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "__typ": "logout+jwt"}),
            ),
        ),
        ("an ID-token shape (nonce)", with(json!({"nonce": "n"}))),
        (
            "another client's token",
            with(json!({"aud": [CLIENT_ID, "api"], "azp": "api"})),
        ),
        ("not valid yet", with(json!({"nbf": t + 600}))),
        ("issued in the future", with(json!({"iat": t + 600}))),
    ] {
        let token = setup.idp.mint(claims).await;
        assert_eq!(bearer_status(&setup, &token).await, 401, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_header_families_and_spellings_never_reach_the_app() {
    // Envoy's own guard off (headers with underscores allowed): the filter still strips.
    let setup = Setup::start(Options {
        envoy_yaml: |y| {
            y.replace(
                "headers_with_underscores_action: REJECT_REQUEST",
                "headers_with_underscores_action: ALLOW",
            )
        },
        ..Options::default()
    })
    .await;
    let b = logged_in(&setup, "bob", "/").await;
    let url = Url::parse(&setup.url("/whoami")).expect("url");
    let spoofs = [
        ("x_auth_request_groups", "admins"),
        ("X-Forwarded-User", "root"),
        ("X-Forwarded-Email", "root@example.com"),
        ("X-Forwarded-Groups", "admins"),
        ("X-Forwarded-Preferred-Username", "root"),
        ("X-Remote-User", "root"),
        ("Remote-User", "root"),
        ("authorization", "Basic cm9vdDpyb290"),
    ];
    let page = b.request("GET", &url, None, &spoofs).await;
    let s = Seen(serde_json::from_str(&page.body).expect("echo"));
    for (name, _) in spoofs {
        let normal = name.to_ascii_lowercase().replace('_', "-");
        let values: Vec<String> = [name.to_ascii_lowercase(), normal.clone()]
            .iter()
            .flat_map(|n| s.header_values(n))
            .collect();
        assert!(
            values
                .iter()
                .all(|v| v != "admins" && v != "root" && !v.starts_with("root") && !v.starts_with("Basic")),
            "{name}: {values:?}"
        );
    }
    assert_eq!(s.header_values("x-auth-request-user"), vec!["bob"]);
    // With the shipped config, Envoy refuses underscores outright.
    let strict = Setup::start(Options::default()).await;
    let r = client()
        .get(strict.url("/public/x"))
        .header("x_auth_request_user", "root")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "headers_with_underscores_action: REJECT_REQUEST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_rules_cannot_be_walked_around() {
    let setup = Setup::start(Options::default()).await;
    let bob = logged_in(&setup, "bob", "/").await;
    for path in [
        "/public%2f..%2fadmin",
        "/public%2F..%2Fadmin/panel",
        "/%2fadmin",
        "/public%5c..%5cadmin",
        "/public/../admin",
        "/ADMIN",
        "/Admin/panel",
    ] {
        let url = Url::parse(&format!("http://127.0.0.1:{}{path}", setup.envoy().port)).expect("url");
        let pages = bob.navigate(url.as_str()).await;
        let last = pages.last().expect("a page");
        assert_ne!(last.status, 200, "{path} reached the admin area as bob: {}", last.url);
    }
    // `/publicXYZ` is not under `/public`: it needs a login.
    let anon = Browser::new();
    assert_eq!(anon.navigate(&setup.url("/publicXYZ")).await[0].status, 302);
    // With Envoy's escaped-slash handling off, the filter itself refuses the path.
    let loose = Setup::start(Options {
        envoy_yaml: |y| y.replace("UNESCAPE_AND_REDIRECT", "KEEP_UNCHANGED"),
        ..Options::default()
    })
    .await;
    let page = Browser::new()
        .request(
            "GET",
            &Url::parse(&loose.url("/public%2f..%2fadmin")).expect("url"),
            None,
            &[],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert_traced(&page, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_logins_never_grow_the_cookie_header() {
    let setup = Setup::start(Options::default()).await;
    let http = client();
    // An ordered jar, as browsers keep cookies of one path in creation order.
    let mut jar: Vec<(String, String)> = Vec::new();
    let mut longest = 0;
    for i in 0..200 {
        let line = jar
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        longest = longest.max(line.len());
        let mut req = http
            .get(setup.url(&format!("/deep/{i}?pad={}", "x".repeat(1900))))
            .header("accept", "text/html");
        if !line.is_empty() {
            req = req.header("cookie", line);
        }
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 302, "start {i}: never 431");
        for sc in r.headers().get_all("set-cookie") {
            let sc = sc.to_str().expect("ascii");
            let (pair, attrs) = sc.split_once(';').unwrap_or((sc, ""));
            let (name, value) = pair.split_once('=').expect("pair");
            jar.retain(|(n, _)| n != name);
            if !attrs.contains("Max-Age=0") {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        assert!(jar.len() <= 3, "{} flow cookies", jar.len());
    }
    assert!(longest < 12_000, "the cookie header grew to {longest} bytes");
}

fn logout_token_claims(setup: &Setup, jti: &str) -> Value {
    json!({"iss": setup.idp.issuer, "aud": CLIENT_ID, "iat": now(), "jti": jti, "sub": "nobody",
           "events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "__typ": "logout+jwt"})
}

async fn post_logout(setup: &Setup, body: String, content_type: &str) -> (u16, Value, String) {
    let r = client()
        .post(setup.url("/oauth2/backchannel_logout"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let id = r
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_tokens_are_single_use_fresh_and_form_posted() {
    let setup = Setup::start(Options::default()).await;
    let form = "application/x-www-form-urlencoded";
    let token = setup.idp.mint(logout_token_claims(&setup, "once")).await;
    let (status, _, _) = post_logout(&setup, format!("logout_token={token}"), form).await;
    assert_eq!(status, 200);
    let mut stale = logout_token_claims(&setup, "stale");
    stale["iat"] = json!(now() - 3600);
    let mut no_jti = logout_token_claims(&setup, "x");
    no_jti.as_object_mut().expect("object").remove("jti");
    let cases = [
        ("replayed", format!("logout_token={token}"), form),
        ("stale", format!("logout_token={}", setup.idp.mint(stale).await), form),
        ("no jti", format!("logout_token={}", setup.idp.mint(no_jti).await), form),
        (
            "not a form",
            format!(
                "logout_token={}",
                setup.idp.mint(logout_token_claims(&setup, "json")).await
            ),
            "application/json",
        ),
    ];
    for (what, body, content_type) in cases {
        let (status, body, id) = post_logout(&setup, body, content_type).await;
        assert_eq!(status, 400, "{what}");
        assert_eq!(body["error"], "invalid_request", "{what}");
        assert_eq!(body["trace_id"], json!(id), "{what}: the trace id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_ends_the_first_session_and_cross_site_sign_out_is_confirmed() {
    let setup = Setup::start(Options::default()).await;
    let b = logged_in(&setup, "alice", "/").await;
    let home = setup.url("/");
    let first = b.cookie(&home, "__Host-oidc_session").expect("session");
    // A forged link from another site: a confirmation page, the session stays.
    let signout = Url::parse(&setup.url("/oauth2/sign_out")).expect("url");
    let page = b
        .request("GET", &signout, None, &[("sec-fetch-site", "cross-site")])
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out?"), "{}", page.body);
    assert_eq!(b.navigate(&home).await[0].status, 200, "still signed in");
    let page = b
        .request("POST", &signout, None, &[("origin", "https://evil.example")])
        .await;
    assert_eq!(page.status, 403);
    // Another tab of this browser finishes a login (as bob) while alice's session is
    // still in the jar: alice's session ends, it is not left usable beside bob's.
    let tab = Browser::new();
    let start = tab.request("GET", &Url::parse(&home).expect("url"), None, &[]).await;
    let idp = start.location().expect("to the IdP");
    tab.set_cookie(&home, "__Host-oidc_session", &first);
    let pages = tab.login(idp.as_str(), "bob").await;
    assert_eq!(seen(&pages).header("x-auth-request-user").as_deref(), Some("bob"));
    assert_eq!(b.navigate(&home).await[0].status, 302, "the replaced session ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_claims_from_the_idp_get_a_page_not_a_crash() {
    let setup = Setup::start(Options::default()).await;
    let pages = Browser::new().login(&setup.url("/"), "eve").await;
    let last = pages.last().expect("page");
    assert_eq!(last.status, 502, "CR/LF in a claim: {}", last.body);
    assert_traced(last, "");
    let pages = Browser::new().login(&setup.url("/"), "crowd").await;
    let last = pages.last().expect("page");
    assert_eq!(last.status, 403, "5000 groups: {}", last.body);
    assert!(last.body.contains("more data"));
    assert_traced(last, "");
    let log = setup.envoy().log();
    assert!(log.contains("session_too_large"), "the log names the cause");
    let pages = Browser::new().login(&setup.url("/"), "comma").await;
    assert_eq!(
        seen(&pages).header("x-auth-request-groups").as_deref(),
        Some("admins,a%2Cb")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_honest_requests_keep_working() {
    let setup = Setup::start(Options::default()).await;
    // A deep link with encoded spaces survives the login.
    let pages = Browser::new().login(&setup.url("/my%20report?q=a%20b"), "alice").await;
    assert_eq!(seen(&pages).path(), "/my%20report?q=a%20b");
    // A non-UTF-8 byte in another cookie does not hide ours, and ours never leaks.
    let b = logged_in(&setup, "alice", "/").await;
    let session = b.cookie(&setup.url("/"), "__Host-oidc_session").expect("session");
    for path in ["/x", "/public/x"] {
        let mut headers = HeaderMap::new();
        let line = [b"junk=\xff; __Host-oidc_session=".as_slice(), session.as_bytes()].concat();
        headers.insert("cookie", HeaderValue::from_bytes(&line).expect("obs-text"));
        let r = client()
            .get(setup.url(path))
            .headers(headers)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{path}");
        let s = Seen(r.json().await.expect("echo"));
        let cookies = s.header_values("cookie").join("; ");
        assert!(!cookies.contains("oidc_session"), "{path}: ours leaked: {cookies}");
        if path == "/x" {
            assert_eq!(
                s.header("x-auth-request-user").as_deref(),
                Some("alice"),
                "our cookie was seen"
            );
        }
    }
    // Our own folder: what the filter does not serve is a 404, not the app's.
    let page = Browser::new()
        .request(
            "GET",
            &Url::parse(&setup.url("/oauth2/userinfo")).expect("url"),
            None,
            &[],
        )
        .await;
    assert_eq!(page.status, 404);
    assert_traced(&page, "");
}
