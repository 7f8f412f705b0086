//! JSON form of a resource range: an exact amount is a plain number (as the original
//! Retz wrote `"cpu": 2`); a range is a string (`"2-4"`, `"2-"`). Both forms are read.

use std::fmt;
use std::str::FromStr;

use retz_placement::ResourceRange;
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

pub(crate) fn serialize<T, S>(r: &ResourceRange<T>, s: S) -> Result<S::Ok, S::Error>
where
    T: Copy + Into<u64> + PartialEq + fmt::Display,
    S: Serializer,
{
    match r.max {
        Some(m) if m == r.min => s.serialize_u64(r.min.into()),
        _ => s.collect_str(r),
    }
}

pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<ResourceRange<T>, D::Error>
where
    T: FromStr + Copy + Ord + fmt::Display + TryFrom<u64>,
    D: Deserializer<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<T> Visitor<'_> for V<T>
    where
        T: FromStr + Copy + Ord + fmt::Display + TryFrom<u64>,
    {
        type Value = ResourceRange<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number or a range string such as \"2-4\" or \"2-\"")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            T::try_from(v)
                .map(ResourceRange::exactly)
                .map_err(|_| E::custom(format!("{v} is too large")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("{v} is negative; amounts are at least 0")))
                .and_then(|v| self.visit_u64(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.parse().map_err(E::custom)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}
