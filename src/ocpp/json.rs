//! A JSON tree that borrows its strings from the frame's text and lives in
//! an arena, for schema validation and typed decoding of inbound messages.
//! `serde_json::Value` allocates every key and string and keeps objects in
//! B-trees; a tree of `Vec`s still made an allocation per object and array
//! and a walk to free them. Here every node is plain data in a [`Bump`]:
//! building a tree is bumping a pointer, and dropping it is nothing (the
//! arena is reset for the next frame).

use bumpalo::Bump;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(&'a str),
    Arr(&'a [Json<'a>]),
    /// In the order written; OCPP objects have a handful of keys, so a
    /// linear scan beats a map.
    Obj(&'a [(&'a str, Json<'a>)]),
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

/// An arena past this size after a frame is dropped rather than reset, so
/// one huge frame does not pin its memory in a worker thread for good.
const ARENA_KEEP: usize = 256 * 1024;

thread_local! {
    static ARENA: RefCell<Bump> = RefCell::new(Bump::new());
}

/// Runs `f` with this thread's arena, emptied first. `f` cannot await, so
/// no tree outlives the call or moves to another thread with its task.
pub fn with_arena<R>(f: impl FnOnce(&Bump) -> R) -> R {
    ARENA.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bump) => {
            bump.reset();
            let out = f(&bump);
            if bump.allocated_bytes() > ARENA_KEEP {
                *bump = Bump::new();
            }
            out
        }
        // Only reachable if `f` itself asked for the arena.
        Err(_) => f(&Bump::new()),
    })
}

impl<'a> Json<'a> {
    /// Parse `text` into `bump`, borrowing every string that has no escapes.
    pub fn parse(text: &'a str, bump: &'a Bump) -> serde_json::Result<Json<'a>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let tree = Node(bump).deserialize(&mut de)?;
        de.end()?;
        Ok(tree)
    }

    /// A view of an owned value (outbound calls and charger answers, which
    /// are few), so one validator serves both.
    pub fn from_value(v: &'a Value, bump: &'a Bump) -> Json<'a> {
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
            Value::String(s) => Json::Str(s),
            Value::Array(items) => {
                Json::Arr(bump.alloc_slice_fill_iter(items.iter().map(|v| Json::from_value(v, bump))))
            }
            Value::Object(map) => {
                Json::Obj(bump.alloc_slice_fill_iter(map.iter().map(|(k, v)| (k.as_str(), Json::from_value(v, bump)))))
            }
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

use serde::Deserialize;

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

/// Builds one node (and its children) in the arena.
#[derive(Clone, Copy)]
struct Node<'a>(&'a Bump);

