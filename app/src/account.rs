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
use crate::ssr as ctx;

/// What the sign-in page offers: password sign-in, registration, providers, a trusted
/// proxy's user.
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
        providers: auth.provider_buttons(),
        header_user,
    })
}

/// Who this session belongs to (`None`: anonymous).
#[server(prefix = "/api", endpoint = "auth/me", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn me() -> Result<Option<Account>, ApiError> {
    let auth = ctx::auth().await?;
    auth.account_of(&ctx::verified().await?).await
}

/// Signs in with a username and password.
#[server(prefix = "/api", endpoint = "auth/login", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn log_in(
    /// The account's name; case and surrounding spaces do not matter.
    username: String,
    /// The account's password.
    password: String,
    /// Move the anonymous session's threads to the account; yes when absent.
    #[server(default)]
    keep_threads: Option<bool>,
) -> Result<SignedIn, ApiError> {
    let auth = ctx::auth().await?;
    let session = ctx::verified().await?;
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

/// Creates a password account and signs in to it, when registration is enabled.
#[server(prefix = "/api", endpoint = "auth/register", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn register(
    /// The new account's name.
    username: String,
    /// The new account's password.
    password: String,
    /// Move the anonymous session's threads to the account; yes when absent.
    #[server(default)]
    keep_threads: Option<bool>,
) -> Result<SignedIn, ApiError> {
    use crate::ErrorCode;
    let auth = ctx::auth().await?;
    if !(auth.config.password && auth.config.registration) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "registration is not enabled",
        ));
    }
    let session = ctx::verified().await?;
    // Registration hashes a password too: it counts against the address's attempts.
    auth.limit_address(ctx::client_addr().await.ip)?;
    let home = auth.add_user(&username, &password).await?;
    let name = confide_core::auth::normalize_username(&username)?;
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
    /// Move the anonymous session's threads to the account; yes when absent.
    #[server(default)]
    keep_threads: Option<bool>,
) -> Result<SignedIn, ApiError> {
    use crate::ErrorCode;
    let auth = ctx::auth().await?;
    let session = ctx::verified().await?;
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
    /// The provider's short name, as its sign-in button gives it.
    provider: String,
    /// Move the anonymous session's threads to the account; yes when absent.
    #[server(default)]
    keep_threads: Option<bool>,
) -> Result<String, ApiError> {
    let auth = ctx::auth().await?;
    auth.oidc_start(
        &ctx::verified().await?,
        &provider,
        keep_threads.unwrap_or(true),
    )
    .await
}

/// Completes the sign-in with the provider's answer (from the callback page's URL).
#[server(prefix = "/api", endpoint = "auth/oidc/finish", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn oidc_finish(
    /// The authorization code the provider returned.
    code: String,
    /// The state the provider returned, which must match the one this session stored.
    state: String,
) -> Result<SignedIn, ApiError> {
    let auth = ctx::auth().await?;
    let session = ctx::verified().await?;
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
    auth.sign_out(&ctx::verified().await?).await?;
    ctx::clear_site_data();
    Ok(())
}

/// The live sessions of the signed-in user, newest first.
#[server(prefix = "/api", endpoint = "auth/sessions", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn my_sessions() -> Result<Vec<SessionRow>, ApiError> {
    let auth = ctx::auth().await?;
    auth.sessions(&ctx::verified().await?).await
}

/// Ends one of the user's sessions (by its handle from `auth/sessions`).
#[server(prefix = "/api", endpoint = "auth/sessions/end", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn end_session(
    /// The session's handle, as `auth/sessions` lists it.
    handle: String,
) -> Result<(), ApiError> {
    let auth = ctx::auth().await?;
    auth.end_session(&ctx::verified().await?, &handle).await
}

/// Ends every session of the user, this one included.
#[server(prefix = "/api", endpoint = "auth/sessions/end_all", input = Json, output = Json, client = crate::client::SessionClient)]
pub async fn end_all_sessions() -> Result<usize, ApiError> {
    let auth = ctx::auth().await?;
    let session = ctx::verified().await?;
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
pub async fn change_password(
    /// The password now in use, checked first.
    current: String,
    /// The password to use from now on.
    new: String,
) -> Result<usize, ApiError> {
    let auth = ctx::auth().await?;
    let from = ctx::client_addr().await.ip;
    auth.change_password(&ctx::verified().await?, &current, &new, from)
        .await
}
