//! Runtime of the generated Mesos JSON code (`$OUT_DIR/mesos_json.rs`).
//!
//! Owns the per-value rules of the stout dialect: how one scalar, enum, `bytes` or
//! message value is read and written (the [`Kind`]s), how repeated fields and maps are
//! walked, and the error path bookkeeping ([`DeCtx`]). The kinds themselves live in
//! `kinds` (messages, enums, strings, bytes, bools, numbers). The generated code only decides,
//! per field, which helper to call. Public only because the generated impls of the
//! public [`MesosJson`] trait name these items; not part of the supported API.
//!
//! Invariants: nothing here panics on any input; an error always records the path of the
//! offending field (innermost segment first, see [`DeCtx`]); an unknown enum name in an
//! optional or repeated field is dropped (proto2 semantics, as stout does).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::MesosJson;

mod kinds;
pub use kinds::*;

/// One step of the path to a field that failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A message field, by its proto name.
    Field(&'static str),
    /// An element of a repeated field.
    Index(usize),
    /// A value of a map field.
    Key(String),
}

/// Decoding context: the path of the failing field, innermost segment first (segments
/// are pushed while the error unwinds).
#[derive(Debug, Default)]
pub struct DeCtx {
    pub(crate) rev_path: Vec<Seg>,
}

impl DeCtx {
    /// The dotted path (`offers[0].resources[1].name`) of the recorded error.
    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.rev_path.iter().rev() {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
                Seg::Key(k) => {
                    out.push('[');
                    out.push_str(&format!("{k:?}"));
                    out.push(']');
                }
            }
        }
        out
    }
}

/// An enum generated from the `.proto` files, seen by name.
pub trait JsonEnum {
    /// The value of a declared name (`"TASK_RUNNING"`), if any.
    fn from_name(name: &str) -> Option<i32>;
    /// The declared name of a value, if it is one of the declared values.
    fn name(value: i32) -> Option<&'static str>;
}

/// How one JSON value maps to one Rust value (an element of a field).
pub trait Kind {
    /// The Rust type prost uses for the element.
    type Value;
    /// Reads a present (non-null) value; `Ok(None)` drops it (unknown enum name).
    fn de_present<'de, D: Deserializer<'de>>(
        d: D,
        ctx: &mut DeCtx,
    ) -> Result<Option<Self::Value>, D::Error>;
    /// Writes the value.
    fn ser<S: Serializer>(v: &Self::Value, s: S) -> Result<S::Ok, S::Error>;
}

// ------------------------------------------------------------------ field keys

/// Maps a JSON key to the index of the field in `self.0`, `usize::MAX` when unknown.
pub struct FieldKey(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldKey {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldKey {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        Ok(self.0.iter().position(|n| *n == v).unwrap_or(usize::MAX))
    }
}

/// Skips the value of an unknown key.
pub fn skip_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

/// The error for a required field that is absent (or null).
pub fn missing<E: de::Error>(ctx: &mut DeCtx, name: &'static str) -> E {
    ctx.rev_path.push(Seg::Field(name));
    E::custom("required field is missing")
}

// ------------------------------------------------------------------ null handling

/// A value that may be JSON `null` (treated as absent).
struct Nullable<'a, K> {
    ctx: &'a mut DeCtx,
    kind: PhantomData<K>,
}

impl<'a, K> Nullable<'a, K> {
    fn new(ctx: &'a mut DeCtx) -> Self {
        Nullable {
            ctx,
            kind: PhantomData,
        }
    }
}

impl<'de, K: Kind> DeserializeSeed<'de> for Nullable<'_, K> {
    type Value = Option<K::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, K: Kind> Visitor<'de> for Nullable<'_, K> {
    type Value = Option<K::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        K::de_present(d, self.ctx)
    }
}

// ------------------------------------------------------------------ field helpers (de)

/// An optional field (or a required message field, checked afterwards).
pub fn de_optional<'de, K: Kind, A: MapAccess<'de>>(
    map: &mut A,
    ctx: &mut DeCtx,
    name: &'static str,
    slot: &mut Option<K::Value>,
) -> Result<(), A::Error> {
    match map.next_value_seed(Nullable::<K>::new(ctx)) {
        Ok(Some(v)) => {
            *slot = Some(v);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            ctx.rev_path.push(Seg::Field(name));
            Err(e)
        }
    }
}

/// A required scalar field: `seen` records presence (null counts as absent).
pub fn de_required<'de, K: Kind, A: MapAccess<'de>>(
    map: &mut A,
    ctx: &mut DeCtx,
    name: &'static str,
    slot: &mut K::Value,
    seen: &mut bool,
) -> Result<(), A::Error> {
    match map.next_value_seed(Nullable::<K>::new(ctx)) {
        Ok(Some(v)) => {
            *slot = v;
            *seen = true;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            ctx.rev_path.push(Seg::Field(name));
            Err(e)
        }
    }
}

