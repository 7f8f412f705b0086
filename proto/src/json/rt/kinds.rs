//! The value kinds of the stout JSON dialect: messages, enums, strings, bytes, bools and
//! numbers (each a [`Kind`]: how one value is read and written).

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

use super::*;

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
