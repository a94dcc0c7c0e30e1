//! OpenID Connect sign-in against a fake provider on a random port that signs real RS256
//! ID tokens: the full flow, and every way an answer can be wrong, each refused with a
//! clear error and no session change.

mod common;

use common::{
    Browser, Reply, TestApp,
    fake_oidc::{FakeOidc, Trick},
    spawn_with,
};
use confide_core::auth::oidc::ProviderConfig;
use reqwest::StatusCode;
use serde_json::json;
use server::Config;

async fn app_with(op: &FakeOidc) -> TestApp {
    spawn_with(Config {
        oidc: vec![ProviderConfig {
            id: "fake".into(),
            name: "Fake ID".into(),
            issuer: op.issuer().to_owned(),
            client_id: op.client_id().to_owned(),
            client_secret: Some(op.client_secret().to_owned()),
            scopes: vec!["email".into()],
        }],
        ..Config::default()
    })
    .await
}

async fn started(app: &TestApp) -> Browser {
    let mut b = Browser::new();
    assert_eq!(b.start(app).await.status, StatusCode::OK);
    b
}

/// Starts a sign-in in `b` and plays the provider's part for `sub`: returns the code and
/// state the provider sends back to the callback page.
async fn authorize(app: &TestApp, b: &mut Browser, sub: &str, trick: Trick) -> (String, String) {
    let r = b
        .call(app, "auth/oidc/start", json!({ "provider": "fake" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let url = r.body.as_str().unwrap();
    assert!(url.contains("code_challenge_method=S256"), "PKCE: {url}");
    assert!(url.contains("nonce="), "{url}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .get(format!("{url}&sub={sub}&trick={}", trick.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/auth/callback");
    assert_eq!(
        location.origin().ascii_serialization(),
        app.base,
        "back to this app"
    );
    let param = |k: &str| {
        location
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    (param("code"), param("state"))
}

async fn finish(app: &TestApp, b: &mut Browser, code: &str, state: &str) -> Reply {
    b.call(
        app,
        "auth/oidc/finish",
        json!({ "code": code, "state": state }),
    )
    .await
}

/// The browser is still its anonymous self: same id, same proof, nobody signed in.
async fn unchanged(app: &TestApp, b: &mut Browser, before: &Browser, r: &Reply) {
    assert!(
        r.issued_proof().is_none(),
        "no new session: {:?}",
        r.headers
    );
    assert_eq!(b.sid, before.sid);
    assert_eq!(b.proof, before.proof);
    let me = b.call(app, "auth/me", json!({})).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body, json!(null), "still anonymous");
}

#[tokio::test]
async fn the_full_flow_signs_in_and_renews_the_session() {
    let op = FakeOidc::start().await;
    let app = app_with(&op).await;
    let mut b = started(&app).await;
    let before = b.clone();
    let (code, state) = authorize(&app, &mut b, "alice", Trick::None).await;
    let r = finish(&app, &mut b, &code, &state).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["account"]["name"], "alice@example.com");
    assert_eq!(r.body["account"]["method"], "oidc");
    b.sid = r.body["session_id"].as_str().unwrap().to_owned();
    assert_ne!(b.sid, before.sid);
    assert_eq!(op.tokens_issued(), 1);
    let me = b.call(&app, "auth/me", json!({})).await;
    assert_eq!(me.body["name"], "alice@example.com");

    // The pre-login pair is dead.
    let mut old = before.clone();
    assert_eq!(old.get_note(&app).await.code(), "session_ended");

    // The same person in another browser gets the same account; someone else does not.
    let mut other = started(&app).await;
    let (code, state) = authorize(&app, &mut other, "alice", Trick::None).await;
    let r = finish(&app, &mut other, &code, &state).await;
    other.sid = r.body["session_id"].as_str().unwrap().to_owned();
    let sent = b
        .call(
            &app,
            "messages/send",
            json!({ "content": "hello from one browser" }),
        )
        .await;
    let thread = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let seen = other
        .call(&app, "threads/get", json!({ "thread_id": thread }))
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);

    let mut bob = started(&app).await;
    let (code, state) = authorize(&app, &mut bob, "bob", Trick::None).await;
    let r = finish(&app, &mut bob, &code, &state).await;
    bob.sid = r.body["session_id"].as_str().unwrap().to_owned();
    let seen = bob
        .call(&app, "threads/get", json!({ "thread_id": thread }))
        .await;
    assert_eq!(seen.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_id_tokens_are_refused_with_a_clear_error_and_no_session() {
    let op = FakeOidc::start().await;
    let app = app_with(&op).await;
    for (trick, words) in [
        (Trick::WrongAudience, "another application"),
        (Trick::Expired, "expired"),
        (Trick::BadSignature, "signature"),
        (Trick::WrongNonce, "nonce"),
        (Trick::WrongIssuer, "issuer"),
    ] {
        let mut b = started(&app).await;
        let before = b.clone();
        let (code, state) = authorize(&app, &mut b, "eve", trick).await;
        let r = finish(&app, &mut b, &code, &state).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{trick:?}: {}", r.body);
        assert_eq!(r.code(), "oidc_failed", "{trick:?}");
        assert!(
            r.body["message"].as_str().unwrap().contains(words),
            "{trick:?}: {}",
            r.body
        );
        unchanged(&app, &mut b, &before, &r).await;
    }
}

#[tokio::test]
async fn a_tampered_or_foreign_state_is_refused() {
    let op = FakeOidc::start().await;
    let app = app_with(&op).await;
    let mut b = started(&app).await;
    let before = b.clone();
    let (code, state) = authorize(&app, &mut b, "alice", Trick::None).await;
    let r = finish(&app, &mut b, &code, &format!("{state}x")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.code(), "invalid_state");
    unchanged(&app, &mut b, &before, &r).await;
    // The sign-in was used up by the failed attempt: the right state no longer works.
    let r = finish(&app, &mut b, &code, &state).await;
    assert_eq!(r.code(), "invalid_state");
    assert_eq!(op.tokens_issued(), 0, "the code never reached the provider");

    // A state started by another browser session is not this session's.
    let mut victim = started(&app).await;
    let mut attacker = started(&app).await;
    let (code, state) = authorize(&app, &mut attacker, "mallory", Trick::None).await;
    let before = victim.clone();
    let r = finish(&app, &mut victim, &code, &state).await;
    assert_eq!(r.code(), "invalid_state");
    unchanged(&app, &mut victim, &before, &r).await;
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let op = FakeOidc::start().await;
    let app = app_with(&op).await;
    let mut b = started(&app).await;
    let (code, state) = authorize(&app, &mut b, "alice", Trick::None).await;
    let r = finish(&app, &mut b, &code, &state).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The same answer again, in the new session: nothing pending there.
    b.sid = r.body["session_id"].as_str().unwrap().to_owned();
    let r = finish(&app, &mut b, &code, &state).await;
    assert_eq!(r.code(), "invalid_state");

    // The code with a fresh, valid state: the provider refuses the second use.
    let mut c = started(&app).await;
    let before = c.clone();
    let (_, fresh_state) = authorize(&app, &mut c, "alice", Trick::None).await;
    let r = finish(&app, &mut c, &code, &fresh_state).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "oidc_failed");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant")
    );
    unchanged(&app, &mut c, &before, &r).await;
    assert_eq!(op.tokens_issued(), 1);
}

#[tokio::test]
async fn an_unreachable_provider_fails_its_own_sign_ins_only() {
    let port = common::free_port();
    let app = spawn_with(Config {
        oidc: vec![ProviderConfig {
            id: "down".into(),
            name: "Down".into(),
            issuer: format!("http://127.0.0.1:{port}"),
            client_id: "x".into(),
            client_secret: None,
            scopes: vec![],
        }],
        ..Config::default()
    })
    .await;
    let mut b = started(&app).await;
    let r = b
        .call(&app, "auth/oidc/start", json!({ "provider": "down" }))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.code(), "provider_unavailable");
    let r = b
        .call(&app, "auth/oidc/start", json!({ "provider": "nope" }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let options = b.call(&app, "auth/options", json!({})).await;
    assert_eq!(options.body["providers"][0]["name"], "Down");
    assert_eq!(b.get_note(&app).await.status, StatusCode::OK);
}
