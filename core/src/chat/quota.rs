//! Daily quotas: how many messages a person may send, and how many model tokens their
//! replies may take, per UTC day. Counted per account (every browser of a signed-in user
//! shares one count) or per anonymous session, in the store, so every instance counts
//! together.
//!
//! A message is counted when it is sent, and given back if it could not be stored. Tokens
//! are counted when a reply ends, from the endpoint's own usage report when it gives one,
//! else estimated from the text (a token is about four characters); a reply already
//! running may take the count past the limit, and the next one is refused.

use crate::{ApiError, ErrorCode, SessionId, StoreError, store::SessionStore};

/// The daily limits; 0 turns one off. Both are off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Messages a person may send per UTC day.
    pub messages_per_day: u64,
    /// Model tokens (question and answer) replies may take per UTC day.
    pub tokens_per_day: u64,
}

const PREFIX: &str = "confide:quota:";
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Today's counter key of `what`, and when today ends (ms since the epoch, UTC).
fn today(what: &str, now_ms: i64) -> (String, i64) {
    let day = now_ms.div_euclid(DAY_MS);
    (format!("{PREFIX}{day}:{what}"), (day + 1) * DAY_MS)
}

/// The day and the kind of a counter key.
fn parse_key(key: &str) -> Option<(i64, &str)> {
    let (day, what) = key.strip_prefix(PREFIX)?.split_once(':')?;
    Some((day.parse().ok()?, what))
}

/// "in 3 h 12 min", "in 40 min", "in under a minute".
fn resets_in(now_ms: i64, at_ms: i64) -> String {
    let minutes = (at_ms - now_ms).max(0) / 60_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => "in under a minute".into(),
        (0, m) => format!("in {m} min"),
        (h, m) => format!("in {h} h {m} min"),
    }
}

fn exceeded(what: &str, limit: u64, now_ms: i64, resets_ms: i64) -> ApiError {
    // "1 message", "20 messages".
    let what = if limit == 1 {
        what.strip_suffix('s').unwrap_or(what)
    } else {
        what
    };
    ApiError::new(
        ErrorCode::QuotaExceeded,
        format!(
            "Today's quota of {limit} {what} is used up. It resets at 00:00 UTC ({}).",
            resets_in(now_ms, resets_ms)
        ),
    )
}

/// What `Chat::charge` counted, to give back if what it was for did not happen.
#[derive(Debug, Default)]
pub(crate) struct Charged {
    pub(crate) counted: bool,
    pub(crate) now: i64,
}

impl Charged {
    pub(crate) async fn give_back(&self, meter: &Meter<'_>) {
        if self.counted {
            meter.give_back(self.now).await;
        }
    }
}

/// Counts against `quotas` for `owner` (an account's home or an anonymous session).
pub(crate) struct Meter<'a> {
    pub(crate) store: &'a dyn SessionStore,
    pub(crate) owner: &'a SessionId,
    pub(crate) quotas: Quotas,
}

