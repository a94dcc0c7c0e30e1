//! Signing in and out, and the sessions of an account: server functions under
//! `/api/auth/`, with the types both sides share. They pass the same guard and CSRF rules
//! as every other server function; the provider's callback is a page whose script calls
//! `auth/oidc/finish`, so it too arrives as a same-origin JSON POST with the custom header.

use crate::ApiError;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

pub use crate::model::{
    Account, ProviderButton, SessionRow, SignInMethod, SignInOptions, SignedIn,
};

#[cfg(feature = "ssr")]
mod ctx {
    use crate::{
        ApiError,
        server::{
            UserSession, VerifiedSession,
            auth::{Auth, ClientAddr},
        },
    };
    use std::sync::Arc;

    pub async fn auth() -> Result<Arc<Auth>, ApiError> {
        let axum::Extension(a) = leptos_axum::extract::<axum::Extension<Arc<Auth>>>()
            .await
            .map_err(|_| ApiError::internal())?;
        Ok(a)
    }

    pub async fn session() -> Result<VerifiedSession, ApiError> {
        Ok(UserSession::current().await?.verified().clone())
    }

    pub async fn client_addr() -> ClientAddr {
        leptos_axum::extract::<axum::Extension<ClientAddr>>()
            .await
            .map(|axum::Extension(c)| c)
            .unwrap_or(ClientAddr {
                ip: None,
                via_trusted_proxy: false,
            })
    }

    pub async fn headers() -> http::HeaderMap {
        leptos_axum::extract::<http::HeaderMap>()
            .await
            .unwrap_or_default()
    }

    pub async fn agent() -> String {
        headers()
            .await
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    /// Stops the replies streaming in an anonymous session that is about to be replaced:
    /// their tasks write to the old session, which sign-in deletes.
    pub async fn stop_replies(session: &VerifiedSession) {
        if session.home().is_none()
            && let Ok(axum::Extension(rt)) =
                leptos_axum::extract::<axum::Extension<Arc<crate::server::chat::ChatRuntime>>>()
                    .await
        {
            rt.cancel_session(session.id());
        }
    }

    /// Replaces `session` with one signed in to `home` and answers with the new id (its
    /// proof goes out as a cookie).
    pub async fn signed_in(
        auth: &Auth,
        session: &VerifiedSession,
        home: crate::SessionId,
        name: String,
        method: crate::model::SignInMethod,
        keep_threads: Option<bool>,
        verified_hash: Option<&str>,
    ) -> Result<super::SignedIn, ApiError> {
        stop_replies(session).await;
        let agent = agent().await;
        let who = crate::server::auth::Signing {
            home,
            name: &name,
            method,
            keep_threads: keep_threads.unwrap_or(true),
            agent: &agent,
            verified_hash,
        };
        let (id, cookie) = auth.sign_in(session, who).await?;
        set_cookie(&cookie);
        Ok(super::SignedIn {
            session_id: id,
            account: super::Account { name, method },
        })
    }

    /// Sends the new session's proof cookie with the answer.
    pub fn set_cookie(cookie: &str) {
        if let (Some(opts), Ok(v)) = (
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
            http::HeaderValue::from_str(cookie),
        ) {
            opts.append_header(http::header::SET_COOKIE, v);
        }
    }

    /// After sign-out the browser drops its cookies and storage for this site.
    pub fn clear_site_data() {
        if let Some(opts) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            opts.insert_header(
                http::header::HeaderName::from_static("clear-site-data"),
                http::HeaderValue::from_static("\"cookies\", \"storage\""),
            );
        }
    }
}

#[server(prefix = "/api", endpoint = "auth/options", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn get_sign_in_options() -> Result<SignInOptions, ApiError> {
    let auth = ctx::auth().await?;
    let c = &auth.config;
    let header_user = auth
        .header_user(&ctx::headers().await, &ctx::client_addr().await)
        .await;
    Ok(SignInOptions {
        password: c.password,
        registration: c.password && c.registration,
        providers: auth.oidc.buttons(),
        header_user,
    })
}

/// Who this session belongs to (`None`: anonymous).
#[server(prefix = "/api", endpoint = "auth/me", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn me() -> Result<Option<Account>, ApiError> {
    let auth = ctx::auth().await?;
    auth.account_of(&ctx::session().await?).await
}

#[server(prefix = "/api", endpoint = "auth/login", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn log_in(
    username: String,
    password: String,
    #[server(default)] keep_threads: Option<bool>,
) -> Result<SignedIn, ApiError> {
    let auth = ctx::auth().await?;
    let session = ctx::session().await?;
    let from = ctx::client_addr().await.ip;
    let (home, name, hash) = auth.check_password(&username, &password, from).await?;
    ctx::signed_in(
        &auth,
        &session,
        home,
        name,
        SignInMethod::Password,
        keep_threads,
        Some(&hash),
    )
    .await
}

