//! A JSON tree that borrows its strings from the frame's text, for schema
//! validation of inbound messages. `serde_json::Value` allocates every key
//! and string and keeps objects in B-trees: building and dropping that tree
//! cost more than everything else the connection does with a MeterValues.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// In the order written; OCPP objects have a handful of keys, so a
    /// linear scan beats a map.
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    U(u64),
    I(i64),
    F(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::U(u) => u as f64,
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::U(u) => write!(f, "{u}"),
            Num::I(i) => write!(f, "{i}"),
            Num::F(x) => write!(f, "{x}"),
        }
    }
}

impl<'a> Json<'a> {
    /// Parse `text`, borrowing every string that has no escapes.
    pub fn parse(text: &'a str) -> serde_json::Result<Json<'a>> {
        serde_json::from_str(text)
    }

    /// A view of an owned value (outbound calls and charger answers, which
    /// are few), so one validator serves both.
    pub fn from_value(v: &'a Value) -> Json<'a> {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Num(if let Some(u) = n.as_u64() {
                Num::U(u)
            } else if let Some(i) = n.as_i64() {
                Num::I(i)
            } else {
                Num::F(n.as_f64().unwrap_or(f64::NAN))
            }),
            Value::String(s) => Json::Str(Cow::Borrowed(s)),
            Value::Array(items) => Json::Arr(items.iter().map(Json::from_value).collect()),
            Value::Object(map) => Json::Obj(
                map.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    pub fn to_value(&self) -> Value {
        Value::deserialize(self).unwrap_or(Value::Null)
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Num(Num::F(_)) => "number",
            Json::Num(_) => "integer",
            Json::Str(_) => "string",
            Json::Arr(_) => "array",
            Json::Obj(_) => "object",
        }
    }
}

/// Short, for error messages: strings quoted as JSON, containers by type.
impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(n) => write!(f, "{n}"),
            Json::Str(s) => write!(f, "{}", Value::String(s.to_string())),
            other => f.write_str(other.type_name()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Json<'de>, E> {
        Ok(Json::Num(Num::U(u)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Json<'de>, E> {
        Ok(Json::Num(Num::I(i)))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Json<'de>, E> {
        Ok(Json::Num(Num::F(x)))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(8));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Json::Obj(entries))
    }
}

/// `Cow<str>`'s own `Deserialize` always copies; keys borrow through this.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_string()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

/// Typed decoding straight from the tree the schema check walked, so a
/// payload is parsed once.
impl<'de> Deserializer<'de> for &'de Json<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Num(Num::U(u)) => visitor.visit_u64(*u),
            Json::Num(Num::I(i)) => visitor.visit_i64(*i),
            Json::Num(Num::F(x)) => visitor.visit_f64(*x),
            // The tree outlives the typed value, so its strings lend.
            Json::Str(s) => visitor.visit_borrowed_str(s),
            Json::Arr(items) => visitor.visit_seq(Items(items.iter())),
            Json::Obj(entries) => visitor.visit_map(Entries {
                iter: entries.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Json::Str(s) => visitor.visit_enum(de::value::StrDeserializer::new(s)),
            other => Err(de::Error::invalid_type(unexpected(other), &"a unit variant name")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

fn unexpected<'a>(j: &'a Json) -> de::Unexpected<'a> {
    match j {
        Json::Null => de::Unexpected::Unit,
        Json::Bool(b) => de::Unexpected::Bool(*b),
        Json::Num(Num::U(u)) => de::Unexpected::Unsigned(*u),
        Json::Num(Num::I(i)) => de::Unexpected::Signed(*i),
        Json::Num(Num::F(x)) => de::Unexpected::Float(*x),
        Json::Str(s) => de::Unexpected::Str(s),
        Json::Arr(_) => de::Unexpected::Seq,
        Json::Obj(_) => de::Unexpected::Map,
    }
}

struct Items<'a, 'j>(std::slice::Iter<'a, Json<'j>>);

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|j| seed.deserialize(j)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'a, 'j> {
    iter: std::slice::Iter<'a, (Cow<'j, str>, Json<'j>)>,
    value: Option<&'a Json<'j>>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some(v);
        seed.deserialize(de::value::BorrowedStrDeserializer::<serde_json::Error>::new(k))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("a map value was asked for before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn borrows_plain_strings_and_copies_escaped_ones() {
        let text = r#"{"a":"plain","b\n":"esc\"aped","c":[1,-2,2.5,true,null]}"#;
        let Json::Obj(entries) = Json::parse(text).unwrap() else {
            panic!("not an object")
        };
        assert!(matches!(
            entries[0],
            (Cow::Borrowed("a"), Json::Str(Cow::Borrowed("plain")))
        ));
        assert!(matches!(&entries[1].0, Cow::Owned(k) if k == "b\n"));
        assert!(matches!(&entries[1].1, Json::Str(Cow::Owned(s)) if s == "esc\"aped"));
        assert_eq!(
            entries[2].1,
            Json::Arr(vec![
                Json::Num(Num::U(1)),
                Json::Num(Num::I(-2)),
                Json::Num(Num::F(2.5)),
                Json::Bool(true),
                Json::Null
            ])
        );
    }

    #[test]
    fn a_value_viewed_equals_its_text_parsed() {
        let v = json!({"x": [1, -3, 0.5, "s", {"y": null}], "z": false});
        let text = v.to_string();
        assert_eq!(Json::from_value(&v), Json::parse(&text).unwrap());
    }

    #[test]
    fn typed_decoding_from_the_tree_matches_decoding_from_text() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "camelCase")]
        struct T {
            name: String,
            n: Option<u32>,
            missing: Option<i64>,
            items: Vec<f64>,
            kind: Kind,
            any: Value,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        enum Kind {
            Hard,
        }
        let text = r#"{"name":"a\"b","n":7,"items":[1,2.5,-3],"kind":"Hard","any":{"x":[null]},"extra":1}"#;
        let from_tree = T::deserialize(&Json::parse(text).unwrap()).unwrap();
        assert_eq!(from_tree, serde_json::from_str::<T>(text).unwrap());
        let wrong = Json::parse(r#"{"name":5,"items":[],"kind":"Hard","any":1}"#).unwrap();
        assert!(T::deserialize(&wrong).is_err());
    }

    #[test]
    fn rejects_what_is_not_json() {
        assert!(Json::parse("{\"a\":").is_err());
        assert!(Json::parse("[1,]").is_err());
    }

    #[test]
    fn a_deeply_nested_frame_is_refused_rather_than_overflowing_the_stack() {
        // A charger's 2 MB of '[' must cost it an error, not the server its
        // process; a parser without a depth limit aborts here.
        let text = "[".repeat(200_000);
        assert!(Json::parse(&text).is_err());
    }
}
