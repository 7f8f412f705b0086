//! Sets of CPU or NUMA node ids in the Linux list format (`0-3,8,10-11`).
//!
//! This is the format of `cpuset.cpus`, `Cpus_allowed_list` in `/proc/<pid>/status`,
//! `RETZ_CPUSET` and the task spec's `cpuset` / `mem_nodes`. Invariants: an [`IdList`] is
//! a sorted set without duplicates, every id is at most [`MAX_ID`], and [`IdList`]'s
//! `Display` prints the canonical (shortest, ascending) form, which parses back to the same
//! set. Parsing is strict: anything but decimal ids, `a-b` ranges with `a <= b`, commas and
//! surrounding whitespace is an error that names the offending piece.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Largest id accepted (Linux `NR_CPUS` tops out at 8192).
pub const MAX_ID: u32 = 8191;

/// A set of CPU or NUMA node ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IdList(BTreeSet<u32>);

/// Why a list could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdListError {
    /// A piece between commas is not a number or a range.
    #[error("`{piece}` in id list `{list}` is not an id or an `a-b` range of decimal ids")]
    Syntax { list: String, piece: String },
    /// A range runs backwards.
    #[error("range `{piece}` in id list `{list}` runs backwards (write the smaller id first)")]
    Backwards { list: String, piece: String },
    /// An id above [`MAX_ID`].
    #[error("id {id} in id list `{list}` is above the maximum of {MAX_ID}")]
    TooLarge { list: String, id: u64 },
}

impl IdList {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the Linux list format. An empty (or all-whitespace) string is the empty set.
    pub fn parse(list: &str) -> Result<Self, IdListError> {
        let trimmed = list.trim();
        let mut set = BTreeSet::new();
        if trimmed.is_empty() {
            return Ok(Self(set));
        }
        for piece in trimmed.split(',') {
            let piece = piece.trim();
            let (lo, hi) = match piece.split_once('-') {
                Some((a, b)) => (
                    parse_id(list, a.trim(), piece)?,
                    parse_id(list, b.trim(), piece)?,
                ),
                None => {
                    let id = parse_id(list, piece, piece)?;
                    (id, id)
                }
            };
            if lo > hi {
                return Err(IdListError::Backwards {
                    list: list.to_owned(),
                    piece: piece.to_owned(),
                });
            }
            set.extend(lo..=hi);
        }
        Ok(Self(set))
    }

    /// Builds a set from ids; fails on an id above [`MAX_ID`].
    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Result<Self, IdListError> {
        let set: BTreeSet<u32> = ids.into_iter().collect();
        match set.last() {
            Some(&id) if id > MAX_ID => Err(IdListError::TooLarge {
                list: format!("{set:?}"),
                id: u64::from(id),
            }),
            _ => Ok(Self(set)),
        }
    }

    /// Number of ids in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u32) -> bool {
        self.0.contains(&id)
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// The smallest id.
    pub fn first(&self) -> Option<u32> {
        self.0.first().copied()
    }

    /// The largest id.
    pub fn last(&self) -> Option<u32> {
        self.0.last().copied()
    }

    /// Whether every id of `self` is in `other`.
    pub fn is_subset(&self, other: &IdList) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Ids in both sets.
    pub fn intersection(&self, other: &IdList) -> IdList {
        IdList(self.0.intersection(&other.0).copied().collect())
    }

    /// Ids of `self` not in `other`.
    pub fn difference(&self, other: &IdList) -> IdList {
        IdList(self.0.difference(&other.0).copied().collect())
    }
}

fn parse_id(list: &str, text: &str, piece: &str) -> Result<u32, IdListError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdListError::Syntax {
            list: list.to_owned(),
            piece: piece.to_owned(),
        });
    }
    // At most 20 digits fit u64; longer runs of digits are simply too large.
    let id = text.parse::<u64>().unwrap_or(u64::MAX);
    if id > u64::from(MAX_ID) {
        return Err(IdListError::TooLarge {
            list: list.to_owned(),
            id,
        });
    }
    Ok(id as u32)
}

impl FromStr for IdList {
    type Err = IdListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut iter = self.0.iter().copied().peekable();
        let mut first = true;
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_kernel_forms() {
        let l = IdList::parse("0-3,8,10-11\n").unwrap();
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(l.to_string(), "0-3,8,10-11");
        assert!(IdList::parse("").unwrap().is_empty());
        assert!(IdList::parse(" \n").unwrap().is_empty());
        assert_eq!(IdList::parse("5").unwrap().to_string(), "5");
        assert_eq!(IdList::parse("3,1,2,2").unwrap().to_string(), "1-3");
        assert_eq!(IdList::parse("0 - 1, 4").unwrap().to_string(), "0-1,4");
    }

    #[test]
    fn rejects_garbage_with_the_piece_named() {
        for (bad, piece) in [
            ("1,,2", ""),
            ("a", "a"),
            ("1-", "1-"),
            ("-1", "-1"),
            ("0-7:2", "0-7:2"),
            ("1-2-3", "1-2-3"),
            ("+1", "+1"),
        ] {
            match IdList::parse(bad) {
                Err(IdListError::Syntax { piece: p, list }) => {
                    assert_eq!(p, piece, "{bad}");
                    assert_eq!(list, bad);
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            IdList::parse("3-1"),
            Err(IdListError::Backwards { .. })
        ));
        assert!(matches!(
            IdList::parse("0-4294967296"),
            Err(IdListError::TooLarge { .. })
        ));
        assert!(matches!(
            IdList::parse("99999999999999999999999999"),
            Err(IdListError::TooLarge { .. })
        ));
        let msg = IdList::parse("1,x").unwrap_err().to_string();
        assert!(msg.contains("`x`") && msg.contains("`1,x`"), "{msg}");
    }

    #[test]
    fn set_operations() {
        let a = IdList::parse("0-3").unwrap();
        let b = IdList::parse("2-5").unwrap();
        assert_eq!(a.intersection(&b).to_string(), "2-3");
        assert_eq!(a.difference(&b).to_string(), "0-1");
        assert!(IdList::parse("1-2").unwrap().is_subset(&a));
        assert!(!b.is_subset(&a));
        assert_eq!(a.first(), Some(0));
        assert_eq!(a.last(), Some(3));
        assert!(IdList::from_ids([MAX_ID + 1]).is_err());
    }

    proptest! {
        #[test]
        fn display_parses_back(ids in proptest::collection::btree_set(0u32..=MAX_ID, 0..64)) {
            let list = IdList::from_ids(ids.iter().copied()).unwrap();
            let text = list.to_string();
            prop_assert_eq!(IdList::parse(&text).unwrap(), list);
            // canonical: no whitespace, no duplicates, ascending
            prop_assert!(!text.contains(' '));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = IdList::parse(&s);
        }
    }
}