#[server(prefix = "/api", endpoint = "auth/register", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn register(
    username: String,
    password: String,
    #[server(default)] keep_threads: Option<bool>,
) -> Result<SignedIn, ApiError> {
    use crate::ErrorCode;
    let auth = ctx::auth().await?;
    if !(auth.config.password && auth.config.registration) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "registration is not enabled",
        ));
    }
    let session = ctx::session().await?;
    // Registration hashes a password too: it counts against the address's attempts.
    auth.limit_address(ctx::client_addr().await.ip)?;
    let home = auth.add_user(&username, &password).await?;
    let name = crate::server::auth::normalize_username(&username)?;
    ctx::signed_in(
        &auth,
        &session,
        home,
        name,
        SignInMethod::Password,
        keep_threads,
        None,
    )
    .await
}

/// Signs in as the user a trusted proxy names in the configured header.
#[server(prefix = "/api", endpoint = "auth/header", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn log_in_by_header(
    #[server(default)] keep_threads: Option<bool>,
) -> Result<SignedIn, ApiError> {
    use crate::ErrorCode;
    let auth = ctx::auth().await?;
    let session = ctx::session().await?;
    let Some(name) = auth
        .header_user(&ctx::headers().await, &ctx::client_addr().await)
        .await
    else {
        return Err(ApiError::new(
            ErrorCode::LoginFailed,
            "no user is vouched for by a trusted proxy",
        ));
    };
    let home = auth
        .external_home(SignInMethod::Header, &name, &name)
        .await?;
    ctx::signed_in(
        &auth,
        &session,
        home,
        name,
        SignInMethod::Header,
        keep_threads,
        None,
    )
    .await
}

/// Starts an OpenID Connect sign-in; the browser then goes to the returned URL.
#[server(prefix = "/api", endpoint = "auth/oidc/start", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn oidc_start(
    provider: String,
    #[server(default)] keep_threads: Option<bool>,
) -> Result<String, ApiError> {
    let auth = ctx::auth().await?;
    auth.oidc_start(
        &ctx::session().await?,
        &provider,
        keep_threads.unwrap_or(true),
    )
    .await
}

/// Completes the sign-in with the provider's answer (from the callback page's URL).
#[server(prefix = "/api", endpoint = "auth/oidc/finish", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn oidc_finish(code: String, state: String) -> Result<SignedIn, ApiError> {
    let auth = ctx::auth().await?;
    let session = ctx::session().await?;
    ctx::stop_replies(&session).await;
    let (id, cookie, name) = auth
        .oidc_finish(&session, &code, &state, &ctx::agent().await)
        .await?;
    ctx::set_cookie(&cookie);
    Ok(SignedIn {
        session_id: id,
        account: Account {
            name,
            method: SignInMethod::Oidc,
        },
    })
}

/// Signs out: the session ends on the server and the browser forgets this site's cookies
/// and storage; the client then starts a new anonymous session.
#[server(prefix = "/api", endpoint = "auth/logout", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn log_out() -> Result<(), ApiError> {
    let auth = ctx::auth().await?;
    auth.sign_out(&ctx::session().await?).await?;
    ctx::clear_site_data();
    Ok(())
}

#[server(prefix = "/api", endpoint = "auth/sessions", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn my_sessions() -> Result<Vec<SessionRow>, ApiError> {
    let auth = ctx::auth().await?;
    auth.sessions(&ctx::session().await?).await
}

/// Ends one of the user's sessions (by its handle from `auth/sessions`).
#[server(prefix = "/api", endpoint = "auth/sessions/end", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn end_session(handle: String) -> Result<(), ApiError> {
    let auth = ctx::auth().await?;
    auth.end_session(&ctx::session().await?, &handle).await
}

/// Ends every session of the user, this one included.
#[server(prefix = "/api", endpoint = "auth/sessions/end_all", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn end_all_sessions() -> Result<usize, ApiError> {
    let auth = ctx::auth().await?;
    let session = ctx::session().await?;
    let Some(home) = session.home().copied() else {
        return Err(ApiError::new(
            crate::ErrorCode::LoginRequired,
            "sign in first",
        ));
    };
    let n = auth.end_sessions(&home, Some(session.id())).await?;
    auth.sign_out(&session).await?;
    ctx::clear_site_data();
    Ok(n + 1)
}

/// Changes the password; every other session of the account ends.
#[server(prefix = "/api", endpoint = "auth/password", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn change_password(current: String, new: String) -> Result<usize, ApiError> {
    let auth = ctx::auth().await?;
    let from = ctx::client_addr().await.ip;
    auth.change_password(&ctx::session().await?, &current, &new, from)
        .await
}
