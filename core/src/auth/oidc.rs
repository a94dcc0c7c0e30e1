//! OpenID Connect: authorization code flow with PKCE, through the `openidconnect` crate.
//!
//! The state, nonce and PKCE verifier of a sign-in in progress live in the pre-login
//! session itself (one value, taken exactly once), not in a table shared by everyone: an
//! answer from the provider is accepted only by the browser session that started it.

use super::{Auth, PROVIDER_TIMEOUT, VerifiedSession};
use crate::{ApiError, ErrorCode, SessionId, store::now_ms};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

/// Value key of the sign-in in progress, in the pre-login session.
const PENDING_KEY: &str = "confide:oidc";
/// How long a started sign-in may take at the provider.
const PENDING_TTL_MS: i64 = 10 * 60 * 1000;
/// Provider metadata and keys are fetched again after this long, so key rotation is picked up.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// One configured provider.
#[derive(Clone, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// Short name in URLs and the store: `[a-z0-9_-]+`.
    pub id: String,
    /// Label on the sign-in button.
    pub name: String,
    /// The provider's issuer URL: where discovery starts, and what its ID tokens must name.
    pub issuer: String,
    /// The client id Confide is registered under at the provider.
    pub client_id: String,
    /// The client secret, if the provider issued one; `None` for a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

// The secret stays out of logs and error messages.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

struct Provider {
    config: ProviderConfig,
    issuer: IssuerUrl,
    metadata: Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

pub(crate) struct Providers {
    list: Vec<Provider>,
    redirect: RedirectUrl,
    http: reqwest::Client,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    keep_threads: bool,
    started_ms: i64,
}

fn oidc_failed(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::OidcFailed, msg)
}

fn unavailable(provider: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ProviderUnavailable,
        format!("{provider} could not be reached; try again shortly"),
    )
}

impl Providers {
    pub(crate) fn new(config: &super::AuthConfig) -> Result<Self, String> {
        let redirect = RedirectUrl::new(format!("{}/auth/callback", config.public_origin))
            .map_err(|e| format!("bad public URL for the OIDC redirect: {e}"))?;
        let mut list = Vec::new();
        for p in &config.oidc {
            let id_ok = !p.id.is_empty()
                && p.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !id_ok {
                return Err(format!("OIDC provider id {:?} must be [a-z0-9_-]+", p.id));
            }
            if list.iter().any(|q: &Provider| q.config.id == p.id) {
                return Err(format!("OIDC provider id {:?} is used twice", p.id));
            }
            let issuer = IssuerUrl::new(p.issuer.clone())
                .map_err(|e| format!("OIDC provider {:?}: bad issuer URL: {e}", p.id))?;
            list.push(Provider {
                config: p.clone(),
                issuer,
                metadata: Mutex::new(None),
            });
        }
        // Redirects are never followed: a provider must answer where discovery says, and a
        // redirect to an internal address must not turn Confide into a proxy.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for OIDC: {e}"))?;
        Ok(Self {
            list,
            redirect,
            http,
        })
    }

    pub(crate) fn buttons(&self) -> Vec<crate::model::ProviderButton> {
        self.list
            .iter()
            .map(|p| crate::model::ProviderButton {
                id: p.config.id.clone(),
                name: p.config.name.clone(),
            })
            .collect()
    }

    fn find(&self, id: &str) -> Result<&Provider, ApiError> {
        self.list
            .iter()
            .find(|p| p.config.id == id)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such sign-in provider"))
    }

    /// Discovery (with the provider's keys), fetched lazily and cached: Confide starts even
    /// when a provider is down, and a provider's outage fails only its own sign-ins.
    async fn client(
        &self,
        p: &Provider,
        refresh: bool,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        ApiError,
    > {
        let mut cached = p.metadata.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(_, at)| !refresh && at.elapsed() < METADATA_TTL);
        if !fresh {
            let m = CoreProviderMetadata::discover_async(p.issuer.clone(), &self.http)
                .await
                .map_err(|e| {
                    tracing::warn!(provider = %p.config.id, error = %e, "OIDC discovery failed");
                    unavailable(&p.config.name)
                })?;
            *cached = Some((m, Instant::now()));
        }
        let Some((metadata, _)) = cached.as_ref() else {
            return Err(unavailable(&p.config.name));
        };
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(p.config.client_id.clone()),
            p.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone()))
    }
}

