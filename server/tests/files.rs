//! Attachments over HTTP: upload, download, sending with a message, and everything a
//! stranger might try against them.

mod common;

use common::{Browser, TestApp, ok, send, settled, spawn_with, started};
use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};
use server::Config;
use std::time::Duration;

const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

async fn app() -> TestApp {
    let mut config = Config {
        echo_delay: Duration::from_millis(1),
        ..Config::default()
    };
    config.files.max_file_bytes = 100 * 1024;
    config.files.max_session_bytes = 300 * 1024;
    config.files.max_files_per_message = 3;
    spawn_with(config).await
}

async fn upload(app: &TestApp, b: &Browser, name: &str, bytes: &[u8]) -> common::Reply {
    let part = multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned());
    let form = multipart::Form::new().part("file", part);
    send(
        app.http
            .post(format!("{}/api/files", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .multipart(form),
    )
    .await
}

async fn b_discard(app: &TestApp, b: &Browser, id: &Value) -> common::Reply {
    let mut b = b.clone();
    b.call(app, "files/discard", json!({ "file_id": id })).await
}

async fn download(app: &TestApp, b: &Browser, id: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/api/files/{id}", app.base))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_session_sees_only_its_own_files() {
    let app = app().await;
    let (alice, bob) = (started(&app).await, started(&app).await);
    let a = ok(upload(&app, &alice, "alice.txt", b"alice's secret").await);
    let b = ok(upload(&app, &bob, "bob.png", PNG_1X1).await);
    assert_eq!(a["mime"], "text/plain");
    assert_eq!(b["mime"], "image/png");
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let own = download(&app, &alice, a_id).await;
    assert_eq!(own.status(), StatusCode::OK);
    let h = own.headers().clone();
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert!(h["cache-control"].to_str().unwrap().contains("no-store"));
    assert_eq!(own.bytes().await.unwrap().as_ref(), b"alice's secret");
    let pic = download(&app, &bob, b_id).await;
    assert!(
        pic.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );

    // Another session's id, a made-up one and a malformed one answer alike.
    let foreign = download(&app, &bob, a_id).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let foreign_body = foreign.text().await.unwrap();
    let madeup = download(&app, &bob, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(madeup.status(), StatusCode::NOT_FOUND);
    assert_eq!(madeup.text().await.unwrap(), foreign_body);
    for odd in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "A8F0C2E4-0000-4000-8000-000000000000",
    ] {
        assert_eq!(
            download(&app, &bob, odd).await.status(),
            StatusCode::NOT_FOUND,
            "{odd}"
        );
    }
    // Without the proof, the id alone is nothing.
    let mut thief = Browser::new();
    thief.sid = alice.sid.clone();
    assert_ne!(download(&app, &thief, a_id).await.status(), StatusCode::OK);
    // Nor can a message of Bob's carry Alice's file.
    let mut bob = bob;
    let r = bob
        .call(
            &app,
            "messages/send",
            json!({ "content": "mine now", "files": [a_id] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
}

#[tokio::test]
async fn a_message_carries_its_files_to_the_assistant_and_the_export() {
    let app = app().await;
    let mut b = started(&app).await;
    let t = ok(upload(&app, &b, "notes.md", b"# Plan\n\n- ship").await);
    let p = ok(upload(&app, &b, "shot.png", PNG_1X1).await);
    let sent = ok(b
        .call(
            &app,
            "messages/send",
            json!({ "content": "", "files": [t["id"], p["id"]] }),
        )
        .await);
    let thread = sent["thread"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        sent["thread"]["title"], "notes.md",
        "named after the first file"
    );
    assert_eq!(sent["user"]["attachments"].as_array().unwrap().len(), 2);
    let view = settled(&app, &mut b, &thread).await;
    let reply = view["messages"][1]["content"].as_str().unwrap();
    assert!(reply.contains("I received 2 files"), "{reply}");
    assert!(
        reply.contains("`notes.md` (text/markdown, 14 B)"),
        "{reply}"
    );
    assert!(reply.contains("`shot.png` (image/png"), "{reply}");
    // Once sent, a file belongs to its message: not sent again, not discarded.
    let again = b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": thread, "content": "x", "files": [t["id"]] }),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{:?}", again.body);
    let discard = b
        .call(&app, "files/discard", json!({ "file_id": t["id"] }))
        .await;
    assert_eq!(discard.status, StatusCode::BAD_REQUEST);

    let md = ok(b
        .call(
            &app,
            "threads/export",
            json!({ "thread_id": thread, "format": "markdown" }),
        )
        .await);
    let text = md["content"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "[notes.md](/api/files/{})",
            t["id"].as_str().unwrap()
        )),
        "{text}"
    );
    let json_export = ok(b
        .call(
            &app,
            "threads/export",
            json!({ "thread_id": thread, "format": "json" }),
        )
        .await);
    let parsed: Value = serde_json::from_str(json_export["content"].as_str().unwrap()).unwrap();
    assert_eq!(parsed["messages"][0]["attachments"][1]["mime"], "image/png");
    assert_eq!(
        parsed["files"][0]["url"],
        format!("/api/files/{}", t["id"].as_str().unwrap())
    );

    // A reply can attach a file of its own, which the session then downloads.
    let sent = ok(b
        .call(
            &app,
            "messages/send",
            json!({ "thread_id": thread, "content": "/attach hello file" }),
        )
        .await);
    let _ = sent;
    let view = settled(&app, &mut b, &thread).await;
    let last = view["messages"].as_array().unwrap().last().unwrap().clone();
    let note = &last["attachments"][0];
    assert_eq!(note["name"], "note.txt");
    let got = download(&app, &b, note["id"].as_str().unwrap()).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"hello file");

    // Deleting the chat deletes its files.
    ok(
        b.call(&app, "threads/delete", json!({ "thread_id": thread }))
            .await,
    );
    for id in [&t["id"], &p["id"], &note["id"]] {
        assert_eq!(
            download(&app, &b, id.as_str().unwrap()).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn hostile_uploads_are_refused_and_keep_nothing() {
    let app = app().await;
    let b = started(&app).await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "empty.txt",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "big.txt",
            vec![b'a'; 101 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "cat.png",
            b"MZ\x90\0\x03\0\0\0\x04\0\0\0".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "fake.png",
            b"\x89PNG\r\n\x1a\nthis is no image".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ];
    for (name, bytes, status, code) in cases {
        let r = upload(&app, &b, name, &bytes).await;
        assert_eq!((r.status, r.code()), (status, code), "{name}: {:?}", r.body);
    }
    // A file of exactly the limit passes (its request is longer, by the form around it).
    let r = ok(upload(&app, &b, "exact.txt", &vec![b'a'; 100 * 1024]).await);
    assert_eq!(r["size"], 100 * 1024);
    ok(b_discard(&app, &b, &r["id"]).await);

    // Names from a path, with controls or look-alikes, are cleaned; nothing is a path.
    for (raw, clean) in [
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("evil\u{202E}gnp.txt", "evilgnp.txt"),
        ("\u{E000}\u{200B}.htaccess", "htaccess"),
        ("%2e%2e%2fx.txt", "%2e%2e%2fx.txt"),
    ] {
        let r = ok(upload(&app, &b, raw, b"text").await);
        assert_eq!(r["name"], clean, "{raw:?}");
    }
    // A picture with a page after it (a polyglot) is a picture: served as one, inline, with
    // nosniff and a sandbox, so the page part never runs.
    let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec();
    gif.extend_from_slice(b"<html><script>alert(document.cookie)</script></html>");
    let r = ok(upload(&app, &b, "poly.html", &gif).await);
    assert_eq!(r["mime"], "image/gif");
    let served = download(&app, &b, r["id"].as_str().unwrap()).await;
    let h = served.headers();
    assert_eq!(h["content-type"], "image/gif");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );

    // HTML is text here: kept and served as text/plain, never as a page.
    let r = ok(upload(
        &app,
        &b,
        "page.html",
        b"<html><script>alert(1)</script></html>",
    )
    .await);
    assert_eq!(r["mime"], "text/plain");
    let served = download(&app, &b, r["id"].as_str().unwrap()).await;
    assert_eq!(
        served.headers()["content-type"],
        "text/plain; charset=utf-8"
    );

    // Not multipart, no custom header, cross-site: refused before any byte is read.
    let plain = send(
        app.http
            .post(format!("{}/api/files", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("content-type", "text/plain")
            .body("hello"),
    )
    .await;
    assert_eq!(plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let part = multipart::Part::bytes(b"x".to_vec()).file_name("x.txt");
    let no_header = send(
        app.http
            .post(format!("{}/api/files", app.base))
            .header("cookie", b.cookie_header())
            .multipart(multipart::Form::new().part("file", part)),
    )
    .await;
    assert_eq!(
        (no_header.status, no_header.code()),
        (StatusCode::FORBIDDEN, "csrf_rejected")
    );
    let part = multipart::Part::bytes(b"x".to_vec()).file_name("x.txt");
    let cross = send(
        app.http
            .post(format!("{}/api/files", app.base))
            .header("x-confide-session", &b.sid)
            .header("cookie", b.cookie_header())
            .header("sec-fetch-site", "cross-site")
            .multipart(multipart::Form::new().part("file", part)),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    // A session that does not exist yet cannot upload (an upload never claims).
    let stranger = Browser::new();
    let r = upload(&app, &stranger, "x.txt", b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
}

#[tokio::test]
async fn concurrent_uploads_stop_at_the_session_limit() {
    let app = app().await;
    let b = started(&app).await;
    // 90 kB each against 300 kB in all: three fit, whatever the order.
    let tries = (0..6).map(|i| {
        let (app, b) = (&app, &b);
        async move { upload(app, b, &format!("{i}.txt"), &vec![b'a'; 90 * 1024]).await }
    });
    let results = futures::future::join_all(tries).await;
    let kept = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!((1..=3).contains(&kept), "{kept} kept");
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "limit_reached"),
            "{:?}",
            r.body
        );
    }
    // Taking one off makes room again.
    let first = results.iter().find(|r| r.status == StatusCode::OK).unwrap();
    let mut b = b;
    ok(b.call(
        &app,
        "files/discard",
        json!({ "file_id": first.body["id"] }),
    )
    .await);
    ok(upload(&app, &b, "again.txt", &vec![b'a'; 90 * 1024]).await);
}

#[tokio::test]
async fn forgetting_the_browser_forgets_its_files() {
    let app = app().await;
    let mut b = started(&app).await;
    let f = ok(upload(&app, &b, "a.txt", b"gone soon").await);
    let id = f["id"].as_str().unwrap().to_owned();
    ok(b.call(&app, "session/forget", json!({})).await);
    // The old session is over; a new one in the same browser finds nothing.
    let mut fresh = Browser::new();
    assert_eq!(fresh.start(&app).await.status, StatusCode::OK);
    assert_eq!(
        download(&app, &fresh, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.state_files_kept(&b.sid).await, 0);
}

#[tokio::test]
async fn signing_in_keeps_the_chats_files_and_an_edit_drops_the_files_it_drops() {
    let mut config = Config {
        echo_delay: Duration::from_millis(1),
        auth_password: true,
        auth_registration: true,
        ..Config::default()
    };
    config.files.max_file_bytes = 100 * 1024;
    let app = spawn_with(config).await;
    let mut b = started(&app).await;
    let first = ok(upload(&app, &b, "first.txt", b"one").await);
    let second = ok(upload(&app, &b, "second.txt", b"two").await);
    let sent = ok(b
        .call(
            &app,
            "messages/send",
            json!({ "content": "a", "files": [first["id"]] }),
        )
        .await);
    let thread = sent["thread"]["id"].as_str().unwrap().to_owned();
    let user_msg = sent["user"]["id"].clone();
    settled(&app, &mut b, &thread).await;
    ok(b.call(
        &app,
        "messages/send",
        json!({ "thread_id": thread, "content": "b", "files": [second["id"]] }),
    )
    .await);
    settled(&app, &mut b, &thread).await;

    // Registering (a sign-in) replaces the session; the chat and its files come along.
    let r = b
        .call(
            &app,
            "auth/register",
            json!({ "username": "filer", "password": common::PW }),
        )
        .await;
    common::adopt(&mut b, &r);
    for (f, text) in [(&first, "one"), (&second, "two")] {
        let got = download(&app, &b, f["id"].as_str().unwrap()).await;
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.text().await.unwrap(), text);
    }

    // Editing the first message drops the second turn, and with it the second file.
    ok(b.call(
        &app,
        "messages/edit",
        json!({ "message_id": user_msg, "content": "a again" }),
    )
    .await);
    settled(&app, &mut b, &thread).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = download(&app, &b, second["id"].as_str().unwrap())
            .await
            .status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped file is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kept = download(&app, &b, first["id"].as_str().unwrap()).await;
    assert_eq!(
        kept.status(),
        StatusCode::OK,
        "the edited message keeps its own file"
    );

    // Removing the account (`confide user remove`) removes its files with its chats.
    let home = confide_core::SessionId::home("password", "filer");
    let files = app.files.as_ref().unwrap();
    assert_eq!(files.count_kept(&home).await.unwrap(), 1);
    let auth = app.auth.as_ref().unwrap();
    assert!(auth.remove_user("filer").await.unwrap());
    assert_eq!(files.count_kept(&home).await.unwrap(), 0);
}

/// The `upload` fuzz target's seeds (`fuzz/corpus/upload/`), sent as they are: each answered
/// with a clear status, never a 500, and the server keeps serving.
#[tokio::test]
async fn malformed_multipart_bodies_get_clear_answers() {
    let app = app().await;
    let b = started(&app).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/upload");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let body = std::fs::read(entry.unwrap().path()).unwrap();
        for bytes in [
            body.clone(),
            body[..body.len() / 2].to_vec(),
            b"--fuzzboundary".to_vec(),
        ] {
            let r = send(
                app.http
                    .post(format!("{}/api/files", app.base))
                    .header("x-confide-session", &b.sid)
                    .header("cookie", b.cookie_header())
                    .header("content-type", "multipart/form-data; boundary=fuzzboundary")
                    .body(bytes),
            )
            .await;
            assert!(
                r.status == StatusCode::OK || r.status.is_client_error(),
                "{}: {:?}",
                r.status,
                r.body
            );
            if r.status == StatusCode::OK {
                let name = r.body["name"].as_str().unwrap();
                assert!(!name.contains(['/', '\\']), "{name}");
            } else {
                assert!(!r.code().is_empty(), "a JSON error: {:?}", r.body);
            }
            seen += 1;
        }
    }
    assert!(seen >= 9);
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
