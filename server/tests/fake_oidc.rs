//! The fake OpenID Connect provider against the `openidconnect` client, driven the way the
//! app drives it. What each trick yields, for the app's error messages:
//!
//! | trick / misuse           | fails at            | error                                                              |
//! |--------------------------|---------------------|--------------------------------------------------------------------|
//! | `wrong_audience`         | `id_token.claims()` | `ClaimsVerificationError::InvalidAudience`                         |
//! | `expired`                | `id_token.claims()` | `ClaimsVerificationError::Expired`                                 |
//! | `bad_signature`          | `id_token.claims()` | `ClaimsVerificationError::SignatureVerification(CryptoError)`      |
//! | `wrong_nonce`            | `id_token.claims()` | `ClaimsVerificationError::InvalidNonce`                            |
//! | `wrong_issuer`           | `id_token.claims()` | `ClaimsVerificationError::InvalidIssuer`                           |
//! | code replayed            | `exchange_code()`   | `RequestTokenError::ServerResponse` with `invalid_grant`           |
//! | wrong PKCE verifier      | `exchange_code()`   | `RequestTokenError::ServerResponse` with `invalid_grant`           |
//! | wrong client secret      | `exchange_code()`   | `RequestTokenError::ServerResponse` with `invalid_client` (401)    |

mod common;

use common::fake_oidc::{FakeOidc, Trick, email_for, name_for};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, SignatureVerificationError, StandardErrorResponse, TokenResponse,
    core::{
        CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdTokenClaims,
        CoreProviderMetadata, CoreTokenResponse,
    },
    reqwest,
};
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:3000/auth/callback";

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
type ExchangeError = RequestTokenError<
    HttpClientError<reqwest::Error>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

/// The relying party's half, as the app will hold it.
struct Rp {
    http: reqwest::Client,
    client: Client,
}

/// What the browser brings back to the callback, plus what the app kept in its session.
struct Callback {
    code: AuthorizationCode,
    verifier: PkceCodeVerifier,
    nonce: Nonce,
}

async fn discover(op: &FakeOidc, secret: &str) -> Rp {
    // Redirects off: an OAuth client must never follow them (SSRF, leaking codes).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let issuer = IssuerUrl::new(op.issuer().to_owned()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery succeeds");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(op.client_id().to_owned()),
        Some(ClientSecret::new(secret.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    Rp { http, client }
}

impl Rp {
    /// The authorization request, without following the provider's redirect.
    fn authorize_url(&self) -> (Url, CsrfToken, Nonce, PkceCodeVerifier) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        (url, state, nonce, verifier)
    }

    /// Signs in as `sub` with `trick`, as the browser would after picking them in the form.
    async fn sign_in(&self, sub: &str, trick: Trick) -> Callback {
        let (url, state, nonce, verifier) = self.authorize_url();
        let url = format!("{url}&sub={sub}&trick={}", trick.as_str());
        let res = self.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::FOUND);
        let location = res.headers()[reqwest::header::LOCATION].to_str().unwrap();
        assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
        let location = Url::parse(location).unwrap();
        let query = |name: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no {name} in {location}"))
        };
        assert_eq!(
            &query("state"),
            state.secret(),
            "state comes back unchanged"
        );
        Callback {
            code: AuthorizationCode::new(query("code")),
            verifier,
            nonce,
        }
    }

    async fn exchange(
        &self,
        code: AuthorizationCode,
        verifier: PkceCodeVerifier,
    ) -> Result<CoreTokenResponse, ExchangeError> {
        self.client
            .exchange_code(code)
            .expect("discovery gave a token endpoint")
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
    }

    fn verify(
        &self,
        tokens: &CoreTokenResponse,
        nonce: &Nonce,
    ) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
        tokens
            .id_token()
            .expect("an ID token")
            .claims(&self.client.id_token_verifier(), nonce)
            .cloned()
    }

    /// The whole flow, up to verified claims.
    async fn log_in(
        &self,
        sub: &str,
        trick: Trick,
    ) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
        let cb = self.sign_in(sub, trick).await;
        let tokens = self
            .exchange(cb.code, cb.verifier)
            .await
            .expect("the code exchange succeeds");
        self.verify(&tokens, &cb.nonce)
    }
}

fn oauth_error(e: ExchangeError) -> CoreErrorResponseType {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

#[tokio::test]
async fn happy_path_yields_the_chosen_user() {
    let op = FakeOidc::start().await;
    let rp = discover(&op, op.client_secret()).await;
    let cb = rp.sign_in("alice", Trick::None).await;
    let tokens = rp.exchange(cb.code, cb.verifier).await.unwrap();
    assert!(!tokens.access_token().secret().is_empty());
    let claims = rp.verify(&tokens, &cb.nonce).unwrap();
    assert_eq!(claims.subject().as_str(), "alice");
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some(email_for("alice").as_str())
    );
    assert_eq!(claims.email_verified(), Some(true));
    let name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str());
    assert_eq!(name, Some(name_for("alice").as_str()));
    assert_eq!(claims.audiences()[0].as_str(), "confide-test");
    assert_eq!(op.tokens_issued(), 1);
    assert_eq!(op.codes_outstanding(), 0);
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let op = FakeOidc::start().await;
    let mut rp = discover(&op, op.client_secret()).await;
    rp.client = rp.client.set_auth_type(AuthType::RequestBody);
    let claims = rp.log_in("bob", Trick::None).await.unwrap();
    assert_eq!(claims.subject().as_str(), "bob");
}

