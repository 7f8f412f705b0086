//! Sets of logical CPU ids, NUMA node ids and GPU device ids.
//!
//! Owns [`CpuId`], [`NodeId`], [`GpuId`] and the bitset-backed [`CpuSet`], [`NodeSet`] and
//! [`GpuSet`], their parsing from and printing to the Linux list format (`0-3,8,10-11`, as
//! found in `/sys/devices/system/cpu/online` and `cpuset.cpus`), and [`SetParseError`].
//!
//! Invariants:
//! - A set is a window of 64-bit words starting at word `start`; bit `i % 64` of word
//!   `i / 64` is id `i`, so clustered high ids cost a few words, not `i / 64` of them.
//! - The window never starts or ends with a zero word (and `start` is 0 when empty), so two
//!   equal sets have identical representations (derived `Eq`/`Hash` are correct) and the
//!   empty set allocates nothing.
//! - Ids are at most [`MAX_SET_ID`]; parsing rejects larger ids, so a hostile list such as
//!   `0-4294967295` cannot make us allocate gigabytes. Programmatic `insert` of a larger id
//!   panics (it is a caller bug, not outside input); use [`CpuSet::try_insert`] when the id
//!   comes from outside.
//! - `iter` and `ranges` yield ids in ascending order; `Display` prints the canonical list
//!   (ascending, maximal runs, `a-b` for runs of two or more).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest id a [`CpuSet`] or [`NodeSet`] may hold (Linux allows at most 8192 CPUs with
/// `NR_CPUS`; we leave ample room).
pub const MAX_SET_ID: u32 = 65_535;

/// A logical CPU (processing unit) id as the Linux kernel numbers it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct CpuId(pub u32);

/// A NUMA node id as the Linux kernel numbers it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u32);

/// A GPU device id: the index a job names in `CUDA_VISIBLE_DEVICES` (NVML/CUDA, or ROCm
/// SMI, numbering), as the agent advertises it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GpuId(pub u32);

