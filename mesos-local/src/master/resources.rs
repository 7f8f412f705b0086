//! Resource arithmetic of the master: the multiset of Mesos `Resource`s an agent has,
//! uses, offers or a task asks for, with `Resources::contains` semantics as in Mesos.
//!
//! Invariants of [`Resources`]:
//! * resources are grouped by identity: everything but the value (name, type, role or
//!   reservations, disk, revocable, shared, provider), with `allocation_info` ignored and
//!   the deprecated default role `"*"` equal to no role;
//! * scalars are fixed point with three decimals (as Mesos does), strictly positive;
//!   ranges are sorted, disjoint, coalesced and non-empty; sets are non-empty;
//! * an entry whose value becomes empty is removed, so `is_empty` is exact.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use prost::Message as _;
use retz_proto::mesos::{Resource, value};

/// Scalars are kept in thousandths, like Mesos' fixed-point `Value::Scalar`.
const SCALE: f64 = 1000.0;

/// Why a `Resource` is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resource '{name}': {reason}")]
pub struct ResourceError {
    /// The resource's name.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// An inclusive range set of `u64`, sorted, disjoint and coalesced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    runs: Vec<(u64, u64)>,
}

impl RangeSet {
    /// Builds a set from inclusive ranges, rejecting `begin > end` and overlaps.
    pub fn from_ranges(ranges: &[value::Range]) -> Result<RangeSet, String> {
        let mut runs: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for r in ranges {
            if r.begin > r.end {
                return Err(format!("range [{}-{}] has begin > end", r.begin, r.end));
            }
            runs.push((r.begin, r.end));
        }
        runs.sort_unstable();
        for w in runs.windows(2) {
            if w[1].0 <= w[0].1 {
                return Err(format!(
                    "ranges [{}-{}] and [{}-{}] overlap",
                    w[0].0, w[0].1, w[1].0, w[1].1
                ));
            }
        }
        let mut set = RangeSet { runs: Vec::new() };
        for (b, e) in runs {
            set.push_sorted(b, e);
        }
        Ok(set)
    }

    fn push_sorted(&mut self, b: u64, e: u64) {
        if let Some(last) = self.runs.last_mut()
            && last.1.checked_add(1).is_some_and(|n| n >= b)
        {
            last.1 = last.1.max(e);
            return;
        }
        self.runs.push((b, e));
    }

    /// The inclusive runs, ascending.
    pub fn runs(&self) -> &[(u64, u64)] {
        &self.runs
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// How many values the set holds (saturating).
    pub fn count(&self) -> u64 {
        self.runs.iter().fold(0u64, |acc, (b, e)| {
            acc.saturating_add(e - b).saturating_add(1)
        })
    }

    /// The union of both sets.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        let mut all: Vec<(u64, u64)> = self.runs.iter().chain(&other.runs).copied().collect();
        all.sort_unstable();
        let mut out = RangeSet::default();
        for (b, e) in all {
            out.push_sorted(b, e);
        }
        out
    }

    /// The values of `self` not in `other`.
    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        let mut out = RangeSet::default();
        let mut j = 0;
        for &(b, e) in &self.runs {
            let mut start = b;
            let mut done = false;
            while j < other.runs.len() && other.runs[j].1 < start {
                j += 1;
            }
            let mut k = j;
            while k < other.runs.len() && other.runs[k].0 <= e {
                let (ob, oe) = other.runs[k];
                if ob > start {
                    out.runs.push((start, ob - 1));
                }
                if oe >= e {
                    done = true;
                    break;
                }
                start = oe + 1;
                k += 1;
            }
            if !done {
                out.runs.push((start, e));
            }
        }
        out
    }

    /// Whether every value of `other` is in `self`.
    pub fn contains(&self, other: &RangeSet) -> bool {
        other.runs.iter().all(|&(b, e)| {
            // The run of `self` that could hold `b` is the last one starting at or before it.
            let idx = self.runs.partition_point(|&(sb, _)| sb <= b);
            idx > 0 && self.runs[idx - 1].1 >= e
        })
    }

    /// As Mesos ranges.
    pub fn to_proto(&self) -> value::Ranges {
        value::Ranges {
            range: self
                .runs
                .iter()
                .map(|&(begin, end)| value::Range { begin, end })
                .collect(),
        }
    }
}

