//! A fake OpenID Connect provider (authorization code + PKCE) for tests: real discovery, a
//! real JWKS and real RS256 ID tokens, so the app's `openidconnect` client runs unmodified.
//! A test picks the user (`sub`) and, optionally, a [`Trick`] that spoils the ID token in one
//! specific way. Also built as `examples/fake_oidc.rs` for the browser tests.
//!
//! Test-only: the signing keys are committed fixtures and anyone may sign in as anyone.

// The example includes this file on its own and uses only part of it.
#![allow(dead_code)]

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, prelude::BASE64_STANDARD};
use openidconnect::{
    AccessToken, CsrfToken, JsonWebKeyId, PkceCodeChallenge, PkceCodeVerifier, PrivateSigningKey,
    core::{
        CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
        CoreRsaPrivateSigningKey,
    },
};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::{net::TcpListener, task::JoinHandle};
use url::{Url, form_urlencoded};

pub const CLIENT_ID: &str = "confide-test";
pub const CLIENT_SECRET: &str = "confide-test-secret";
pub const KEY_ID: &str = "test-key-1";

const PUBLISHED_KEY: &str = include_str!("../fixtures/fake_oidc_test_only_key.pem");
// Carries the same `kid` as the published key, so a client finds "its" key and must
// actually check the signature to notice.
const UNPUBLISHED_KEY: &str = include_str!("../fixtures/fake_oidc_test_only_unpublished_key.pem");

/// One way to spoil the ID token of a single sign-in, chosen at `/authorize`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trick {
    #[default]
    None,
    WrongAudience,
    Expired,
    BadSignature,
    WrongNonce,
    WrongIssuer,
}

impl Trick {
    pub const ALL: [Trick; 6] = [
        Trick::None,
        Trick::WrongAudience,
        Trick::Expired,
        Trick::BadSignature,
        Trick::WrongNonce,
        Trick::WrongIssuer,
    ];

