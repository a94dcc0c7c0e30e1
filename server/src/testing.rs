//! For testing an assistant without a running server: browser sessions made the way a
//! request's are (the guard claims a new id and issues its proof), in a memory store.
//!
//! ```ignore
//! let cx = ReplyContext::for_session(server::testing::user_session().await, history);
//! let stream = my_assistant.reply(cx).await?;
//! ```

use crate::{Config, MemoryStore, lifetimes};
use confide_core::{
    GuardConfig, Mode, SESSION_HEADER_NAME, SessionId, SessionStore, UserSession, guard,
};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;

/// A new browser session in a store of its own.
pub async fn user_session() -> UserSession {
    claim(&memory_store()).await
}

/// Two browser sessions in one store, as two people behind one address would have.
pub async fn two_user_sessions() -> (UserSession, UserSession) {
    let store = memory_store();
    (claim(&store).await, claim(&store).await)
}

fn memory_store() -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::new(lifetimes(&Config::default())))
}

/// Claims a new id through the guard, as a browser's first call does.
async fn claim(store: &Arc<dyn SessionStore>) -> UserSession {
    let cfg = GuardConfig {
        lifetimes: lifetimes(&Config::default()),
        secure_cookies: true,
    };
    let mut headers = HeaderMap::new();
    let id = HeaderValue::from_str(&SessionId::random().as_string())
        .expect("a session id is a valid header value");
    headers.insert(SESSION_HEADER_NAME, id);
    let outcome = guard::check(store, &cfg, &headers, Mode::Api)
        .await
        .expect("a new id is claimed");
    UserSession::from_verified(outcome.session.expect("a claim verifies its session"))
}