impl fmt::Display for GpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What went wrong while parsing a list such as `0-3,8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetParseErrorKind {
    /// A number was expected (at the start of an element or after `-`).
    ExpectedNumber,
    /// A character that is not a digit, `-` or `,`.
    UnexpectedChar(char),
    /// An element between two commas (or at an end) is empty, e.g. `0,,2` or `0,`.
    EmptyElement,
    /// `a-b` with `a > b`.
    ReversedRange { start: u32, end: u32 },
    /// An id larger than [`MAX_SET_ID`] (or one that does not fit in 32 bits).
    IdTooLarge,
}

/// A list (`0-3,8,10-11`) that could not be parsed: what was wrong, and at which byte.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} list {input:?}: {} at byte {pos}; expected a list like \"0-3,8,10-11\"", describe(.kind))]
pub struct SetParseError {
    /// `"CPU"` or `"NUMA node"`.
    pub what: &'static str,
    /// The input after trimming surrounding whitespace (truncated to 64 characters).
    pub input: String,
    /// Byte offset of the problem in `input`.
    pub pos: usize,
    /// The problem.
    pub kind: SetParseErrorKind,
}

fn describe(kind: &SetParseErrorKind) -> String {
    match kind {
        SetParseErrorKind::ExpectedNumber => "expected a number".to_string(),
        SetParseErrorKind::UnexpectedChar(c) => format!("unexpected character {c:?}"),
        SetParseErrorKind::EmptyElement => "empty element".to_string(),
        SetParseErrorKind::ReversedRange { start, end } => {
            format!("range {start}-{end} runs backwards")
        }
        SetParseErrorKind::IdTooLarge => format!("id larger than the maximum {MAX_SET_ID}"),
    }
}

/// The shared bitset behind [`CpuSet`] and [`NodeSet`]: words `start..start+len` of an
/// infinite bitset, so sets of clustered high ids (a core of CPUs 4096-4097) stay small.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Bits {
    /// Word index of `words[0]`; 0 when empty.
    start: u32,
    /// Never starts or ends with a zero word.
    words: Vec<u64>,
}

impl Bits {
    fn end(&self) -> u32 {
        self.start + self.words.len() as u32
    }

    fn word(&self, w: u32) -> u64 {
        if w >= self.start && w < self.end() {
            self.words[(w - self.start) as usize]
        } else {
            0
        }
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
        let lead = self.words.iter().take_while(|&&w| w == 0).count();
        if lead > 0 {
            self.words.drain(..lead);
            self.start += lead as u32;
        }
        if self.words.is_empty() {
            self.start = 0;
        }
    }

    /// Makes word `w` addressable.
    fn cover(&mut self, w: u32) {
        if self.words.is_empty() {
            self.start = w;
            self.words.push(0);
        } else if w < self.start {
            let extra = (self.start - w) as usize;
            self.words.splice(0..0, std::iter::repeat_n(0, extra));
            self.start = w;
        } else if w >= self.end() {
            self.words.resize((w - self.start + 1) as usize, 0);
        }
    }

    fn insert(&mut self, i: u32) -> bool {
        assert!(
            i <= MAX_SET_ID,
            "set id {i} exceeds MAX_SET_ID {MAX_SET_ID}"
        );
        let w = i / 64;
        self.cover(w);
        let slot = &mut self.words[(w - self.start) as usize];
        let mask = 1u64 << (i % 64);
        let was = *slot & mask != 0;
        *slot |= mask;
        !was
    }

    fn insert_range(&mut self, start: u32, end: u32) {
        assert!(start <= end && end <= MAX_SET_ID);
        self.cover(start / 64);
        self.cover(end / 64);
        let mut i = start;
        while i <= end {
            let w = i / 64;
            let lo = i % 64;
            let hi = if end / 64 == w { end % 64 } else { 63 };
            let width = hi - lo + 1;
            let mask = if width == 64 {
                u64::MAX
            } else {
                ((1u64 << width) - 1) << lo
            };
            self.words[(w - self.start) as usize] |= mask;
            i = (w + 1) * 64;
        }
    }

    fn remove(&mut self, i: u32) -> bool {
        let w = i / 64;
        if w < self.start || w >= self.end() {
            return false;
        }
        let slot = &mut self.words[(w - self.start) as usize];
        let mask = 1u64 << (i % 64);
        let was = *slot & mask != 0;
        *slot &= !mask;
        self.trim();
        was
    }

    fn contains(&self, i: u32) -> bool {
        self.word(i / 64) & (1u64 << (i % 64)) != 0
    }

    fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The overlapping word range of two sets.
    fn overlap(&self, o: &Bits) -> std::ops::Range<u32> {
        self.start.max(o.start)..self.end().min(o.end())
    }

    fn union(&self, o: &Bits) -> Bits {
        if o.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return o.clone();
        }
        let start = self.start.min(o.start);
        let end = self.end().max(o.end());
        Bits {
            start,
            words: (start..end).map(|w| self.word(w) | o.word(w)).collect(),
        }
    }

    fn union_with(&mut self, o: &Bits) {
        if o.is_empty() {
            return;
        }
        self.cover(o.start);
        self.cover(o.end() - 1);
        let base = self.start;
        for (k, &x) in o.words.iter().enumerate() {
            self.words[(o.start - base) as usize + k] |= x;
        }
    }

    fn intersection(&self, o: &Bits) -> Bits {
        let r = self.overlap(o);
        let mut b = Bits {
            start: r.start,
            words: r.map(|w| self.word(w) & o.word(w)).collect(),
        };
        b.trim();
        b
    }

    fn intersection_len(&self, o: &Bits) -> usize {
        self.overlap(o)
            .map(|w| (self.word(w) & o.word(w)).count_ones() as usize)
            .sum()
    }

    fn difference(&self, o: &Bits) -> Bits {
        let mut b = self.clone();
        b.difference_with(o);
        b
    }

    fn difference_with(&mut self, o: &Bits) {
        let r = self.overlap(o);
        if r.is_empty() {
            return;
        }
        for w in r {
            let x = o.word(w);
            self.words[(w - self.start) as usize] &= !x;
        }
        self.trim();
    }

    fn is_subset(&self, o: &Bits) -> bool {
        self.words
            .iter()
            .enumerate()
            .all(|(k, &x)| x & !o.word(self.start + k as u32) == 0)
    }

    fn is_disjoint(&self, o: &Bits) -> bool {
        self.overlap(o).all(|w| self.word(w) & o.word(w) == 0)
    }

    fn first(&self) -> Option<u32> {
        self.iter().next()
    }

    fn last(&self) -> Option<u32> {
        let word = *self.words.last()?;
        Some((self.end() - 1) * 64 + 63 - word.leading_zeros())
    }

    fn iter(&self) -> BitIter<'_> {
        BitIter {
            words: &self.words,
            base: self.start,
            index: 0,
            current: self.words.first().copied().unwrap_or(0),
        }
    }

    fn ranges(&self) -> RangeIter<'_> {
        RangeIter {
            inner: self.iter(),
            pending: None,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }

    fn parse(s: &str, what: &'static str) -> Result<Bits, SetParseError> {
        let input = s.trim();
        let err = |pos: usize, kind: SetParseErrorKind| SetParseError {
            what,
            input: input.chars().take(64).collect(),
            pos,
            kind,
        };
        let mut bits = Bits::default();
        if input.is_empty() {
            return Ok(bits);
        }
        let bytes = input.as_bytes();
        let mut pos = 0usize;
        loop {
            // One element: NUMBER or NUMBER-NUMBER.
            if pos >= bytes.len() || bytes[pos] == b',' {
                return Err(err(pos, SetParseErrorKind::EmptyElement));
            }
            let (start, next) = parse_number(bytes, pos).map_err(|(p, k)| err(p, k))?;
            pos = next;
            let mut end = start;
            if pos < bytes.len() && bytes[pos] == b'-' {
                pos += 1;
                let (e, next) = parse_number(bytes, pos).map_err(|(p, k)| err(p, k))?;
                if e < start {
                    return Err(err(pos, SetParseErrorKind::ReversedRange { start, end: e }));
                }
                end = e;
                pos = next;
            }
            bits.insert_range(start, end);
            if pos >= bytes.len() {
                return Ok(bits);
            }
            match bytes[pos] {
                b',' => {
                    pos += 1;
                    if pos >= bytes.len() {
                        return Err(err(pos, SetParseErrorKind::EmptyElement));
                    }
                }
                _ => {
                    let c = input[pos..].chars().next().unwrap_or('?');
                    return Err(err(pos, SetParseErrorKind::UnexpectedChar(c)));
                }
            }
        }
    }
}

/// Parses a decimal number at `pos`; returns it and the position after it.
fn parse_number(bytes: &[u8], pos: usize) -> Result<(u32, usize), (usize, SetParseErrorKind)> {
    let mut p = pos;
    let mut value: u64 = 0;
    while p < bytes.len() && bytes[p].is_ascii_digit() {
        value = value * 10 + u64::from(bytes[p] - b'0');
        if value > u64::from(MAX_SET_ID) {
            return Err((pos, SetParseErrorKind::IdTooLarge));
        }
        p += 1;
    }
    if p == pos {
        return match bytes.get(pos) {
            None => Err((pos, SetParseErrorKind::ExpectedNumber)),
            Some(b) if b.is_ascii() => {
                if *b == b',' || *b == b'-' {
                    Err((pos, SetParseErrorKind::ExpectedNumber))
                } else {
                    Err((pos, SetParseErrorKind::UnexpectedChar(*b as char)))
                }
            }
            Some(_) => Err((pos, SetParseErrorKind::ExpectedNumber)),
        };
    }
    Ok((value as u32, p))
}

struct BitIter<'a> {
    words: &'a [u64],
    base: u32,
    index: usize,
    current: u64,
}

impl Iterator for BitIter<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        loop {
            if self.current != 0 {
                let bit = self.current.trailing_zeros();
                self.current &= self.current - 1;
                return Some((self.base + self.index as u32) * 64 + bit);
            }
            self.index += 1;
            if self.index >= self.words.len() {
                return None;
            }
            self.current = self.words[self.index];
        }
    }
}

struct RangeIter<'a> {
    inner: BitIter<'a>,
    pending: Option<u32>,
}

impl Iterator for RangeIter<'_> {
    type Item = (u32, u32);
    fn next(&mut self) -> Option<(u32, u32)> {
        let start = match self.pending.take() {
            Some(s) => s,
            None => self.inner.next()?,
        };
        let mut end = start;
        for i in self.inner.by_ref() {
            if i == end + 1 {
                end = i;
            } else {
                self.pending = Some(i);
                break;
            }
        }
        Some((start, end))
    }
}

fn write_list(bits: &Bits, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut first = true;
    for (a, b) in bits.ranges() {
        if !first {
            f.write_str(",")?;
        }
        first = false;
        if a == b {
            write!(f, "{a}")?;
        } else {
            write!(f, "{a}-{b}")?;
        }
    }
    Ok(())
}

macro_rules! id_set {
    ($(#[$doc:meta])* $name:ident, $id:ident, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            bits: Bits,
        }

        impl $name {
            /// The empty set.
            pub fn new() -> Self {
                Self::default()
            }

            /// The set `{start, ..., end}` (inclusive). Panics if `start > end` or
            /// `end > MAX_SET_ID`.
            pub fn from_range(start: u32, end: u32) -> Self {
                let mut bits = Bits::default();
                bits.insert_range(start, end);
                Self { bits }
            }

            /// Adds an id; returns whether it was new. Panics if the id exceeds
            /// [`MAX_SET_ID`]; use `try_insert` for ids from outside.
            pub fn insert(&mut self, id: $id) -> bool {
                self.bits.insert(id.0)
            }

            /// Adds an id, or returns `None` if it exceeds [`MAX_SET_ID`].
            pub fn try_insert(&mut self, id: $id) -> Option<bool> {
                (id.0 <= MAX_SET_ID).then(|| self.bits.insert(id.0))
            }

            /// Removes an id; returns whether it was present.
            pub fn remove(&mut self, id: $id) -> bool {
                self.bits.remove(id.0)
            }

            /// Whether the id is in the set.
            pub fn contains(&self, id: $id) -> bool {
                self.bits.contains(id.0)
            }

            /// Number of ids.
            pub fn len(&self) -> usize {
                self.bits.len()
            }

            /// Whether the set is empty.
            pub fn is_empty(&self) -> bool {
                self.bits.is_empty()
            }

            /// The ids in ascending order.
            pub fn iter(&self) -> impl Iterator<Item = $id> + '_ {
                self.bits.iter().map($id)
            }

            /// Maximal inclusive runs `(first, last)` in ascending order, e.g. for Mesos
            /// RANGES.
            pub fn ranges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
                self.bits.ranges()
            }

            /// The smallest id.
            pub fn first(&self) -> Option<$id> {
                self.bits.first().map($id)
            }

            /// The largest id.
            pub fn last(&self) -> Option<$id> {
                self.bits.last().map($id)
            }

            /// `self ∪ other`.
            pub fn union(&self, other: &Self) -> Self {
                Self { bits: self.bits.union(&other.bits) }
            }

            /// `self ∩ other`.
            pub fn intersection(&self, other: &Self) -> Self {
                Self { bits: self.bits.intersection(&other.bits) }
            }

            /// `self \ other`.
            pub fn difference(&self, other: &Self) -> Self {
                Self { bits: self.bits.difference(&other.bits) }
            }

            /// In place: `self = self ∪ other`.
            pub fn union_with(&mut self, other: &Self) {
                self.bits.union_with(&other.bits);
            }

            /// In place: `self = self \ other`.
            pub fn difference_with(&mut self, other: &Self) {
                self.bits.difference_with(&other.bits);
            }

            /// `|self ∩ other|` without allocating.
            pub fn intersection_len(&self, other: &Self) -> usize {
                self.bits.intersection_len(&other.bits)
            }

            /// Whether every id of `self` is in `other`.
            pub fn is_subset(&self, other: &Self) -> bool {
                self.bits.is_subset(&other.bits)
            }

            /// Whether the sets share no id.
            pub fn is_disjoint(&self, other: &Self) -> bool {
                self.bits.is_disjoint(&other.bits)
            }

            /// Bytes this set holds on the heap (for memory accounting).
            pub fn heap_bytes(&self) -> usize {
                self.bits.heap_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_list(&self.bits, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = SetParseError;
            fn from_str(s: &str) -> Result<Self, SetParseError> {
                Ok(Self { bits: Bits::parse(s, $what)? })
            }
        }

        impl FromIterator<$id> for $name {
            fn from_iter<I: IntoIterator<Item = $id>>(iter: I) -> Self {
                let mut s = Self::new();
                for id in iter {
                    s.insert(id);
                }
                s
            }
        }

        impl Extend<$id> for $name {
            fn extend<I: IntoIterator<Item = $id>>(&mut self, iter: I) {
                for id in iter {
                    self.insert(id);
                }
            }
        }

        /// Serialized as the list string, e.g. `"0-3,8"`.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_set!(
    /// A set of logical CPU ids (bitset). Parses from and prints as the Linux list format.
    CpuSet,
    CpuId,
    "CPU"
);

id_set!(
    /// A set of NUMA node ids (bitset). Parses from and prints as the Linux list format.
    NodeSet,
    NodeId,
    "NUMA node"
);

id_set!(
    /// A set of GPU device ids (bitset): the indexes `CUDA_VISIBLE_DEVICES` takes (NVML,
    /// CUDA or ROCm SMI numbering, as the agent advertises them). Parses from and prints as
    /// the Linux list format.
    GpuSet,
    GpuId,
    "GPU"
);

#[cfg(test)]
mod tests;