impl fmt::Display for RangeSet {
    /// Mesos' text form: `[a-b, c-d]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, (b, e)) in self.runs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{b}-{e}")?;
        }
        f.write_str("]")
    }
}

/// The value part of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Quantity {
    /// Thousandths.
    Scalar(i64),
    Ranges(RangeSet),
    Set(BTreeSet<String>),
}

impl Quantity {
    fn is_empty(&self) -> bool {
        match self {
            Quantity::Scalar(v) => *v <= 0,
            Quantity::Ranges(r) => r.is_empty(),
            Quantity::Set(s) => s.is_empty(),
        }
    }

    fn add(&mut self, other: &Quantity) {
        match (self, other) {
            (Quantity::Scalar(a), Quantity::Scalar(b)) => *a = a.saturating_add(*b),
            (Quantity::Ranges(a), Quantity::Ranges(b)) => *a = a.union(b),
            (Quantity::Set(a), Quantity::Set(b)) => a.extend(b.iter().cloned()),
            // Identity includes the type, so the kinds always agree.
            _ => {}
        }
    }

    fn subtract(&mut self, other: &Quantity) {
        match (self, other) {
            (Quantity::Scalar(a), Quantity::Scalar(b)) => *a = a.saturating_sub(*b).max(0),
            (Quantity::Ranges(a), Quantity::Ranges(b)) => *a = a.difference(b),
            (Quantity::Set(a), Quantity::Set(b)) => a.retain(|x| !b.contains(x)),
            _ => {}
        }
    }

    fn contains(&self, other: &Quantity) -> bool {
        match (self, other) {
            (Quantity::Scalar(a), Quantity::Scalar(b)) => a >= b,
            (Quantity::Ranges(a), Quantity::Ranges(b)) => a.contains(b),
            (Quantity::Set(a), Quantity::Set(b)) => b.is_subset(a),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// The resource with its value fields cleared (the identity).
    proto: Resource,
    qty: Quantity,
}

/// A validated multiset of resources (see the module invariants).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    items: BTreeMap<Vec<u8>, Entry>,
}

fn to_fixed(v: f64) -> i64 {
    // Saturating float to int conversion; callers have checked `v` is finite.
    (v * SCALE).round() as i64
}

fn from_fixed(v: i64) -> f64 {
    v as f64 / SCALE
}

fn identity(r: &Resource) -> Resource {
    let mut id = r.clone();
    id.scalar = None;
    id.ranges = None;
    id.set = None;
    id.allocation_info = None;
    if id.role.as_deref() == Some("*") {
        id.role = None;
    }
    id
}

fn is_unreserved(r: &Resource) -> bool {
    r.reservations.is_empty()
        && r.reservation.is_none()
        && r.role.as_deref().is_none_or(|role| role == "*")
}

impl Resources {
    /// An empty set.
    pub fn new() -> Resources {
        Resources::default()
    }

    /// Parses and validates resources as a task, executor or agent gives them.
    ///
    /// Rejects an empty name, a value field that does not match the type, a scalar that
    /// is not a finite number above zero, ranges with `begin > end` or overlaps, duplicate
    /// set items and TEXT resources.
    pub fn from_protos(protos: &[Resource]) -> Result<Resources, ResourceError> {
        let mut out = Resources::new();
        for r in protos {
            out.add_entry(Self::parse_one(r)?);
        }
        Ok(out)
    }