impl Meter<'_> {
    /// Refuses a reply when today's tokens are used up.
    pub(crate) async fn check_tokens(&self, now_ms: i64) -> Result<(), ApiError> {
        let limit = self.quotas.tokens_per_day;
        if limit == 0 {
            return Ok(());
        }
        let (key, resets) = today("tokens", now_ms);
        let used = self
            .store
            .get(self.owner, &key)
            .await?
            .and_then(|v| crate::store::counter_value(&v))
            .unwrap_or(0);
        if u64::try_from(used).unwrap_or(0) >= limit {
            return Err(exceeded("model tokens", limit, now_ms, resets));
        }
        Ok(())
    }

    /// Counts one message, or refuses it (counting nothing) when today's are used up.
    /// Returns whether one was counted, to give back with `give_back` if the message is
    /// not stored after all.
    pub(crate) async fn count_message(&self, now_ms: i64) -> Result<bool, ApiError> {
        let limit = self.quotas.messages_per_day;
        if limit == 0 {
            return Ok(false);
        }
        let (key, resets) = today("messages", now_ms);
        let sent = match self.store.add(self.owner, &key, 1).await {
            // Full of values: earlier days' counters may be what fills it.
            Err(StoreError::TooManyKeys) => {
                self.forget_earlier_days(&key).await;
                self.store.add(self.owner, &key, 1).await?
            }
            other => other?,
        };
        if sent == 1 {
            self.forget_earlier_days(&key).await;
        }
        if u64::try_from(sent).unwrap_or(u64::MAX) > limit {
            self.give_back(now_ms).await;
            return Err(exceeded("messages", limit, now_ms, resets));
        }
        Ok(true)
    }

    /// Gives back a message counted by `count_message`.
    pub(crate) async fn give_back(&self, now_ms: i64) {
        let (key, _) = today("messages", now_ms);
        if let Err(e) = self.store.add(self.owner, &key, -1).await {
            tracing::debug!(session = %self.owner.log_tag(), error = %e, "could not give back a counted message");
        }
    }

    /// Counts the tokens a reply took.
    pub(crate) async fn spend_tokens(&self, tokens: u64, now_ms: i64) {
        if self.quotas.tokens_per_day == 0 || tokens == 0 {
            return;
        }
        let (key, _) = today("tokens", now_ms);
        match self
            .store
            .add(self.owner, &key, i64::try_from(tokens).unwrap_or(i64::MAX))
            .await
        {
            Ok(n) if u64::try_from(n).unwrap_or(0) == tokens => {
                self.forget_earlier_days(&key).await
            }
            Ok(_) | Err(StoreError::NoSuchSession) => {}
            Err(e) => {
                tracing::warn!(session = %self.owner.log_tag(), error = %e, "could not count a reply's tokens")
            }
        }
    }

    /// A day's first count removes the counters of earlier days, so they do not pile up.
    /// Only earlier ones: an instance whose clock is a little behind at midnight must not
    /// wipe the new day's count.
    async fn forget_earlier_days(&self, today_key: &str) {
        let Some((day, what)) = parse_key(today_key) else {
            return;
        };
        let Ok(keys) = self.store.keys(self.owner, PREFIX).await else {
            return;
        };
        for k in keys {
            if parse_key(&k).is_some_and(|(d, w)| w == what && d < day) {
                let _ = self.store.remove(self.owner, &k).await;
            }
        }
    }
}

/// Tokens of a reply when the endpoint reported none: about four characters each, of the
/// turns it was shown and of what it wrote.
pub(crate) fn estimate_tokens<'a>(texts: impl Iterator<Item = &'a str>) -> u64 {
    let chars: usize = texts.map(|t| t.chars().count()).sum();
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_resets_are_utc() {
        // 2026-12-04T21:48:00Z
        let now = 1_796_420_880_000;
        let (key, resets) = today("messages", now);
        assert_eq!(key, format!("{PREFIX}20791:messages"));
        assert_eq!(resets, 20792 * DAY_MS);
        assert_eq!(resets_in(now, resets), "in 2 h 12 min");
        assert_eq!(resets_in(resets - 30_000, resets), "in under a minute");
        assert_eq!(resets_in(resets - 40 * 60_000, resets), "in 40 min");
        assert_eq!(parse_key(&key), Some((20791, "messages")));
        assert_eq!(parse_key("confide:quota:x:messages"), None);
        let one = exceeded("messages", 1, now, resets).message;
        assert!(
            one.starts_with("Today's quota of 1 message is used up."),
            "{one}"
        );
        let many = exceeded("model tokens", 500, now, resets).message;
        assert!(
            many.starts_with("Today's quota of 500 model tokens is"),
            "{many}"
        );
    }

    #[test]
    fn estimates_round_up() {
        assert_eq!(estimate_tokens(["abcd", "e"].into_iter()), 2);
        assert_eq!(estimate_tokens(std::iter::empty()), 0);
        assert_eq!(
            estimate_tokens(["héllo"].into_iter()),
            2,
            "characters, not bytes"
        );
    }
}
