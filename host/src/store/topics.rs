//! Topics: named lists of subscribers (module functions) that a message
//! branch may target instead of one function, to fan out to every
//! subscriber at submit.
//!
//! Only the vocabulary and row decoding live here; the SQL is in `queries`
//! and each backend runs it. The store keeps the list and nothing else: it
//! does not check that a subscriber's module exists or exports the function
//! (the API does, at subscribe) and never expands a topic (the engine does).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{InvalidId, Millis, ModuleName};

/// Name of a topic: 1–64 characters of `[a-z0-9_.-]`, starting with a letter
/// or digit. Dots allow hierarchical names (`orders.created`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopicName(String);

impl TopicName {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok_len = !s.is_empty() && s.len() <= 64;
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_chars = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if ok_len && ok_first && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(format!(
                "topic name {s:?} is invalid: use 1 to 64 characters of a-z, 0-9, '-', '_' and '.', starting with a \
                 letter or digit"
            )))
        }
    }

    /// Wraps a value already known to be valid (read back from the store).
    pub fn from_trusted(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One function subscribed to a topic. A topic exists exactly as long as it
/// has subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub topic: TopicName,
    pub module: ModuleName,
    pub function: String,
    /// When it was subscribed: subscribers are listed in this order.
    pub created_at: Millis,
}

impl Subscriber {
    /// The URL of a subscriber that is an HTTP endpoint (DTM's topics; stored
    /// with [`ModuleName::http_marker`] as its module); `None` for a module function.
    pub fn url(&self) -> Option<&str> {
        self.module.is_http_marker().then_some(self.function.as_str())
    }
}

/// A `topic_subscribers` row as stored (columns in the order of
/// [`super::queries::SUBSCRIBER_COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(super) struct SubscriberRow {
    pub topic: String,
    pub module: String,
    pub function: String,
    pub created_at: i64,
}

impl SubscriberRow {
    pub(super) fn decode(self) -> Subscriber {
        Subscriber {
            topic: TopicName::from_trusted(self.topic),
            module: ModuleName::from_trusted(self.module),
            function: self.function,
            created_at: Millis(self.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_module_names_and_allow_dots() {
        for good in ["orders", "orders.created", "0day", "a", "bank-v2_x.events", &"t".repeat(64)] {
            assert_eq!(TopicName::parse(good).map(|t| t.to_string()).as_deref(), Ok(good), "{good}");
        }
        for bad in ["", "Orders", ".orders", "-orders", "_orders", "orders/created", "orders created", &"t".repeat(65)]
        {
            let e = TopicName::parse(bad).expect_err(bad);
            assert!(e.0.starts_with(&format!("topic name {bad:?} is invalid")), "{bad}: {e}");
            assert!(e.0.contains("1 to 64 characters"), "{e}");
        }
    }
}