impl<'de> DeserializeSeed<'de> for Node<'de> {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'de> {
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
        Ok(Json::Str(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(self.0.alloc_str(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = bumpalo::collections::Vec::with_capacity_in(seq.size_hint().unwrap_or(8), self.0);
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Json::Arr(items.into_bump_slice()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = bumpalo::collections::Vec::with_capacity_in(map.size_hint().unwrap_or(8), self.0);
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            entries.push((key, map.next_value_seed(self)?));
        }
        Ok(Json::Obj(entries.into_bump_slice()))
    }
}

/// An object key: borrowed from the text, or copied into the arena when it
/// had escapes.
struct Key<'a>(&'a Bump);

impl<'de> DeserializeSeed<'de> for Key<'de> {
    type Value = &'de str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'de> {
    type Value = &'de str;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(s)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.0.alloc_str(s))
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
    iter: std::slice::Iter<'a, (&'j str, Json<'j>)>,
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
        let bump = Bump::new();
        let Json::Obj(entries) = Json::parse(text, &bump).unwrap() else {
            panic!("not an object")
        };
        let within = |s: &str| text.as_bytes().as_ptr_range().contains(&s.as_ptr());
        let (key, Json::Str(value)) = entries[0] else {
            panic!("not a string")
        };
        assert_eq!((key, value), ("a", "plain"));
        assert!(within(key) && within(value), "plain strings point into the text");
        let (key, Json::Str(value)) = entries[1] else {
            panic!("not a string")
        };
        assert_eq!((key, value), ("b\n", "esc\"aped"));
        assert!(!within(key) && !within(value), "unescaped copies live in the arena");
        assert_eq!(
            entries[2].1,
            Json::Arr(&[
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
        let bump = Bump::new();
        assert_eq!(Json::from_value(&v, &bump), Json::parse(&text, &bump).unwrap());
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
        let bump = Bump::new();
        let from_tree = T::deserialize(&Json::parse(text, &bump).unwrap()).unwrap();
        assert_eq!(from_tree, serde_json::from_str::<T>(text).unwrap());
        let wrong = Json::parse(r#"{"name":5,"items":[],"kind":"Hard","any":1}"#, &bump).unwrap();
        assert!(T::deserialize(&wrong).is_err());
    }

    #[test]
    fn rejects_what_is_not_json() {
        let bump = Bump::new();
        assert!(Json::parse("{\"a\":", &bump).is_err());
        assert!(Json::parse("[1,]", &bump).is_err());
        assert!(Json::parse("[1] [2]", &bump).is_err(), "trailing data");
        for bad in [
            r#""\ud800""#,
            "\"\u{1}\"",
            "01",
            "1.",
            "-",
            ".5",
            "1e",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            r#""\x""#,
            "[1,2",
            "{\"a\" 1}",
            "{1:2}",
            "tru",
        ] {
            assert!(Json::parse(bad, &bump).is_err(), "{bad}");
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
        assert_eq!(Json::parse(r#" "\ud83d\ude00" "#, &bump).unwrap(), Json::Str("😀"));
        assert_eq!(
            Json::parse(
                "[18446744073709551615, -9223372036854775808, 18446744073709551616]",
                &bump
            )
            .unwrap(),
            Json::Arr(&[
                Json::Num(Num::U(u64::MAX)),
                Json::Num(Num::I(i64::MIN)),
                Json::Num(Num::F(18446744073709551616.0))
            ])
        );
    }

    #[test]
    fn a_deeply_nested_frame_is_refused_rather_than_overflowing_the_stack() {
        // A charger's 2 MB of '[' must cost it an error, not the server its
        // process; a parser without a depth limit aborts here.
        let text = "[".repeat(200_000);
        assert!(Json::parse(&text, &Bump::new()).is_err());
    }

    #[test]
    fn the_arena_is_emptied_for_each_frame_and_dropped_after_a_huge_one() {
        let small = r#"[2,"1","Heartbeat",{}]"#;
        let used = |text: &str| with_arena(|b| Json::parse(text, b).map(|_| b.allocated_bytes()).unwrap());
        let first = used(small);
        let steady = used(small);
        assert!(steady <= first);
        for _ in 0..1000 {
            assert_eq!(used(small), steady, "reset, not grown");
        }
        let huge = format!("[{}]", vec!["[1,2,3]"; 50_000].join(","));
        assert!(used(&huge) > ARENA_KEEP);
        assert!(ARENA.with(|a| a.borrow().allocated_bytes()) <= ARENA_KEEP);
    }

    fn same(a: &Json, b: &Json) -> bool {
        match (a, b) {
            (Json::Num(x), Json::Num(y)) => {
                let (x, y) = (x.as_f64(), y.as_f64());
                // serde_json's default float reading may be a few ulps off
                // what it wrote (9.306555113353389e-39 reads as ...387e-39),
                // further for subnormals.
                x == y || (x - y).abs() <= (4.0 * f64::EPSILON * x.abs().max(y.abs())).max(f64::MIN_POSITIVE)
            }
            (Json::Arr(x), Json::Arr(y)) => x.len() == y.len() && x.iter().zip(*y).all(|(a, b)| same(a, b)),
            // `b` comes from a `serde_json::Value`: keys sorted, the last of
            // a repeated key kept.
            (Json::Obj(x), Json::Obj(y)) => {
                let keys: std::collections::BTreeSet<&str> = x.iter().map(|(k, _)| *k).collect();
                keys.len() == y.len()
                    && y.iter()
                        .all(|(l, b)| x.iter().rev().find(|(k, _)| k == l).is_some_and(|(_, a)| same(a, b)))
            }
            _ => a == b,
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,12}|[\\x00-\\x1f\"\\\\/\\u{1F600}é]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-z\"\\\\]{0,5}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        // Whatever serde_json writes reads back as the tree of the value it
        // wrote: keys, order, escapes and numbers survive the arena.
        #[test]
        fn what_serde_json_writes_reads_back_the_same(v in any_json(), pretty in proptest::prelude::any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let bump = Bump::new();
            let parsed = Json::parse(&text, &bump).unwrap();
            proptest::prop_assert!(same(&parsed, &Json::from_value(&v, &bump)), "{text}");
        }
    }
}