#[tokio::test]
async fn every_trick_fails_claims_verification() {
    let op = FakeOidc::start().await;
    let rp = discover(&op, op.client_secret()).await;
    for trick in Trick::ALL {
        let result = rp.log_in("mallory", trick).await;
        let expected = matches!(
            (trick, &result),
            (Trick::None, Ok(_))
                | (
                    Trick::WrongAudience,
                    Err(ClaimsVerificationError::InvalidAudience(_))
                )
                | (Trick::Expired, Err(ClaimsVerificationError::Expired(_)))
                | (
                    Trick::BadSignature,
                    Err(ClaimsVerificationError::SignatureVerification(
                        SignatureVerificationError::CryptoError(_),
                    )),
                )
                | (
                    Trick::WrongNonce,
                    Err(ClaimsVerificationError::InvalidNonce(_))
                )
                | (
                    Trick::WrongIssuer,
                    Err(ClaimsVerificationError::InvalidIssuer(_))
                )
        );
        assert!(expected, "{}: {result:?}", trick.as_str());
    }
    assert_eq!(op.tokens_issued(), Trick::ALL.len());
}

#[tokio::test]
async fn a_code_works_once() {
    let op = FakeOidc::start().await;
    let rp = discover(&op, op.client_secret()).await;
    let cb = rp.sign_in("alice", Trick::None).await;
    let first = rp.exchange(
        cb.code.clone(),
        PkceCodeVerifier::new(cb.verifier.secret().clone()),
    );
    first.await.expect("first use succeeds");
    let replay = rp.exchange(cb.code, cb.verifier).await.unwrap_err();
    assert_eq!(oauth_error(replay), CoreErrorResponseType::InvalidGrant);
    assert_eq!(op.tokens_issued(), 1);
}

#[tokio::test]
async fn a_wrong_pkce_verifier_fails_the_exchange() {
    let op = FakeOidc::start().await;
    let rp = discover(&op, op.client_secret()).await;
    let cb = rp.sign_in("alice", Trick::None).await;
    let (_, other_verifier) = PkceCodeChallenge::new_random_sha256();
    let err = rp.exchange(cb.code, other_verifier).await.unwrap_err();
    assert_eq!(oauth_error(err), CoreErrorResponseType::InvalidGrant);
    assert_eq!(op.tokens_issued(), 0);
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_without_burning_the_code() {
    let op = FakeOidc::start().await;
    let rp = discover(&op, "not-the-secret").await;
    let cb = rp.sign_in("alice", Trick::None).await;
    let err = rp.exchange(cb.code, cb.verifier).await.unwrap_err();
    assert_eq!(oauth_error(err), CoreErrorResponseType::InvalidClient);
    assert_eq!(op.codes_outstanding(), 1);
    assert_eq!(op.tokens_issued(), 0);
}

#[tokio::test]
async fn without_sub_the_provider_shows_a_sign_in_form() {
    let op = FakeOidc::start().await;
    let rp = discover(&op, op.client_secret()).await;
    let (url, state, nonce, _) = rp.authorize_url();
    let res = rp.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let html = res.text().await.unwrap();
    for needle in [
        r#"<form method="get" action="/authorize">"#,
        r#"<label for="sub">User</label>"#,
        r#"name="sub" id="sub""#,
        r#"<select name="trick" id="trick">"#,
        r#"<option value="bad_signature">"#,
        r#"<button type="submit">Sign in</button>"#,
        &format!(r#"name="state" value="{}""#, state.secret()),
        &format!(r#"name="nonce" value="{}""#, nonce.secret()),
        r#"name="code_challenge_method" value="S256""#,
    ] {
        assert!(html.contains(needle), "{needle} missing from\n{html}");
    }
    assert_eq!(op.codes_outstanding(), 0);
}

#[tokio::test]
async fn authorize_refuses_a_malformed_request() {
    let op = FakeOidc::start().await;
    let rp = discover(&op, op.client_secret()).await;
    let (url, ..) = rp.authorize_url();
    let without = |param: &str| {
        let mut url = url.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != param)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("sub", "alice");
        url
    };
    for param in [
        "client_id",
        "response_type",
        "code_challenge",
        "redirect_uri",
    ] {
        let res = rp.http.get(without(param)).send().await.unwrap();
        assert_eq!(
            res.status(),
            reqwest::StatusCode::BAD_REQUEST,
            "without {param}"
        );
    }
    let res = rp
        .http
        .get(format!("{url}&sub=alice&trick=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(op.codes_outstanding(), 0);
}
