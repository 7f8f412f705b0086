//! Runtime of the generated Mesos JSON code (`$OUT_DIR/mesos_json.rs`).
//!
//! Owns the per-value rules of the stout dialect: how one scalar, enum, `bytes` or
//! message value is read and written (the [`Kind`]s), how repeated fields and maps are
//! walked, and the error path bookkeeping ([`DeCtx`]). The generated code only decides,
//! per field, which helper to call. Public only because the generated impls of the
//! public [`MesosJson`] trait name these items; not part of the supported API.
//!
//! Invariants: nothing here panics on any input; an error always records the path of the
//! offending field (innermost segment first, see [`DeCtx`]); an unknown enum name in an
//! optional or repeated field is dropped (proto2 semantics, as stout does).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::MesosJson;

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

// ------------------------------------------------------------------ kinds: messages

/// A nested message: a JSON object.
pub struct KMsg<M>(PhantomData<M>);

impl<M: MesosJson> Kind for KMsg<M> {
    type Value = M;
    fn de_present<'de, D: Deserializer<'de>>(d: D, ctx: &mut DeCtx) -> Result<Option<M>, D::Error> {
        d.deserialize_map(MsgVisitor::<M> {
            ctx,
            msg: PhantomData,
        })
        .map(Some)
    }
    fn ser<S: Serializer>(v: &M, s: S) -> Result<S::Ok, S::Error> {
        v.json_serialize(s)
    }
}

struct MsgVisitor<'a, M> {
    ctx: &'a mut DeCtx,
    msg: PhantomData<M>,
}

impl<'de, M: MesosJson> Visitor<'de> for MsgVisitor<'_, M> {
    type Value = M;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object ({})", M::PROTO_NAME)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<M, A::Error> {
        M::json_visit_map(map, self.ctx)
    }
}

/// A message field prost boxes (recursive messages, e.g. `ContainerID.parent`).
pub struct KBox<K>(PhantomData<K>);

impl<K: Kind> Kind for KBox<K> {
    type Value = Box<K::Value>;
    fn de_present<'de, D: Deserializer<'de>>(
        d: D,
        ctx: &mut DeCtx,
    ) -> Result<Option<Box<K::Value>>, D::Error> {
        K::de_present(d, ctx).map(|v| v.map(Box::new))
    }
    fn ser<S: Serializer>(v: &Box<K::Value>, s: S) -> Result<S::Ok, S::Error> {
        K::ser(v, s)
    }
}

// ------------------------------------------------------------------ kinds: enums

/// An optional or repeated enum: a name; unknown names are dropped.
pub struct KEnum<E>(PhantomData<E>);

/// A required enum: a name; unknown names are an error.
pub struct KEnumRequired<E>(PhantomData<E>);

struct EnumVisitor<E> {
    strict: bool,
    e: PhantomData<E>,
}

impl<E: JsonEnum> Visitor<'_> for EnumVisitor<E> {
    type Value = Option<i32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an enum value name (a string)")
    }
    fn visit_str<Er: de::Error>(self, v: &str) -> Result<Option<i32>, Er> {
        match E::from_name(v) {
            Some(x) => Ok(Some(x)),
            None if self.strict => Err(Er::custom(format_args!("unknown enum value {v:?}"))),
            None => Ok(None),
        }
    }
    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<Option<i32>, Er> {
        // A number is taken as is, known or not: it is how values unknown to this build
        // are written (see `ser_enum`), so protobuf -> JSON -> protobuf is lossless.
        match i32::try_from(v) {
            Ok(x) => Ok(Some(x)),
            Err(_) if self.strict => {
                Err(Er::custom(format_args!("enum value {v} is out of range")))
            }
            Err(_) => Ok(None),
        }
    }
    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<Option<i32>, Er> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) if self.strict => {
                Err(Er::custom(format_args!("enum value {v} is out of range")))
            }
            Err(_) => Ok(None),
        }
    }
}

fn ser_enum<E: JsonEnum, S: Serializer>(v: i32, s: S) -> Result<S::Ok, S::Error> {
    match E::name(v) {
        Some(name) => s.serialize_str(name),
        // A value this build does not know (e.g. decoded from a newer peer's protobuf):
        // written as a number, which the input side accepts.
        None => s.serialize_i32(v),
    }
}

impl<E: JsonEnum> Kind for KEnum<E> {
    type Value = i32;
    fn de_present<'de, D: Deserializer<'de>>(d: D, _: &mut DeCtx) -> Result<Option<i32>, D::Error> {
        d.deserialize_any(EnumVisitor::<E> {
            strict: false,
            e: PhantomData,
        })
    }
    fn ser<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
        ser_enum::<E, S>(*v, s)
    }
}

impl<E: JsonEnum> Kind for KEnumRequired<E> {
    type Value = i32;
    fn de_present<'de, D: Deserializer<'de>>(d: D, _: &mut DeCtx) -> Result<Option<i32>, D::Error> {
        d.deserialize_any(EnumVisitor::<E> {
            strict: true,
            e: PhantomData,
        })
    }
    fn ser<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
        ser_enum::<E, S>(*v, s)
    }
}

// ------------------------------------------------------------------ kinds: strings, bytes, bool

