//! Identifiers that end up in a URL path or a header.
//!
//! Ids come from the server (transaction id, challenge id) or from the caller (order id,
//! routing id). They are opaque, but an id that could change the shape of a URL (`/`, `?`,
//! `#`, `%`, `..`, whitespace, control characters) is rejected here, once, before any request
//! is built, so a hostile or corrupted id can never redirect a call to another endpoint.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::IdError;

/// An id checked by [`check_path_id`]; a persisted challenge with an unsafe id fails to load.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub(crate) struct PathId(String);

impl PathId {
    pub(crate) fn new(field: &'static str, id: &str) -> Result<Self, IdError> {
        check_path_id(field, id)?;
        Ok(PathId(id.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for PathId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_path_id("id", &s).map_err(serde::de::Error::custom)?;
        Ok(PathId(s))
    }
}

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A header value checked by [`check_header_value`], shared without copying.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub(crate) struct HeaderValue(Arc<str>);

impl HeaderValue {
    pub(crate) fn new(field: &'static str, value: &str) -> Result<Self, IdError> {
        check_header_value(field, value)?;
        Ok(HeaderValue(value.into()))
    }

    pub(crate) fn shared(&self) -> &Arc<str> {
        &self.0
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HeaderValue::new("x-routing-id", &s).map_err(serde::de::Error::custom)
    }
}

/// Checks an id that is placed in a URL path segment. Accepts ASCII letters, digits and
/// `-`, `_`, `.`, `~`, `:`, `@`; rejects empty ids, `..` and anything longer than
/// [`MAX_ID_LEN`].
pub(crate) fn check_path_id(field: &'static str, id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty { field });
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            field,
            max: MAX_ID_LEN,
        });
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | ':' | '@')))
    {
        return Err(IdError::ForbiddenCharacter {
            field,
            character: printable(c),
        });
    }
    if id.contains("..") {
        return Err(IdError::DotDot { field });
    }
    Ok(())
}

/// Checks a value placed in an HTTP header: visible ASCII and inner spaces only, no leading
/// or trailing space, at most 256 bytes.
pub(crate) fn check_header_value(field: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { field });
    }
    if value.len() > 256 {
        return Err(IdError::TooLong { field, max: 256 });
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(IdError::ForbiddenCharacter {
            field,
            character: printable(c),
        });
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(IdError::ForbiddenCharacter {
            field,
            character: "' ' (leading or trailing)".into(),
        });
    }
    Ok(())
}

/// How a rejected character is shown in an error: escaped, so a control character in an
/// error message can't corrupt a log line.
fn printable(c: char) -> String {
    format!("{:?}", c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_ids() {
        for id in [
            "txn_36dc6eada1d0463da91dc56c8262a8c3",
            "ch_xyz",
            "moz3C1sYSVgAxme31pL",
            "testhdfc1-DOTP1234-1",
            "eul5g88aa2f2c1b2",
            "a.b",
        ] {
            assert_eq!(check_path_id("id", id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_ids_that_change_the_path() {
        for (id, want) in [
            ("", IdError::Empty { field: "id" }),
            ("..", IdError::DotDot { field: "id" }),
            ("a..b", IdError::DotDot { field: "id" }),
        ] {
            assert_eq!(check_path_id("id", id), Err(want));
        }
        for id in [
            "a/b", "a?b=1", "a#b", "a b", "a\tb", "a\nb", "a\u{0}b", "a%2fb", "é", "a\\b",
        ] {
            assert!(
                matches!(
                    check_path_id("id", id),
                    Err(IdError::ForbiddenCharacter { field: "id", .. })
                ),
                "{id:?}"
            );
        }
        let long = "a".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            check_path_id("id", &long),
            Err(IdError::TooLong {
                field: "id",
                max: MAX_ID_LEN
            })
        );
    }

    #[test]
    fn header_values_refuse_line_breaks() {
        assert_eq!(check_header_value("x-routing-id", "customer_1122"), Ok(()));
        assert_eq!(check_header_value("x-routing-id", "cart 42"), Ok(()));
        assert!(check_header_value("x-routing-id", "a\r\nx-evil: 1").is_err());
        assert!(check_header_value("x-routing-id", " a").is_err());
        assert!(check_header_value("x-routing-id", "").is_err());
    }
}
