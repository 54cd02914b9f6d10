//! Field types that accept what the API really sends, not only what its tables say.
//!
//! Each one is a single visitor (no intermediate `serde_json::Value`): a text field also
//! takes a number, a count also takes a numeric string, a flag also takes `"true"`. A value
//! of a type that makes no sense for the field (an object where a count belongs, a negative
//! count) is skipped and read as absent, so one odd field never sinks a whole response.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A string field; numbers become their decimal text. `None` when absent, null or not
/// a scalar.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub(crate) Option<Cow<'a, str>>);

/// A count: a non-negative integer, or a string holding one. Out-of-range values are absent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count(pub(crate) Option<u32>);

/// A boolean: `true`/`false`, `"true"`/`"false"` (any case), or `1`/`0`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub(crate) Option<bool>);

impl<'a> Text<'a> {
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Present and not empty.
    pub(crate) fn non_empty(&self) -> Option<&str> {
        self.as_deref().filter(|s| !s.is_empty())
    }
}

/// A number kept as the exact text the server sent (`1499.0`, `"1499.00"`), for money: it is
/// never turned into an `f64`. A JSON number gives its literal; a string gives its trimmed
/// content (checked later by whoever reads it as an amount). `None` when absent, null, a
/// boolean or a container. Reads only from `serde_json` (it borrows the raw JSON text).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NumberText<'a>(pub(crate) Option<Cow<'a, str>>);

impl NumberText<'_> {
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for NumberText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Some(raw) = <Option<&'de serde_json::value::RawValue>>::deserialize(d)? else {
            return Ok(NumberText(None));
        };
        let text = raw.get();
        Ok(NumberText(match text.as_bytes().first() {
            Some(b'-' | b'0'..=b'9') => Some(Cow::Borrowed(text)),
            Some(b'"') => serde_json::from_str::<Cow<'de, str>>(text)
                .ok()
                .map(|s| match s {
                    Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
                    Cow::Owned(o) => Cow::Owned(o.trim().to_owned()),
                })
                .filter(|s| !s.is_empty()),
            _ => None,
        }))
    }
}

/// Drains a map or sequence that a field doesn't want.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visitor methods for values a field ignores (read as absent).
macro_rules! absent_for {
    ($($method:ident($ty:ty)),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> { Ok(Default::default()) })*
    };
}

macro_rules! absent_for_containers {
    () => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|_| Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|_| Default::default())
        }
    };
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or number")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v))))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(v.to_string()))))
    }
    absent_for!(visit_bool(bool));
    absent_for_containers!();
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a count")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Count(u32::try_from(v).ok()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Count(u32::try_from(v).ok()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let whole = v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v);
        Ok(Count(whole.then_some(v as u32)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Count(v.trim().parse().ok()))
    }
    absent_for!(visit_bool(bool));
    absent_for_containers!();
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountVisitor)
    }
}

struct FlagVisitor;

impl<'de> Visitor<'de> for FlagVisitor {
    type Value = Flag;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Flag(Some(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Flag(match v {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_u64(u64::try_from(v).unwrap_or(u64::MAX))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        Ok(Flag(if v.eq_ignore_ascii_case("true") {
            Some(true)
        } else if v.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }))
    }
    absent_for!(visit_f64(f64));
    absent_for_containers!();
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FlagVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        t: Text<'a>,
        #[serde(default)]
        c: Count,
        #[serde(default)]
        f: Flag,
    }

    fn probe(json: &str) -> (Option<String>, Option<u32>, Option<bool>) {
        let p: Probe = serde_json::from_str(json).unwrap();
        (p.t.0.map(|c| c.into_owned()), p.c.0, p.f.0)
    }

    #[test]
    fn accepts_what_the_api_sends() {
        assert_eq!(probe(r#"{}"#), (None, None, None));
        assert_eq!(
            probe(r#"{"t":"x","c":4,"f":true}"#),
            (Some("x".into()), Some(4), Some(true))
        );
        assert_eq!(
            probe(r#"{"t":12,"c":"4","f":"true"}"#),
            (Some("12".into()), Some(4), Some(true))
        );
        assert_eq!(
            probe(r#"{"t":"a\"b","c":" 3 ","f":"FALSE"}"#),
            (Some("a\"b".into()), Some(3), Some(false))
        );
        assert_eq!(probe(r#"{"c":4.0,"f":0}"#), (None, Some(4), Some(false)));
    }

    #[derive(Deserialize)]
    struct Money<'a> {
        #[serde(default, borrow)]
        n: NumberText<'a>,
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let n = |json: &str| {
            let m: Money = serde_json::from_str(json).unwrap();
            m.n.0.map(|c| c.into_owned())
        };
        for (json, want) in [
            (r#"{"n":1499.0}"#, Some("1499.0")),
            (
                r#"{"n":0.1000000000000000055511151231257827}"#,
                Some("0.1000000000000000055511151231257827"),
            ),
            (r#"{"n":-2E+3}"#, Some("-2E+3")),
            (r#"{"n":" 1499.00 "}"#, Some("1499.00")),
            (r#"{"n":"\u0031"}"#, Some("1")),
            (r#"{"n":"x"}"#, Some("x")),
            (r#"{"n":""}"#, None),
            (r#"{"n":null}"#, None),
            (r#"{"n":true}"#, None),
            (r#"{"n":{"a":[1]}}"#, None),
            (r#"{"n":[1]}"#, None),
            (r#"{}"#, None),
        ] {
            assert_eq!(n(json).as_deref(), want, "{json}");
        }
    }

    #[test]
    fn nonsense_reads_as_absent() {
        assert_eq!(
            probe(r#"{"t":{"a":[1,{"b":2}]},"c":-1,"f":"yes"}"#),
            (None, None, None)
        );
        assert_eq!(
            probe(r#"{"t":[1,2],"c":1e300,"f":2.5}"#),
            (None, None, None)
        );
        assert_eq!(probe(r#"{"t":null,"c":"4x","f":null}"#), (None, None, None));
        assert_eq!(probe(r#"{"t":true,"c":4.5,"f":7}"#), (None, None, None));
        assert_eq!(
            probe(r#"{"c":99999999999999999999999}"#),
            (None, None, None)
        );
    }
}