/// A repeated field: a JSON array (or null); dropped elements (null, unknown enum
/// names) are skipped.
pub fn de_repeated<'de, K: Kind, A: MapAccess<'de>>(
    map: &mut A,
    ctx: &mut DeCtx,
    name: &'static str,
    slot: &mut Vec<K::Value>,
) -> Result<(), A::Error> {
    let seed = RepeatedSeed::<K> {
        ctx: &mut *ctx,
        out: slot,
    };
    map.next_value_seed(seed).inspect_err(|_| {
        ctx.rev_path.push(Seg::Field(name));
    })
}

struct RepeatedSeed<'a, K: Kind> {
    ctx: &'a mut DeCtx,
    out: &'a mut Vec<K::Value>,
}

impl<'de, K: Kind> DeserializeSeed<'de> for RepeatedSeed<'_, K> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, K: Kind> Visitor<'de> for RepeatedSeed<'_, K> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.out.reserve(n.min(4096));
        }
        let mut i = 0usize;
        loop {
            match seq.next_element_seed(Nullable::<K>::new(self.ctx)) {
                Ok(Some(Some(v))) => self.out.push(v),
                Ok(Some(None)) => {}
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.ctx.rev_path.push(Seg::Index(i));
                    return Err(e);
                }
            }
            i += 1;
        }
    }
}

/// A `map<string, V>` field: a JSON object (or null).
pub fn de_map<'de, K: Kind, A: MapAccess<'de>>(
    map: &mut A,
    ctx: &mut DeCtx,
    name: &'static str,
    slot: &mut BTreeMap<String, K::Value>,
) -> Result<(), A::Error> {
    let seed = MapSeed::<K> {
        ctx: &mut *ctx,
        out: slot,
    };
    map.next_value_seed(seed).inspect_err(|_| {
        ctx.rev_path.push(Seg::Field(name));
    })
}

struct MapSeed<'a, K: Kind> {
    ctx: &'a mut DeCtx,
    out: &'a mut BTreeMap<String, K::Value>,
}

impl<'de, K: Kind> DeserializeSeed<'de> for MapSeed<'_, K> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, K: Kind> Visitor<'de> for MapSeed<'_, K> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (a map)")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value_seed(Nullable::<K>::new(self.ctx)) {
                Ok(Some(v)) => {
                    self.out.insert(key, v);
                }
                Ok(None) => {}
                Err(e) => {
                    self.ctx.rev_path.push(Seg::Key(key));
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ field helpers (ser)

/// Writes `name: value`.
pub fn ser_value<K: Kind, M: SerializeMap>(
    m: &mut M,
    name: &'static str,
    v: &K::Value,
) -> Result<(), M::Error> {
    m.serialize_entry(name, &One::<K>(v))
}

/// Writes `name: value` when set.
pub fn ser_optional<K: Kind, M: SerializeMap>(
    m: &mut M,
    name: &'static str,
    v: Option<&K::Value>,
) -> Result<(), M::Error> {
    match v {
        Some(v) => m.serialize_entry(name, &One::<K>(v)),
        None => Ok(()),
    }
}

/// Writes `name: [...]` when not empty.
pub fn ser_repeated<K: Kind, M: SerializeMap>(
    m: &mut M,
    name: &'static str,
    v: &[K::Value],
) -> Result<(), M::Error> {
    if v.is_empty() {
        return Ok(());
    }
    m.serialize_entry(name, &Many::<K>(v))
}

/// Writes `name: {...}` when not empty.
pub fn ser_map<K: Kind, M: SerializeMap>(
    m: &mut M,
    name: &'static str,
    v: &BTreeMap<String, K::Value>,
) -> Result<(), M::Error> {
    if v.is_empty() {
        return Ok(());
    }
    m.serialize_entry(name, &Entries::<K>(v))
}

/// One value written through its [`Kind`].
pub(crate) struct One<'a, K: Kind>(pub(crate) &'a K::Value);

impl<K: Kind> Serialize for One<'_, K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        K::ser(self.0, s)
    }
}

struct Many<'a, K: Kind>(&'a [K::Value]);

impl<K: Kind> Serialize for Many<'_, K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&One::<K>(v))?;
        }
        seq.end()
    }
}

struct Entries<'a, K: Kind>(&'a BTreeMap<String, K::Value>);

impl<K: Kind> Serialize for Entries<'_, K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, &One::<K>(v))?;
        }
        m.end()
    }
}