    fn parse_one(r: &Resource) -> Result<Entry, ResourceError> {
        let err = |reason: String| ResourceError {
            name: r.name.clone(),
            reason,
        };
        if r.name.is_empty() {
            return Err(err("empty resource name".into()));
        }
        let qty = match value::Type::try_from(r.r#type) {
            Ok(value::Type::Scalar) => {
                let Some(s) = &r.scalar else {
                    return Err(err("SCALAR resource without 'scalar'".into()));
                };
                if !s.value.is_finite() || s.value <= 0.0 {
                    return Err(err(format!(
                        "scalar value {} must be a finite number above zero",
                        s.value
                    )));
                }
                if s.value > 1e15 {
                    return Err(err(format!("scalar value {} is too large", s.value)));
                }
                let fixed = to_fixed(s.value);
                if fixed == 0 {
                    return Err(err(format!(
                        "scalar value {} rounds to zero at three decimals",
                        s.value
                    )));
                }
                Quantity::Scalar(fixed)
            }
            Ok(value::Type::Ranges) => {
                let Some(rs) = &r.ranges else {
                    return Err(err("RANGES resource without 'ranges'".into()));
                };
                let set = RangeSet::from_ranges(&rs.range).map_err(err)?;
                if set.is_empty() {
                    return Err(err("RANGES resource with no range".into()));
                }
                Quantity::Ranges(set)
            }
            Ok(value::Type::Set) => {
                let Some(s) = &r.set else {
                    return Err(err("SET resource without 'set'".into()));
                };
                let mut items = BTreeSet::new();
                for item in &s.item {
                    if !items.insert(item.clone()) {
                        return Err(err(format!("duplicate set item '{item}'")));
                    }
                }
                if items.is_empty() {
                    return Err(err("SET resource with no item".into()));
                }
                Quantity::Set(items)
            }
            Ok(value::Type::Text) => {
                return Err(err("TEXT is not a valid resource type".into()));
            }
            Err(_) => return Err(err(format!("unknown value type {}", r.r#type))),
        };
        Ok(Entry {
            proto: identity(r),
            qty,
        })
    }

    fn add_entry(&mut self, entry: Entry) {
        if entry.qty.is_empty() {
            return;
        }
        let key = entry.proto.encode_to_vec();
        match self.items.get_mut(&key) {
            Some(existing) => existing.qty.add(&entry.qty),
            None => {
                self.items.insert(key, entry);
            }
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        for (key, e) in &other.items {
            match self.items.get_mut(key) {
                Some(existing) => existing.qty.add(&e.qty),
                None => {
                    self.items.insert(key.clone(), e.clone());
                }
            }
        }
    }

    /// Removes `other` from `self` (what `self` does not hold is ignored).
    pub fn subtract(&mut self, other: &Resources) {
        for (key, e) in &other.items {
            if let Some(existing) = self.items.get_mut(key) {
                existing.qty.subtract(&e.qty);
                if existing.qty.is_empty() {
                    self.items.remove(key);
                }
            }
        }
    }

    /// `self` plus `other`.
    pub fn plus(&self, other: &Resources) -> Resources {
        let mut r = self.clone();
        r.add(other);
        r
    }

    /// `self` minus `other`.
    pub fn minus(&self, other: &Resources) -> Resources {
        let mut r = self.clone();
        r.subtract(other);
        r
    }

    /// Whether `self` holds all of `other` (Mesos `Resources::contains`).
    pub fn contains(&self, other: &Resources) -> bool {
        other.items.iter().all(|(key, e)| {
            self.items
                .get(key)
                .is_some_and(|mine| mine.qty.contains(&e.qty))
        })
    }

    /// The sum of the scalar resources called `name`, whatever their role.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        let mut total: Option<i64> = None;
        for e in self.items.values() {
            if e.proto.name == name
                && let Quantity::Scalar(v) = e.qty
            {
                total = Some(total.unwrap_or(0).saturating_add(v));
            }
        }
        total.map(from_fixed)
    }

    /// Only the unreserved resources.
    pub fn unreserved(&self) -> Resources {
        Resources {
            items: self
                .items
                .iter()
                .filter(|(_, e)| is_unreserved(&e.proto))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
        }
    }

    /// Only the reserved resources, by the role they are reserved for.
    pub fn reserved_by_role(&self) -> BTreeMap<String, Resources> {
        let mut out: BTreeMap<String, Resources> = BTreeMap::new();
        for (k, e) in &self.items {
            if is_unreserved(&e.proto) {
                continue;
            }
            let role = e
                .proto
                .reservations
                .last()
                .and_then(|r| r.role.clone())
                .or_else(|| e.proto.role.clone())
                .unwrap_or_else(|| "*".into());
            out.entry(role)
                .or_default()
                .items
                .insert(k.clone(), e.clone());
        }
        out
    }

    /// The resources as protobufs, in a stable order.
    ///
    /// `old_format` writes unreserved resources with the deprecated `role: "*"`, as a
    /// master does for frameworks without RESERVATION_REFINEMENT; `allocation_role`
    /// sets `allocation_info` (MULTI_ROLE frameworks).
    pub fn to_protos(&self, old_format: bool, allocation_role: Option<&str>) -> Vec<Resource> {
        self.items
            .values()
            .map(|e| {
                let mut r = e.proto.clone();
                match &e.qty {
                    Quantity::Scalar(v) => {
                        r.scalar = Some(value::Scalar {
                            value: from_fixed(*v),
                        });
                    }
                    Quantity::Ranges(rs) => r.ranges = Some(rs.to_proto()),
                    Quantity::Set(items) => {
                        r.set = Some(value::Set {
                            item: items.iter().cloned().collect(),
                        });
                    }
                }
                if old_format && r.role.is_none() && r.reservations.is_empty() {
                    r.role = Some("*".into());
                }
                if let Some(role) = allocation_role {
                    r.allocation_info = Some(retz_proto::mesos::resource::AllocationInfo {
                        role: Some(role.to_string()),
                    });
                }
                r
            })
            .collect()
    }

    /// Mesos' flat summary object: `{"cpus":2,"gpus":0,"mem":1024,"disk":0,"cpuids":"[0-3]"}`.
    ///
    /// `cpus`, `gpus`, `mem` and `disk` always appear; revocable resources get a
    /// `_revocable` suffix; ranges print as `[a-b, c-d]` and sets as `{a, b}`.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut scalars: BTreeMap<String, i64> = BTreeMap::new();
        let mut ranges: BTreeMap<String, RangeSet> = BTreeMap::new();
        let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in ["cpus", "gpus", "mem", "disk"] {
            scalars.insert(name.to_string(), 0);
        }
        for e in self.items.values() {
            let mut name = e.proto.name.clone();
            if e.proto.revocable.is_some() {
                name.push_str("_revocable");
            }
            match &e.qty {
                Quantity::Scalar(v) => {
                    let slot = scalars.entry(name).or_insert(0);
                    *slot = slot.saturating_add(*v);
                }
                Quantity::Ranges(r) => {
                    let slot = ranges.entry(name).or_default();
                    *slot = slot.union(r);
                }
                Quantity::Set(s) => sets.entry(name).or_default().extend(s.iter().cloned()),
            }
        }
        let mut map = serde_json::Map::new();
        for (name, v) in scalars {
            map.insert(name, scalar_json(from_fixed(v)));
        }
        for (name, r) in ranges {
            map.insert(name, serde_json::Value::String(r.to_string()));
        }
        for (name, s) in sets {
            let items: Vec<String> = s.into_iter().collect();
            map.insert(
                name,
                serde_json::Value::String(format!("{{{}}}", items.join(", "))),
            );
        }
        serde_json::Value::Object(map)
    }
}

/// A scalar as JSON: an integer when it is one, else a float.
pub fn scalar_json(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        serde_json::Value::from(v as i64)
    } else {
        serde_json::Value::from(v)
    }
}

impl fmt::Display for Resources {
    /// Mesos' text form, e.g. `cpus(*):2; mem(*):1024; cpuids(*):[0-3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.items.values().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let role = if is_unreserved(&e.proto) {
                "*".to_string()
            } else {
                e.proto
                    .reservations
                    .last()
                    .and_then(|r| r.role.clone())
                    .or_else(|| e.proto.role.clone())
                    .unwrap_or_else(|| "*".into())
            };
            write!(f, "{}({}):", e.proto.name, role)?;
            match &e.qty {
                Quantity::Scalar(v) => write!(f, "{}", from_fixed(*v))?,
                Quantity::Ranges(r) => write!(f, "{r}")?,
                Quantity::Set(s) => {
                    let items: Vec<&str> = s.iter().map(String::as_str).collect();
                    write!(f, "{{{}}}", items.join(", "))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