/// `string`: a JSON string.
pub struct KString;

struct StringVisitor;

impl Visitor<'_> for StringVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

impl Kind for KString {
    type Value = String;
    fn de_present<'de, D: Deserializer<'de>>(
        d: D,
        _: &mut DeCtx,
    ) -> Result<Option<String>, D::Error> {
        d.deserialize_string(StringVisitor).map(Some)
    }
    fn ser<S: Serializer>(v: &String, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
}

/// `bytes`: standard base64 (padding optional on input, written with padding).
pub struct KBytes;

const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        BASE64.decode(v).map_err(|e| {
            E::custom(format_args!(
                "invalid base64 ({e}); bytes fields take standard base64"
            ))
        })
    }
}

impl Kind for KBytes {
    type Value = Vec<u8>;
    fn de_present<'de, D: Deserializer<'de>>(
        d: D,
        _: &mut DeCtx,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_str(BytesVisitor).map(Some)
    }
    fn ser<S: Serializer>(v: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(v))
    }
}

/// `bool`: `true`/`false`, also as the strings `"true"`/`"false"`.
pub struct KBool;

struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl Kind for KBool {
    type Value = bool;
    fn de_present<'de, D: Deserializer<'de>>(
        d: D,
        _: &mut DeCtx,
    ) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(BoolVisitor).map(Some)
    }
    fn ser<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*v)
    }
}

// ------------------------------------------------------------------ kinds: numbers

/// An integer type: JSON numbers (integral floats such as `5.0` too) or decimal strings.
macro_rules! int_kind {
    ($kind:ident, $visitor:ident, $t:ty, $what:literal) => {
        #[doc = concat!("`", $what, "`: a number or a decimal string.")]
        pub struct $kind;

        struct $visitor;

        impl Visitor<'_> for $visitor {
            type Value = $t;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!("an integer (", $what, ")"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<$t, E> {
                <$t>::try_from(v).map_err(|_| {
                    E::custom(format_args!(concat!("{} is out of range for ", $what), v))
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                <$t>::try_from(v).map_err(|_| {
                    E::custom(format_args!(concat!("{} is out of range for ", $what), v))
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<$t, E> {
                // Integral values within range only. `MIN as f64` is exact and
                // `MAX as f64 + 1.0` is the exact exclusive upper bound for all four types.
                #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
                let (lo, hi) = (<$t>::MIN as f64, <$t>::MAX as f64 + 1.0);
                if v.fract() == 0.0 && v >= lo && v < hi {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Ok(v as $t)
                } else {
                    Err(E::custom(format_args!(
                        concat!("{} is not a valid ", $what),
                        v
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                if let Ok(x) = v.parse::<$t>() {
                    return Ok(x);
                }
                match v.parse::<f64>() {
                    Ok(f) if f.is_finite() => self.visit_f64(f),
                    _ => Err(E::custom(format_args!(
                        concat!("{:?} is not a valid ", $what),
                        v
                    ))),
                }
            }
        }

        impl Kind for $kind {
            type Value = $t;
            fn de_present<'de, D: Deserializer<'de>>(
                d: D,
                _: &mut DeCtx,
            ) -> Result<Option<$t>, D::Error> {
                d.deserialize_any($visitor).map(Some)
            }
            fn ser<S: Serializer>(v: &$t, s: S) -> Result<S::Ok, S::Error> {
                v.serialize(s)
            }
        }
    };
}

int_kind!(KI32, I32Visitor, i32, "int32");
int_kind!(KI64, I64Visitor, i64, "int64");
int_kind!(KU32, U32Visitor, u32, "uint32");
int_kind!(KU64, U64Visitor, u64, "uint64");

/// Parses a double given as a string: a decimal number, `Infinity`, `-Infinity`, `NaN`.
fn parse_double(v: &str) -> Option<f64> {
    match v {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse::<f64>().ok(),
    }
}

/// Writes a double: a JSON number, or `"Infinity"`/`"-Infinity"`/`"NaN"` (JSON has none).
fn ser_double<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if v > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}

/// `double`: a number, a decimal string, or `"Infinity"`/`"-Infinity"`/`"NaN"`.
pub struct KF64;

struct F64Visitor;

impl Visitor<'_> for F64Visitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number (double)")
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_double(v).ok_or_else(|| E::custom(format_args!("{v:?} is not a valid double")))
    }
}

impl Kind for KF64 {
    type Value = f64;
    fn de_present<'de, D: Deserializer<'de>>(d: D, _: &mut DeCtx) -> Result<Option<f64>, D::Error> {
        d.deserialize_any(F64Visitor).map(Some)
    }
    fn ser<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        ser_double(*v, s)
    }
}

/// `float`: as `double`, narrowed.
pub struct KF32;

impl Kind for KF32 {
    type Value = f32;
    #[allow(clippy::cast_possible_truncation)]
    fn de_present<'de, D: Deserializer<'de>>(d: D, _: &mut DeCtx) -> Result<Option<f32>, D::Error> {
        d.deserialize_any(F64Visitor).map(|v| Some(v as f32))
    }
    fn ser<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        ser_double(f64::from(*v), s)
    }
}
