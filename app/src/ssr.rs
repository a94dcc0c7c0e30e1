//! Where a server function picks up its request's context: the session the guard verified
//! and the shared services the server put beside it. The domain itself (rules, store,
//! chat, sign-in) is `confide_core`'s; this is only the hand-over.

use confide_core::{
    ApiError, UserSession, VerifiedSession,
    auth::{Auth, ClientAddr},
    chat::{Chat, ChatRuntime},
};
use std::sync::Arc;

async fn extension<T: Clone + Send + Sync + 'static>() -> Option<T> {
    leptos_axum::extract::<axum::Extension<T>>()
        .await
        .ok()
        .map(|axum::Extension(t)| t)
}

/// The verified session of the request being served. Fails with `no_session` outside a
/// request the guard let through (which, for server functions, cannot happen).
pub async fn verified() -> Result<VerifiedSession, ApiError> {
    extension::<VerifiedSession>()
        .await
        .ok_or_else(ApiError::no_session)
}

/// The request's `UserSession`.
pub async fn user_session() -> Result<UserSession, ApiError> {
    Ok(UserSession::from_verified(verified().await?))
}

/// The request's chat: its session and the server's chat runtime.
pub async fn chat() -> Result<Chat, ApiError> {
    let session = verified().await?;
    let rt = runtime().await?;
    Ok(Chat::new(session, rt))
}

/// The server's chat runtime.
pub async fn runtime() -> Result<Arc<ChatRuntime>, ApiError> {
    extension::<Arc<ChatRuntime>>()
        .await
        .ok_or_else(ApiError::internal)
}

/// Sign-in, when the server configured it.
pub async fn auth_if_configured() -> Option<Arc<Auth>> {
    extension::<Arc<Auth>>().await
}

/// Sign-in, for the endpoints that need it.
pub async fn auth() -> Result<Arc<Auth>, ApiError> {
    auth_if_configured().await.ok_or_else(ApiError::internal)
}

/// The peer's address as the server's edge resolved it (trusted proxies applied).
pub async fn client_addr() -> ClientAddr {
    extension::<ClientAddr>().await.unwrap_or(ClientAddr {
        ip: None,
        via_trusted_proxy: false,
    })
}

/// The request's headers.
pub async fn headers() -> http::HeaderMap {
    leptos_axum::extract::<http::HeaderMap>()
        .await
        .unwrap_or_default()
}

/// The User-Agent, for the "my sessions" list only: it never identifies anyone.
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
        && let Ok(rt) = runtime().await
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
) -> Result<crate::model::SignedIn, ApiError> {
    stop_replies(session).await;
    let agent = agent().await;
    let who = confide_core::auth::Signing {
        home,
        name: &name,
        method,
        keep_threads: keep_threads.unwrap_or(true),
        agent: &agent,
        verified_hash,
    };
    let (id, cookie) = auth.sign_in(session, who).await?;
    set_cookie(&cookie);
    Ok(crate::model::SignedIn {
        session_id: id,
        account: crate::model::Account { name, method },
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

/// The page's status, if its head has not been sent yet (an `SsrMode::Async` route).
pub fn set_status(status: http::StatusCode) {
    if let Some(opts) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        opts.set_status(status);
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