impl Auth {
    /// Starts a sign-in with `provider`: remembers state, nonce and PKCE verifier in this
    /// session and returns the provider's authorization URL for the browser to visit.
    pub async fn oidc_start(
        &self,
        session: &VerifiedSession,
        provider: &str,
        keep_threads: bool,
    ) -> Result<String, ApiError> {
        let p = self.oidc.find(provider)?;
        let client = self.oidc.client(p, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in &p.config.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = Pending {
            provider: p.config.id.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            keep_threads,
            started_ms: now_ms(),
        };
        let bytes = serde_json::to_vec(&pending).map_err(|_| ApiError::internal())?;
        self.store.set(session.id(), PENDING_KEY, &bytes).await?;
        Ok(url.to_string())
    }

    /// Finishes a sign-in: the answer must carry the state this session stored (the
    /// pending sign-in is consumed whatever happens next, so a code or state works once),
    /// the code is exchanged with the PKCE verifier, and the ID token must pass issuer,
    /// audience, expiry, signature and nonce checks. Then the session is renewed.
    pub async fn oidc_finish(
        &self,
        session: &VerifiedSession,
        code: &str,
        state: &str,
        agent: &str,
    ) -> Result<(SessionId, String, String), ApiError> {
        let raw = self.store.get(session.id(), PENDING_KEY).await?;
        let pending: Option<Pending> = raw.and_then(|r| serde_json::from_slice(&r).ok());
        let Some(pending) = pending else {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                "no sign-in was started in this browser session (or it was already used)",
            ));
        };
        self.store.remove(session.id(), PENDING_KEY).await?;
        let state_ok: bool = pending.state.as_bytes().ct_eq(state.as_bytes()).into();
        if !state_ok {
            tracing::warn!(session = %session.id().log_tag(), "OIDC answer with a foreign state");
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                "the sign-in answer does not match the sign-in this browser started",
            ));
        }
        if now_ms() - pending.started_ms > PENDING_TTL_MS {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                "the sign-in took too long; start again",
            ));
        }
        if code.is_empty() || code.len() > 2048 {
            return Err(oidc_failed("the provider's answer carries no usable code"));
        }
        let p = self.oidc.find(&pending.provider)?;
        let client = self.oidc.client(p, false).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| unavailable(&p.config.name))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.oidc.http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %p.config.id, error = %e, "OIDC code exchange failed");
                match e {
                    openidconnect::RequestTokenError::ServerResponse(r) => oidc_failed(format!(
                        "{} refused the sign-in code ({})",
                        p.config.name,
                        r.error()
                    )),
                    _ => unavailable(&p.config.name),
                }
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| oidc_failed("the provider sent no ID token"))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            // An unknown key may mean the provider rotated its keys: fetch them once more.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let client = self.oidc.client(p, true).await?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map_err(|e| refused(&p.config.id, e))?
                    .clone()
            }
            Err(e) => return Err(refused(&p.config.id, e)),
        };
        let sub = claims.subject().as_str();
        // An address the provider has not verified is only a claim: show the name instead.
        let name = claims
            .email()
            .filter(|_| claims.email_verified() == Some(true))
            .map(|e| e.as_str().to_owned())
            .or_else(|| {
                claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_owned())
            })
            .unwrap_or_else(|| sub.to_owned());
        // Accounts are keyed by (issuer, subject), never by e-mail: an address can change
        // hands, and two providers may vouch for the same one.
        let issuer = claims.issuer().as_str();
        let key = format!("{}:{issuer}{sub}", issuer.len());
        let home = self
            .external_home(crate::model::SignInMethod::Oidc, &key, &name)
            .await?;
        let (id, cookie) = self
            .sign_in(
                session,
                super::Signing {
                    home,
                    name: &name,
                    method: crate::model::SignInMethod::Oidc,
                    keep_threads: pending.keep_threads,
                    agent,
                    verified_hash: None,
                },
            )
            .await?;
        Ok((id, cookie, name))
    }
}

fn refused(provider: &str, e: openidconnect::ClaimsVerificationError) -> ApiError {
    use openidconnect::ClaimsVerificationError as C;
    tracing::warn!(provider, error = %e, "OIDC ID token refused");
    oidc_failed(match e {
        C::Expired(_) => "the provider's ID token has expired",
        C::InvalidAudience(_) => "the provider's ID token is meant for another application",
        C::InvalidIssuer(_) => "the provider's ID token comes from another issuer",
        C::InvalidNonce(_) => "the provider's ID token belongs to another sign-in (nonce)",
        C::SignatureVerification(_) => "the provider's ID token has an invalid signature",
        _ => "the provider's ID token was refused",
    })
}
