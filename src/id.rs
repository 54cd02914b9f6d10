//! Values the caller or the server hands us that end up in a request: one rule per place
//! a value goes, checked here, once, before any request is built.
//!
//! * **URL path** ([`PathId`], [`check_path_id`]): transaction, challenge and order ids. An
//!   id that could change the shape of a URL (`/`, `?`, `#`, `%`, a `.` or `..` segment,
//!   whitespace, control characters) is refused, so a hostile or corrupted id can never
//!   redirect a call to another endpoint.
//! * **Header** ([`HeaderValue`], [`check_header_value`]): `x-routing-id`, `x-merchantid`,
//!   `version`: visible ASCII and inner spaces, so no header can be split or added.
//! * **Form body** ([`FormValue`], [`check_form_value`]): `merchant_id`, `payment_method`,
//!   `gateway_id`. The body is percent-encoded, so any character is safe on the wire; the
//!   rule refuses what is surely a mistake and would reach the server's logs: empty values,
//!   control characters (CR, LF, NUL, ...), surrounding whitespace, over-long values.

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

/// A form body value checked by [`check_form_value`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct FormValue(String);

impl FormValue {
    pub(crate) fn new(field: &'static str, value: &str) -> Result<Self, IdError> {
        check_form_value(field, value)?;
        Ok(FormValue(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FormValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Longest header or form body value accepted, in bytes.
pub(crate) const MAX_VALUE_LEN: usize = 256;

/// Checks an id that is placed in a URL path segment. Accepts ASCII letters, digits and
/// `-`, `_`, `.`, `~`, `:`, `@`; rejects empty ids, the dot segments `.` and `..`, any
/// `..`, and anything longer than [`MAX_ID_LEN`].
pub(crate) fn check_path_id(field: &'static str, id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty { field });
    }
    // `/v2/txns/./authenticate` is `/v2/txns/authenticate` to a server that normalizes.
    if id == "." || id == ".." {
        return Err(IdError::DotSegment { field });
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
/// or trailing space, at most [`MAX_VALUE_LEN`] bytes.
pub(crate) fn check_header_value(field: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { field });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(IdError::TooLong {
            field,
            max: MAX_VALUE_LEN,
        });
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

/// Checks a value placed in a form body: not empty, at most [`MAX_VALUE_LEN`] bytes, no
/// control character, no leading or trailing whitespace. Any other character (non-ASCII
/// included) is percent-encoded on the wire.
pub(crate) fn check_form_value(field: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { field });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(IdError::TooLong {
            field,
            max: MAX_VALUE_LEN,
        });
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(IdError::ForbiddenCharacter {
            field,
            character: printable(c),
        });
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(IdError::ForbiddenCharacter {
            field,
            character: "whitespace (leading or trailing)".into(),
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
            ".a",
            "a.",
        ] {
            assert_eq!(check_path_id("id", id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_ids_that_change_the_path() {
        for (id, want) in [
            ("", IdError::Empty { field: "id" }),
            (".", IdError::DotSegment { field: "id" }),
            ("..", IdError::DotSegment { field: "id" }),
            ("a..b", IdError::DotDot { field: "id" }),
            ("...", IdError::DotDot { field: "id" }),
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

    #[test]
    fn form_values_refuse_what_cannot_be_meant() {
        let field = "merchant_id";
        for ok in [
            "acme",
            "VISA",
            "17",
            "Acme Traders",
            "ацме",
            "a=b&c",
            "x".repeat(256).as_str(),
        ] {
            assert_eq!(check_form_value(field, ok), Ok(()), "{ok:?}");
        }
        let forbidden = |c: &str| IdError::ForbiddenCharacter {
            field,
            character: c.into(),
        };
        let edge = forbidden("whitespace (leading or trailing)");
        for (value, want) in [
            ("", IdError::Empty { field }),
            ("acme\r\n", forbidden("'\\r'")),
            ("ac\nme", forbidden("'\\n'")),
            ("a\u{0}", forbidden("'\\0'")),
            ("a\tb", forbidden("'\\t'")),
            ("a\u{85}b", forbidden("'\\u{85}'")),
            (" acme", edge.clone()),
            ("acme ", edge.clone()),
            ("acme\u{a0}", edge),
        ] {
            assert_eq!(check_form_value(field, value), Err(want), "{value:?}");
        }
        assert_eq!(
            check_form_value(field, &"x".repeat(257)),
            Err(IdError::TooLong { field, max: 256 })
        );
    }
}
