//! The fake OpenID Connect provider as a process, for the browser tests:
//!
//!     cargo run -p server --example fake_oidc -- [port]
//!
//! Port: first argument, else `FAKE_OIDC_PORT`, else 3190. Client credentials:
//! `FAKE_OIDC_CLIENT_ID` / `FAKE_OIDC_CLIENT_SECRET` (default `confide-test` /
//! `confide-test-secret`). Prints the issuer URL once listening, then serves until killed.

#[path = "../tests/common/fake_oidc.rs"]
mod fake_oidc;

use std::net::SocketAddr;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("FAKE_OIDC_PORT").ok())
        .map(|p| p.parse().expect("the port is a number"))
        .unwrap_or(3190);
    let client_id =
        std::env::var("FAKE_OIDC_CLIENT_ID").unwrap_or_else(|_| fake_oidc::CLIENT_ID.to_owned());
    let client_secret = std::env::var("FAKE_OIDC_CLIENT_SECRET")
        .unwrap_or_else(|_| fake_oidc::CLIENT_SECRET.to_owned());

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let provider = fake_oidc::FakeOidc::start_on(addr, &client_id, &client_secret)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    // Scripts wait for this line before pointing the app at the issuer.
    println!("{}", provider.issuer());
    tokio::signal::ctrl_c().await.expect("wait for Ctrl-C");
}