    /// The value of the `trick` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Trick::None => "none",
            Trick::WrongAudience => "wrong_audience",
            Trick::Expired => "expired",
            Trick::BadSignature => "bad_signature",
            Trick::WrongNonce => "wrong_nonce",
            Trick::WrongIssuer => "wrong_issuer",
        }
    }

    pub fn parse(s: &str) -> Option<Trick> {
        Trick::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The e-mail address the provider asserts for `sub`.
pub fn email_for(sub: &str) -> String {
    format!("{sub}@example.com")
}

/// The display name the provider asserts for `sub` ("alice" → "Alice").
pub fn name_for(sub: &str) -> String {
    let mut chars = sub.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A running provider; it stops when dropped.
pub struct FakeOidc {
    provider: Arc<Provider>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeOidc {
    /// Starts on a random local port with [`CLIENT_ID`] and [`CLIENT_SECRET`].
    pub async fn start() -> FakeOidc {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        FakeOidc::start_on(addr, CLIENT_ID, CLIENT_SECRET)
            .await
            .expect("bind a free port")
    }

    /// Starts on `addr` (port 0 picks one); the issuer is `http://<bound address>`.
    pub async fn start_on(
        addr: SocketAddr,
        client_id: &str,
        client_secret: &str,
    ) -> std::io::Result<FakeOidc> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let kid = Some(JsonWebKeyId::new(KEY_ID.to_owned()));
        let provider = Arc::new(Provider {
            issuer: format!("http://{addr}"),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            key: CoreRsaPrivateSigningKey::from_pem(PUBLISHED_KEY, kid.clone())
                .expect("PKCS#1 test key"),
            unpublished_key: CoreRsaPrivateSigningKey::from_pem(UNPUBLISHED_KEY, kid)
                .expect("PKCS#1 test key"),
            grants: Mutex::default(),
            tokens_issued: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake OIDC serves");
        });
        Ok(FakeOidc {
            provider,
            addr,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash: ID tokens must match it exactly.
    pub fn issuer(&self) -> &str {
        &self.provider.issuer
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn client_id(&self) -> &str {
        &self.provider.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.provider.client_secret
    }

    /// Successful code exchanges so far (each yields one ID token).
    pub fn tokens_issued(&self) -> usize {
        self.provider.tokens_issued.load(Ordering::SeqCst)
    }

    /// Codes handed out at `/authorize` and not yet presented at `/token`.
    pub fn codes_outstanding(&self) -> usize {
        self.provider.grants.lock().unwrap().len()
    }
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
    key: CoreRsaPrivateSigningKey,
    unpublished_key: CoreRsaPrivateSigningKey,
    /// Authorization code → what it was issued for.
    grants: Mutex<HashMap<String, Grant>>,
    tokens_issued: AtomicUsize,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: String,
    sub: String,
    trick: Trick,
}

async fn discovery(State(p): State<Arc<Provider>>) -> Json<Value> {
    let issuer = &p.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified", "name"],
    }))
}

async fn jwks(State(p): State<Arc<Provider>>) -> Json<CoreJsonWebKeySet> {
    Json(CoreJsonWebKeySet::new(vec![p.key.as_verification_key()]))
}

async fn authorize(State(p): State<Arc<Provider>>, RawQuery(query): RawQuery) -> Response {
    let params: HashMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");

    if param("client_id") != p.client_id {
        return bad_request("unknown client_id");
    }
    if param("response_type") != "code" {
        return bad_request("response_type must be code");
    }
    if !param("scope").split(' ').any(|s| s == "openid") {
        return bad_request("scope must include openid");
    }
    let Ok(mut location) = Url::parse(param("redirect_uri")) else {
        return bad_request("redirect_uri must be an absolute URL");
    };
    if param("code_challenge").is_empty() || param("code_challenge_method") != "S256" {
        return bad_request("PKCE with code_challenge_method=S256 is required");
    }
    let trick = match params.get("trick") {
        None => Trick::None,
        Some(t) => match Trick::parse(t) {
            Some(trick) => trick,
            None => return bad_request("unknown trick"),
        },
    };
    let sub = param("sub");
    if sub.is_empty() {
        return sign_in_form(&params, trick).into_response();
    }

    let code = CsrfToken::new_random().into_secret();
    let grant = Grant {
        client_id: p.client_id.clone(),
        redirect_uri: param("redirect_uri").to_owned(),
        nonce: params.get("nonce").cloned(),
        code_challenge: param("code_challenge").to_owned(),
        sub: sub.to_owned(),
        trick,
    };
    p.grants.lock().unwrap().insert(code.clone(), grant);

    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = params.get("state") {
        location.query_pairs_mut().append_pair("state", state);
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// What a person sees at `/authorize`: pick any user, and optionally a trick.
fn sign_in_form(params: &HashMap<String, String>, trick: Trick) -> Html<String> {
    let hidden: String = params
        .iter()
        .filter(|(name, _)| *name != "sub" && *name != "trick")
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(name),
                escape(value)
            )
        })
        .collect();
    let options: String = Trick::ALL
        .iter()
        .map(|t| {
            let selected = if *t == trick { " selected" } else { "" };
            format!(r#"<option value="{0}"{selected}>{0}</option>"#, t.as_str())
        })
        .collect();
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Fake OpenID provider</title></head>
<body>
<h1>Fake OpenID provider</h1>
<p>For tests only: sign in as anyone.</p>
<form method="get" action="/authorize">
{hidden}
<p><label for="sub">User</label> <input type="text" name="sub" id="sub" placeholder="alice" required autofocus></p>
<p><label for="trick">Trick</label> <select name="trick" id="trick">{options}</select></p>
<p><button type="submit">Sign in</button></p>
</form>
</body>
</html>
"#
    ))
}

async fn token(State(p): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);

    let credentials = basic_credentials(&headers).or_else(|| {
        Some((
            field("client_id")?.to_owned(),
            field("client_secret")?.to_owned(),
        ))
    });
    // Checked before the code is looked up, so a misconfigured client does not burn codes.
    if credentials != Some((p.client_id.clone(), p.client_secret.clone())) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    if field("grant_type") != Some("authorization_code") {
        return oauth_error("unsupported_grant_type");
    }
    // Removed on first presentation, right or wrong: a code never gets a second try.
    let Some(grant) = field("code").and_then(|c| p.grants.lock().unwrap().remove(c)) else {
        return oauth_error("invalid_grant");
    };
    if grant.client_id != p.client_id || field("redirect_uri") != Some(grant.redirect_uri.as_str())
    {
        return oauth_error("invalid_grant");
    }
    let Some(verifier) = field("code_verifier") else {
        return oauth_error("invalid_grant");
    };
    let challenge =
        PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.to_owned()));
    if challenge.as_str() != grant.code_challenge {
        return oauth_error("invalid_grant");
    }

    let access_token = AccessToken::new(CsrfToken::new_random().into_secret());
    let id_token = p.id_token(&grant, &access_token);
    p.tokens_issued.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access_token.secret(),
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": id_token,
        })),
    )
        .into_response()
}

impl Provider {
    fn id_token(&self, grant: &Grant, access_token: &AccessToken) -> CoreIdToken {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let trick = grant.trick;
        let (iat, exp) = match trick {
            Trick::Expired => (now - 3600, now - 3600 + 300),
            _ => (now, now + 300),
        };
        let audience = match trick {
            Trick::WrongAudience => "some-other-client",
            _ => &grant.client_id,
        };
        let issuer = match trick {
            Trick::WrongIssuer => "http://wrong-issuer.example",
            _ => &self.issuer,
        };
        let mut claims = json!({
            "iss": issuer,
            "sub": grant.sub,
            "aud": [audience],
            "exp": exp,
            "iat": iat,
            "email": email_for(&grant.sub),
            "email_verified": true,
            "name": name_for(&grant.sub),
        });
        let nonce = match trick {
            Trick::WrongNonce => Some("not-the-nonce-you-sent"),
            _ => grant.nonce.as_deref(),
        };
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        // Built from JSON because the claim constructors want `chrono` types.
        let claims: CoreIdTokenClaims = serde_json::from_value(claims).expect("valid ID claims");
        let key = match trick {
            Trick::BadSignature => &self.unpublished_key,
            _ => &self.key,
        };
        CoreIdToken::new(
            claims,
            key,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Some(access_token),
            None,
        )
        .expect("RS256 signing")
    }
}

/// `Authorization: Basic`, whose halves RFC 6749 §2.3.1 form-encodes before joining.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = BASE64_STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    let unform = |s: &str| -> String {
        form_urlencoded::parse(s.as_bytes())
            .map(|(k, _)| k)
            .collect()
    };
    Some((unform(id), unform(secret)))
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
