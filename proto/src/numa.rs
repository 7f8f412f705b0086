//! The Retz NUMA resource convention: how an agent advertises its NUMA layout and exact CPU
//! ids with plain Mesos resources and attributes, and how a scheduler reads it back from an
//! offer. Pure: text and protobuf values in, text and protobuf values out, no I/O.
//!
//! Owns:
//! - spec → agent flags: [`agent_flags`] ([`resources_text`], [`attributes_text`]) writes
//!   `--resources` (`cpus`, `mem`, `disk`, `gpus`, `cpuids:[a-b,...]`, `numanodes`) and
//!   `--attributes` (`retz_numa:v1`, one `numa_n<ID>` per node, `numa_offline`);
//! - agent flags → Mesos values: [`parse_agent_flags`], [`parse_resources`],
//!   [`parse_attributes`] read the agent flag syntax (scalars, `[ranges]`, `{sets}`,
//!   `name(role)`, text attributes) like a Mesos agent, with one clear error per bad input;
//! - offer → spec: [`offer_topology`] rebuilds the [`TopologySpec`] and the free resources
//!   from an offer's resources and attributes; an offer without the NUMA attributes yields a
//!   one-node topology with `numa_aware == false`.
//!
//! The encoding is specified in `docs/numa-convention.md`. Invariants:
//! - every attribute value written here uses only `[A-Za-z0-9._/-]` and starts with a
//!   letter, so Mesos reads it back as the same TEXT value (never as a scalar);
//! - for every valid spec, `offer_topology(parse(agent_flags(spec, free)))` gives back
//!   exactly `spec` and `free` (scalars at Mesos' 3-decimal precision);
//! - decoding never allocates more than the ids it returns (every CPU id is checked against
//!   [`MAX_SET_ID`] and for duplicates as soon as it is produced).

use std::collections::BTreeMap;
use std::fmt;

use retz_placement::sets::{CpuId, CpuSet, MAX_SET_ID, NodeId};
use retz_placement::topology::{CoreSpec, NodeSpec, Topology, TopologyError, TopologySpec};

use crate::mesos::resource::{ReservationInfo, reservation_info};
use crate::mesos::{Attribute, Resource, value};

/// Attribute holding the convention's version ([`VERSION`]).
pub const VERSION_ATTRIBUTE: &str = "retz_numa";
/// The version written by this module.
pub const VERSION: &str = "v1";
/// Prefix of the per-node attributes: `numa_n0`, `numa_n1`, ...
pub const NODE_ATTRIBUTE_PREFIX: &str = "numa_n";
/// Attribute listing the offline or disallowed CPUs (absent when there are none).
pub const OFFLINE_ATTRIBUTE: &str = "numa_offline";
/// Scalar resource: CPUs.
pub const CPUS: &str = "cpus";
/// Scalar resource: memory, MB.
pub const MEM: &str = "mem";
/// Scalar resource: disk, MB.
pub const DISK: &str = "disk";
/// Scalar resource: GPUs.
pub const GPUS: &str = "gpus";
/// Ranges resource: the free logical CPU ids.
pub const CPUIDS: &str = "cpuids";
/// Scalar resource: the number of whole NUMA nodes free.
pub const NUMANODES: &str = "numanodes";

/// Longest piece of outside input quoted in an error message.
const QUOTE_MAX: usize = 80;

/// What the agent has free besides the (static) layout: the resource half of the flags.
///
/// Scalars follow Mesos: non-negative, kept to 3 decimals; a zero scalar is not written
/// (and an absent one reads back as zero).
#[derive(Clone, Debug, PartialEq)]
pub struct FreeResources {
    /// Free logical CPU ids (`cpuids`). For an offer without NUMA attributes and without
    /// `cpuids`, placeholders `0..cpus` with no pinning meaning.
    pub cpuids: CpuSet,
    /// `cpus`.
    pub cpus: f64,
    /// `mem`, MB.
    pub mem_mb: f64,
    /// `disk`, MB.
    pub disk_mb: f64,
    /// `gpus`.
    pub gpus: f64,
    /// `numanodes`: whole NUMA nodes free.
    pub numanodes: f64,
}

impl FreeResources {
    /// Everything of `spec` free: all usable CPUs, the memory of all nodes, every node;
    /// no disk and no GPUs (unknown to the topology).
    pub fn whole_machine(spec: &TopologySpec) -> FreeResources {
        let mut cpuids = CpuSet::new();
        for core in spec.nodes.iter().flat_map(|n| &n.cores) {
            cpuids.union_with(&core.cpus);
        }
        FreeResources {
            cpus: cpuids.len() as f64,
            cpuids,
            mem_mb: spec
                .nodes
                .iter()
                .fold(0u64, |acc, n| acc.saturating_add(n.memory_mb)) as f64,
            disk_mb: 0.0,
            gpus: 0.0,
            numanodes: spec.nodes.len() as f64,
        }
    }
}

/// The two agent flag values (without the `--resources=` / `--attributes=` prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentFlags {
    /// Value of `--resources`, e.g. `cpus:32;mem:65507;cpuids:[0-31];numanodes:2`.
    pub resources: String,
    /// Value of `--attributes`, e.g. `retz_numa:v1;numa_n0:pkg.0/mem.32739/...`.
    pub attributes: String,
}

impl AgentFlags {
    /// Two lines ready to paste into a mesos-agent command line or flags file:
    /// `--resources='...'` and `--attributes='...'` (no trailing newline).
    pub fn to_flag_lines(&self) -> String {
        format!(
            "--resources='{}'\n--attributes='{}'",
            self.resources, self.attributes
        )
    }
}

impl fmt::Display for AgentFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_flag_lines())
    }
}

/// Resources and attributes as a Mesos agent would parse them from its flags.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ParsedAgentFlags {
    /// From `--resources` (merged per name and role, empty ones dropped).
    pub resources: Vec<Resource>,
    /// From `--attributes`, in the order given.
    pub attributes: Vec<Attribute>,
}

/// What a scheduler learns from one offer.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferTopology {
    /// The agent's layout (from the NUMA attributes, or a single node without them).
    pub spec: TopologySpec,
    /// The offered resources.
    pub free: FreeResources,
    /// Whether the offer carried the NUMA attributes. When `false` the spec is one node with
    /// one CPU per core and the CPU ids carry no pinning guarantee.
    pub numa_aware: bool,
}

/// Why agent flags or an offer could not be converted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NumaError {
    /// A `--resources` or `--attributes` entry does not follow the agent flag syntax.
    #[error("invalid {flag} entry {entry:?}: {message}")]
    Syntax {
        /// `--resources` or `--attributes`.
        flag: &'static str,
        /// The offending `name:value` entry (truncated).
        entry: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The agent flags text as a whole is unusable.
    #[error("invalid agent flags: {message}")]
    Flags {
        /// What is wrong and what is expected.
        message: String,
    },
    /// A Retz NUMA attribute has a bad value.
    #[error("invalid NUMA attribute {name}={value:?}: {message}")]
    Attribute {
        /// Attribute name.
        name: String,
        /// Its value (truncated).
        value: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The convention's version is not one this code understands.
    #[error(
        "attribute {VERSION_ATTRIBUTE} is {found:?}; this Retz understands only {VERSION:?}: upgrade Retz or regenerate the agent flags"
    )]
    UnsupportedVersion {
        /// The version found.
        found: String,
    },
    /// A resource the convention uses has the wrong Mesos type.
    #[error("resource {name} is {found}; the Retz NUMA convention expects {expected}")]
    ResourceType {
        /// Resource name.
        name: String,
        /// Expected Mesos value type.
        expected: &'static str,
        /// Found Mesos value type.
        found: String,
    },
    /// A free resource amount given to [`agent_flags`] is not a valid Mesos scalar.
    #[error("free {name} is {value}; Mesos scalars are between 0 and {MAX_SCALAR}")]
    BadScalar {
        /// Resource name.
        name: &'static str,
        /// The value.
        value: f64,
    },
    /// CPU ids offered or advertised as free are not usable CPUs of the layout.
    #[error(
        "cpuids {cpus} are not usable CPUs of the advertised NUMA layout; regenerate the agent flags with `retz-executor topology --agent-flags`"
    )]
    CpusOutsideTopology {
        /// The stray ids.
        cpus: CpuSet,
    },
    /// An offer without NUMA attributes has neither `cpus` nor `cpuids`.
    #[error("offer has no CPUs (no cpus >= 1 and no cpuids); it cannot run a Retz job")]
    NoCpus,
    /// The layout is not a valid topology.
    #[error("invalid NUMA layout: {0}")]
    Topology(#[from] TopologyError),
}

// ---------------------------------------------------------------------------------------
// spec → flags

/// Writes both agent flags for `spec` with `free` resources. `spec` must be a valid
/// topology and `free.cpuids` a subset of its usable CPUs.
pub fn agent_flags(spec: &TopologySpec, free: &FreeResources) -> Result<AgentFlags, NumaError> {
    Ok(AgentFlags {
        resources: resources_text(spec, free)?,
        attributes: attributes_text(spec)?,
    })
}

/// The `--resources` value: `cpus:N;mem:M;disk:D;gpus:G;cpuids:[a-b,...];numanodes:K`, each
/// zero scalar and an empty `cpuids` left out.
pub fn resources_text(spec: &TopologySpec, free: &FreeResources) -> Result<String, NumaError> {
    let topology = Topology::new(spec.clone())?;
    let stray = free.cpuids.difference(topology.cpus());
    if !stray.is_empty() {
        return Err(NumaError::CpusOutsideTopology { cpus: stray });
    }
    let mut parts = Vec::new();
    for (name, value) in [
        (CPUS, free.cpus),
        (MEM, free.mem_mb),
        (DISK, free.disk_mb),
        (GPUS, free.gpus),
    ] {
        push_scalar(&mut parts, name, value)?;
    }
    if !free.cpuids.is_empty() {
        let ranges: Vec<String> = free
            .cpuids
            .ranges()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect();
        parts.push(format!("{CPUIDS}:[{}]", ranges.join(",")));
    }
    push_scalar(&mut parts, NUMANODES, free.numanodes)?;
    Ok(parts.join(";"))
}

fn push_scalar(parts: &mut Vec<String>, name: &'static str, value: f64) -> Result<(), NumaError> {
    if !value.is_finite() || !(0.0..=MAX_SCALAR).contains(&value) {
        return Err(NumaError::BadScalar { name, value });
    }
    let value = round3(value);
    if value > 0.0 {
        parts.push(format!("{name}:{}", format_scalar(value)));
    }
    Ok(())
}

/// Mesos keeps scalars to 3 decimals (as fixed-point integers); values above
/// [`MAX_SCALAR`] are rejected before they get here, so this is exact and idempotent.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The largest scalar accepted anywhere (a trillion CPUs or MB): keeps `value * 1000` far
/// inside the integers an `f64` holds exactly, so 3-decimal rounding is lossless.
pub const MAX_SCALAR: f64 = 1e12;

/// `32`, `0.5`, `1.125`: at most 3 decimals, no trailing zeros.
fn format_scalar(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_string()
}

/// The `--attributes` value: `retz_numa:v1;numa_n<ID>:<node>;...;numa_offline:cpus.<list>`.
pub fn attributes_text(spec: &TopologySpec) -> Result<String, NumaError> {
    let pairs = topology_attributes(spec)?;
    Ok(pairs
        .iter()
        .map(|(name, value)| format!("{name}:{value}"))
        .collect::<Vec<_>>()
        .join(";"))
}

/// The NUMA attributes of `spec` as `(name, text value)` pairs, in flag order.
pub fn topology_attributes(spec: &TopologySpec) -> Result<Vec<(String, String)>, NumaError> {
    Topology::new(spec.clone())?;
    let mut pairs = vec![(VERSION_ATTRIBUTE.to_string(), VERSION.to_string())];
    for node in &spec.nodes {
        pairs.push((
            format!("{NODE_ATTRIBUTE_PREFIX}{}", node.id),
            encode_node(node),
        ));
    }
    if !spec.offline_cpus.is_empty() {
        pairs.push((
            OFFLINE_ATTRIBUTE.to_string(),
            format!("cpus.{}", encode_list(&spec.offline_cpus)),
        ));
    }
    Ok(pairs)
}

/// `pkg.P/mem.M[/cores.RUN.RUN...][/dist.D.D...]`.
fn encode_node(node: &NodeSpec) -> String {
    let mut text = format!("pkg.{}/mem.{}", node.package, node.memory_mb);
    if !node.cores.is_empty() {
        text.push_str("/cores.");
        text.push_str(&encode_cores(&node.cores));
    }
    if !node.distances.is_empty() {
        let row: Vec<String> = node.distances.iter().map(u32::to_string).collect();
        text.push_str("/dist.");
        text.push_str(&row.join("."));
    }
    text
}

/// A CPU list with `.` between items and `-` in runs: `0-3.8.10-11`.
fn encode_list(set: &CpuSet) -> String {
    set.ranges()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Cores as runs, in the given order. A core is its lowest CPU `f` plus sibling offsets
/// `o1 < o2 < ...` (the core is `{f, f+o1, f+o2, ...}`); consecutive cores with the same
/// offsets whose lowest CPUs step by the same stride form one run `a-b[sK]tO1tO2...`.
fn encode_cores(cores: &[CoreSpec]) -> String {
    let shapes: Vec<(u32, Vec<u32>)> = cores
        .iter()
        .map(|core| {
            let first = core.cpus.first().map_or(0, |c| c.0);
            let offsets = core.cpus.iter().skip(1).map(|c| c.0 - first).collect();
            (first, offsets)
        })
        .collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < shapes.len() {
        let (first, offsets) = &shapes[i];
        let mut end = i;
        let mut stride = 0;
        if let Some((next, next_offsets)) = shapes.get(i + 1)
            && next > first
            && next_offsets == offsets
        {
            stride = next - first;
            end = i + 1;
            while let Some((after, after_offsets)) = shapes.get(end + 1) {
                if after_offsets != offsets || after.checked_sub(shapes[end].0) != Some(stride) {
                    break;
                }
                end += 1;
            }
        }
        let mut run = first.to_string();
        if end > i {
            run.push_str(&format!("-{}", shapes[end].0));
            if stride != 1 {
                run.push_str(&format!("s{stride}"));
            }
        }
        for offset in offsets {
            run.push_str(&format!("t{offset}"));
        }
        runs.push(run);
        i = end + 1;
    }
    runs.join(".")
}

// ---------------------------------------------------------------------------------------
// text → Mesos values

/// Parses an agent flags text: shell-like words, of which `--resources=VALUE` and
/// `--attributes=VALUE` (or `--resources VALUE`) are read and all other words ignored, so a
/// whole `mesos-agent ...` command line can be given. Values may be quoted with `'` or `"`.
pub fn parse_agent_flags(text: &str) -> Result<ParsedAgentFlags, NumaError> {
    let words = shell_words(text)?;
    let mut resources: Option<Vec<Resource>> = None;
    let mut attributes: Option<Vec<Attribute>> = None;
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        for (flag, is_resources) in [("--resources", true), ("--attributes", false)] {
            let Some(rest) = word.strip_prefix(flag) else {
                continue;
            };
            let value = if let Some(value) = rest.strip_prefix('=') {
                value.to_string()
            } else if rest.is_empty() {
                let Some(value) = words.get(i) else {
                    return Err(NumaError::Flags {
                        message: format!("{flag} is the last word; give it a value"),
                    });
                };
                i += 1;
                value.clone()
            } else {
                continue;
            };
            let duplicate = if is_resources {
                resources.replace(parse_resources(&value)?).is_some()
            } else {
                attributes.replace(parse_attributes(&value)?).is_some()
            };
            if duplicate {
                return Err(NumaError::Flags {
                    message: format!("{flag} is given twice; give it once"),
                });
            }
        }
    }
    if resources.is_none() && attributes.is_none() {
        return Err(NumaError::Flags {
            message: "found neither --resources=... nor --attributes=...".to_string(),
        });
    }
    Ok(ParsedAgentFlags {
        resources: resources.unwrap_or_default(),
        attributes: attributes.unwrap_or_default(),
    })
}

/// Splits on unquoted whitespace; `'...'` and `"..."` group (quotes removed), `\` escapes the
/// next character outside single quotes.
fn shell_words(text: &str) -> Result<Vec<String>, NumaError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    if d == '\\' && c == '"' {
                        if let Some(e) = chars.next() {
                            word.push(e);
                        }
                        continue;
                    }
                    word.push(d);
                }
                if !closed {
                    return Err(NumaError::Flags {
                        message: format!("unterminated {c} quote; close it"),
                    });
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Parses a `--resources` value `name[(role)]:value;...` like a Mesos agent: a value is a
/// scalar (`8`, `0.5`), ranges (`[0-3,8-8]`, pairs only) or a set (`{a,b}`). Entries with the
/// same name and role are merged (scalars added, ranges and sets united); a name may not
/// have two types; empty values (zero, `[]`, `{}`) are dropped. The JSON and `file://`
/// forms are not supported.
pub fn parse_resources(text: &str) -> Result<Vec<Resource>, NumaError> {
    const FLAG: &str = "--resources";
    let trimmed = text.trim();
    if trimmed.starts_with('[') || trimmed.starts_with("file://") {
        return Err(NumaError::Flags {
            message:
                "--resources in JSON or file:// form is not supported; write name:value;name:value"
                    .to_string(),
        });
    }
    let mut merged: Vec<Resource> = Vec::new();
    let mut types: BTreeMap<String, i32> = BTreeMap::new();
    for entry in trimmed.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let err = |message: String| NumaError::Syntax {
            flag: FLAG,
            entry: quote(entry),
            message,
        };
        let (key, value) = split_entry(entry).map_err(err)?;
        let (name, role) = parse_resource_key(key).map_err(err)?;
        let parsed = parse_value(value, false).map_err(err)?;
        let type_ = parsed.type_() as i32;
        if let Some(&previous) = types.get(name)
            && previous != type_
        {
            return Err(err(format!(
                "resource {name} was already given as {}; one name has one type",
                type_name(previous)
            )));
        }
        types.insert(name.to_string(), type_);
        if parsed.is_empty() {
            continue;
        }
        let mut resource = Resource {
            name: name.to_string(),
            r#type: type_,
            ..Default::default()
        };
        if let Some(role) = role {
            resource.role = Some(role.to_string());
            if role != "*" {
                resource.reservations.push(ReservationInfo {
                    r#type: Some(reservation_info::Type::Static as i32),
                    role: Some(role.to_string()),
                    ..Default::default()
                });
            }
        }
        let same = merged
            .iter_mut()
            .find(|r| r.name == resource.name && r.role == resource.role);
        match same {
            Some(existing) => merge_value(existing, parsed).map_err(err)?,
            None => {
                parsed.store_in_resource(&mut resource);
                merged.push(resource);
            }
        }
    }
    Ok(merged)
}

/// Parses an `--attributes` value `name:value;...` like a Mesos agent: a value is a scalar
/// (`2`, `1.5`), ranges (`[1-2]`) or text (`[A-Za-z0-9._/-]+`); sets are not allowed.
pub fn parse_attributes(text: &str) -> Result<Vec<Attribute>, NumaError> {
    const FLAG: &str = "--attributes";
    let mut attributes = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let err = |message: String| NumaError::Syntax {
            flag: FLAG,
            entry: quote(entry),
            message,
        };
        let (name, value) = split_entry(entry).map_err(err)?;
        check_text(name, "attribute name").map_err(err)?;
        let parsed = parse_value(value, true).map_err(err)?;
        let mut attribute = Attribute {
            name: name.to_string(),
            r#type: parsed.type_() as i32,
            ..Default::default()
        };
        match parsed {
            ParsedValue::Scalar(v) => attribute.scalar = Some(value::Scalar { value: v }),
            ParsedValue::Ranges(r) => attribute.ranges = Some(value::Ranges { range: r }),
            ParsedValue::Text(t) => attribute.text = Some(value::Text { value: t }),
            ParsedValue::Set(_) => {
                return Err(err(
                    "sets ({...}) are not allowed in attributes; use text or [ranges]".to_string(),
                ));
            }
        }
        attributes.push(attribute);
    }
    Ok(attributes)
}

fn split_entry(entry: &str) -> Result<(&str, &str), String> {
    let Some((key, value)) = entry.split_once(':') else {
        return Err("missing ':'; write name:value".to_string());
    };
    if value.contains(':') {
        return Err("more than one ':'; write name:value".to_string());
    }
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() {
        return Err("empty name before ':'".to_string());
    }
    if value.is_empty() {
        return Err("empty value after ':'".to_string());
    }
    Ok((key, value))
}

fn parse_resource_key(key: &str) -> Result<(&str, Option<&str>), String> {
    let (name, role) = match key.split_once('(') {
        None => (key, None),
        Some((name, rest)) => {
            let Some(role) = rest.strip_suffix(')') else {
                return Err("role must be written name(role) with a closing ')'".to_string());
            };
            let role = role.trim();
            if role.is_empty() {
                return Err("empty role in name()".to_string());
            }
            if role != "*" {
                check_text(role, "role")?;
            }
            (name.trim(), Some(role))
        }
    };
    check_text(name, "resource name")?;
    Ok((name, role))
}

/// Mesos' `text` production: `[a-zA-Z0-9_/.-]+`.
fn check_text(text: &str, what: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("empty {what}"));
    }
    if let Some((pos, c)) = text.char_indices().find(|&(_, c)| !is_text_char(c)) {
        return Err(format!(
            "{what} {:?} has {c:?} at byte {pos}; only letters, digits, '.', '_', '/' and '-' are allowed",
            quote(text)
        ));
    }
    Ok(())
}

fn is_text_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')
}

enum ParsedValue {
    Scalar(f64),
    Ranges(Vec<value::Range>),
    Set(Vec<String>),
    Text(String),
}

impl ParsedValue {
    fn type_(&self) -> value::Type {
        match self {
            ParsedValue::Scalar(_) => value::Type::Scalar,
            ParsedValue::Ranges(_) => value::Type::Ranges,
            ParsedValue::Set(_) => value::Type::Set,
            ParsedValue::Text(_) => value::Type::Text,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            ParsedValue::Scalar(v) => *v == 0.0,
            ParsedValue::Ranges(r) => r.is_empty(),
            ParsedValue::Set(s) => s.is_empty(),
            ParsedValue::Text(_) => false,
        }
    }

    fn store_in_resource(self, resource: &mut Resource) {
        match self {
            ParsedValue::Scalar(v) => resource.scalar = Some(value::Scalar { value: v }),
            ParsedValue::Ranges(r) => resource.ranges = Some(value::Ranges { range: r }),
            ParsedValue::Set(s) => resource.set = Some(value::Set { item: s }),
            // parse_value never yields text for resources
            ParsedValue::Text(_) => {}
        }
    }
}

fn type_name(type_: i32) -> String {
    match value::Type::try_from(type_) {
        Ok(value::Type::Scalar) => "SCALAR".to_string(),
        Ok(value::Type::Ranges) => "RANGES".to_string(),
        Ok(value::Type::Set) => "SET".to_string(),
        Ok(value::Type::Text) => "TEXT".to_string(),
        Err(_) => format!("unknown type {type_}"),
    }
}

fn merge_value(existing: &mut Resource, parsed: ParsedValue) -> Result<(), String> {
    match parsed {
        ParsedValue::Scalar(v) => {
            let scalar = existing.scalar.get_or_insert_with(Default::default);
            let sum = round3(scalar.value + v);
            if sum > MAX_SCALAR {
                return Err(format!(
                    "the entries of this resource add up to more than {MAX_SCALAR}"
                ));
            }
            scalar.value = sum;
        }
        ParsedValue::Ranges(r) => {
            let ranges = existing.ranges.get_or_insert_with(Default::default);
            ranges.range.extend(r);
            ranges.range = coalesce(std::mem::take(&mut ranges.range), false)?;
        }
        ParsedValue::Set(s) => {
            let set = existing.set.get_or_insert_with(Default::default);
            for item in s {
                if set.item.contains(&item) {
                    return Err(format!("set item {:?} is given twice", quote(&item)));
                }
                set.item.push(item);
            }
        }
        ParsedValue::Text(_) => return Err("a resource cannot be text".to_string()),
    }
    Ok(())
}

/// Parses one value. `attribute` allows text (and reports sets to the caller).
fn parse_value(text: &str, attribute: bool) -> Result<ParsedValue, String> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some(inner) = rest.strip_suffix(']') else {
            return Err("ranges must end with ']'; write [a-b,c-d]".to_string());
        };
        return parse_ranges(inner).map(ParsedValue::Ranges);
    }
    if let Some(rest) = text.strip_prefix('{') {
        let Some(inner) = rest.strip_suffix('}') else {
            return Err("sets must end with '}'; write {a,b}".to_string());
        };
        let mut items: Vec<String> = Vec::new();
        if !inner.trim().is_empty() {
            for item in inner.split(',').map(str::trim) {
                check_text(item, "set item")?;
                if items.iter().any(|i| i == item) {
                    return Err(format!("set item {:?} is given twice", quote(item)));
                }
                items.push(item.to_string());
            }
        }
        return Ok(ParsedValue::Set(items));
    }
    if let Some(v) = parse_scalar(text)? {
        return Ok(ParsedValue::Scalar(v));
    }
    if attribute {
        check_text(text, "text value")?;
        return Ok(ParsedValue::Text(text.to_string()));
    }
    Err(format!(
        "{:?} is not a value; write a number (8, 0.5), [ranges] or {{set}}",
        quote(text)
    ))
}

/// `digits[.digits]` → `Some(value)` rounded to 3 decimals; a leading `-` is an error;
/// anything else is `None` (not a number).
fn parse_scalar(text: &str) -> Result<Option<f64>, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return Ok(None);
    }
    if text.starts_with('-') {
        return Err(format!(
            "{:?} is negative; scalars are non-negative",
            quote(text)
        ));
    }
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("{:?} is not a number", quote(text)))?;
    if !value.is_finite() || value > MAX_SCALAR {
        return Err(format!(
            "{:?} is too large; scalars are at most {MAX_SCALAR}",
            quote(text)
        ));
    }
    Ok(Some(round3(value)))
}

/// `a-b, c-d` (inside the brackets) → sorted, coalesced ranges. Overlaps are an error.
fn parse_ranges(inner: &str) -> Result<Vec<value::Range>, String> {
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for item in inner.split(',').map(str::trim) {
        let Some((a, b)) = item.split_once('-') else {
            return Err(format!(
                "range {:?} is not a pair; write a-b (one CPU is 5-5)",
                quote(item)
            ));
        };
        let number = |s: &str| -> Result<u64, String> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "range {:?} has a bound {:?} that is not a non-negative integer",
                    quote(item),
                    quote(s)
                ));
            }
            s.parse()
                .map_err(|_| format!("range bound {:?} is too large", quote(s)))
        };
        let (begin, end) = (number(a)?, number(b)?);
        if begin > end {
            return Err(format!("range {begin}-{end} runs backwards"));
        }
        ranges.push(value::Range { begin, end });
    }
    coalesce(ranges, true)
}

/// Sorts and joins adjacent ranges; overlapping ranges are an error when `strict`, joined
/// otherwise.
fn coalesce(mut ranges: Vec<value::Range>, strict: bool) -> Result<Vec<value::Range>, String> {
    ranges.sort_by_key(|r| (r.begin, r.end));
    let mut out: Vec<value::Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = out.last_mut() {
            if r.begin <= last.end {
                if strict {
                    return Err(format!(
                        "ranges {}-{} and {}-{} overlap",
                        last.begin, last.end, r.begin, r.end
                    ));
                }
                last.end = last.end.max(r.end);
                continue;
            }
            if r.begin == last.end + 1 {
                last.end = r.end;
                continue;
            }
        }
        out.push(r);
    }
    Ok(out)
}

fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTE_MAX {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(QUOTE_MAX).collect();
        s.push('…');
        s
    }
}

// ---------------------------------------------------------------------------------------
// Mesos values → spec

/// Mesos RANGES for a CPU set.
pub fn cpuset_to_ranges(set: &CpuSet) -> value::Ranges {
    value::Ranges {
        range: set
            .ranges()
            .map(|(a, b)| value::Range {
                begin: u64::from(a),
                end: u64::from(b),
            })
            .collect(),
    }
}

/// A CPU set from Mesos RANGES; ids above [`MAX_SET_ID`] or reversed ranges are an error.
pub fn ranges_to_cpuset(ranges: &value::Ranges) -> Result<CpuSet, NumaError> {
    let mut set = CpuSet::new();
    for r in &ranges.range {
        if r.begin > r.end || r.end > u64::from(MAX_SET_ID) {
            return Err(NumaError::ResourceType {
                name: CPUIDS.to_string(),
                expected: "RANGES of CPU ids 0..=65535",
                found: format!("range {}-{}", r.begin, r.end),
            });
        }
        // both bounds fit in u32 (checked above)
        set.union_with(&CpuSet::from_range(r.begin as u32, r.end as u32));
    }
    Ok(set)
}

/// Rebuilds the layout and the free resources from an offer (or from parsed agent flags).
/// Resources of every role are added up. With the `retz_numa` attribute the layout comes
/// from the NUMA attributes and must hold the offered `cpuids`; without it the offer is
/// not NUMA-aware: one node 0 whose cores are single CPUs, the `cpuids` if offered, else
/// placeholders `0..floor(cpus)`, with `mem` as its memory.
pub fn offer_topology(
    resources: &[Resource],
    attributes: &[Attribute],
) -> Result<OfferTopology, NumaError> {
    let mut free = FreeResources {
        cpuids: CpuSet::new(),
        cpus: 0.0,
        mem_mb: 0.0,
        disk_mb: 0.0,
        gpus: 0.0,
        numanodes: 0.0,
    };
    let mut saw_cpuids = false;
    for resource in resources {
        let slot = match resource.name.as_str() {
            CPUS => &mut free.cpus,
            MEM => &mut free.mem_mb,
            DISK => &mut free.disk_mb,
            GPUS => &mut free.gpus,
            NUMANODES => &mut free.numanodes,
            CPUIDS => {
                let ranges = match (&resource.ranges, resource.r#type) {
                    (Some(ranges), t) if t == value::Type::Ranges as i32 => ranges,
                    _ => return Err(resource_type(resource, "RANGES")),
                };
                free.cpuids.union_with(&ranges_to_cpuset(ranges)?);
                saw_cpuids = true;
                continue;
            }
            _ => continue,
        };
        let value = match (&resource.scalar, resource.r#type) {
            (Some(s), t) if t == value::Type::Scalar as i32 => s.value,
            _ => return Err(resource_type(resource, "SCALAR")),
        };
        let sum = round3(*slot + value);
        if !value.is_finite() || value < 0.0 || !(0.0..=MAX_SCALAR).contains(&sum) {
            return Err(NumaError::ResourceType {
                name: resource.name.clone(),
                expected: "a SCALAR between 0 and 1e12 (summed over roles)",
                found: value.to_string(),
            });
        }
        *slot = sum;
    }

    let version = attributes.iter().find(|a| a.name == VERSION_ATTRIBUTE);
    let Some(version) = version else {
        let cpus = if saw_cpuids {
            free.cpuids.clone()
        } else {
            let count = free.cpus.floor().min(f64::from(MAX_SET_ID) + 1.0) as u32;
            if count == 0 {
                return Err(NumaError::NoCpus);
            }
            let placeholders = CpuSet::from_range(0, count - 1);
            free.cpuids = placeholders.clone();
            placeholders
        };
        if cpus.is_empty() {
            return Err(NumaError::NoCpus);
        }
        let spec = Topology::single_node(&cpus, free.mem_mb.floor() as u64)?
            .spec()
            .clone();
        return Ok(OfferTopology {
            spec,
            free,
            numa_aware: false,
        });
    };
    let found = text_of(version)?;
    if found != VERSION {
        return Err(NumaError::UnsupportedVersion {
            found: quote(found),
        });
    }
    let spec = decode_layout(attributes)?;
    let topology = Topology::new(spec)?;
    let stray = free.cpuids.difference(topology.cpus());
    if !stray.is_empty() {
        return Err(NumaError::CpusOutsideTopology { cpus: stray });
    }
    Ok(OfferTopology {
        spec: topology.spec().clone(),
        free,
        numa_aware: true,
    })
}

fn resource_type(resource: &Resource, expected: &'static str) -> NumaError {
    NumaError::ResourceType {
        name: resource.name.clone(),
        expected,
        found: type_name(resource.r#type),
    }
}

fn text_of(attribute: &Attribute) -> Result<&str, NumaError> {
    match (&attribute.text, attribute.r#type) {
        (Some(text), t) if t == value::Type::Text as i32 => Ok(&text.value),
        _ => Err(NumaError::Attribute {
            name: attribute.name.clone(),
            value: String::new(),
            message: format!(
                "it is {}; the convention writes TEXT",
                type_name(attribute.r#type)
            ),
        }),
    }
}

/// Builds the spec from the `numa_n*` and `numa_offline` attributes (not yet validated).
fn decode_layout(attributes: &[Attribute]) -> Result<TopologySpec, NumaError> {
    let mut nodes: BTreeMap<u32, NodeSpec> = BTreeMap::new();
    let mut offline: Option<CpuSet> = None;
    let mut seen = CpuSet::new();
    for attribute in attributes {
        let name = attribute.name.as_str();
        if name == OFFLINE_ATTRIBUTE {
            let text = text_of(attribute)?;
            let err = attribute_error(name, text);
            if offline.is_some() {
                return Err(err("given twice".to_string()));
            }
            let list = text
                .strip_prefix("cpus.")
                .ok_or_else(|| err("expected cpus.<list>, e.g. cpus.2.5-7".to_string()))?;
            let set = decode_list(list, &mut seen).map_err(&err)?;
            offline = Some(set);
            continue;
        }
        let Some(id) = name.strip_prefix(NODE_ATTRIBUTE_PREFIX) else {
            continue;
        };
        let text = text_of(attribute)?;
        let err = attribute_error(name, text);
        let id: u32 = parse_uint(id)
            .ok()
            .filter(|&i| i <= MAX_SET_ID)
            .ok_or_else(|| {
                err(format!(
                    "node attribute names are {NODE_ATTRIBUTE_PREFIX}<id> with id 0..={MAX_SET_ID}"
                ))
            })?;
        if nodes.contains_key(&id) {
            return Err(err("given twice".to_string()));
        }
        let node = decode_node(NodeId(id), text, &mut seen).map_err(&err)?;
        nodes.insert(id, node);
    }
    if nodes.is_empty() {
        return Err(NumaError::Attribute {
            name: VERSION_ATTRIBUTE.to_string(),
            value: VERSION.to_string(),
            message: format!("no {NODE_ATTRIBUTE_PREFIX}<id> attribute describes a node"),
        });
    }
    Ok(TopologySpec {
        nodes: nodes.into_values().collect(),
        offline_cpus: offline.unwrap_or_default(),
    })
}

fn attribute_error<'a>(name: &'a str, text: &'a str) -> impl Fn(String) -> NumaError + 'a {
    move |message| NumaError::Attribute {
        name: name.to_string(),
        value: quote(text),
        message,
    }
}

fn decode_node(id: NodeId, text: &str, seen: &mut CpuSet) -> Result<NodeSpec, String> {
    let mut package = None;
    let mut memory_mb = None;
    let mut cores = None;
    let mut distances = None;
    for field in text.split('/') {
        let Some((key, payload)) = field.split_once('.') else {
            return Err(format!(
                "field {:?} is not key.value; expected pkg., mem., cores. or dist.",
                quote(field)
            ));
        };
        let twice = || format!("field {key} is given twice");
        match key {
            "pkg" => {
                if package.replace(parse_uint(payload)?).is_some() {
                    return Err(twice());
                }
            }
            "mem" => {
                let mem: u64 = parse_uint(payload)?;
                if memory_mb.replace(mem).is_some() {
                    return Err(twice());
                }
            }
            "cores" => {
                if cores.replace(decode_cores(payload, seen)?).is_some() {
                    return Err(twice());
                }
            }
            "dist" => {
                let row = payload
                    .split('.')
                    .map(parse_uint::<u32>)
                    .collect::<Result<Vec<_>, _>>()?;
                if distances.replace(row).is_some() {
                    return Err(twice());
                }
            }
            other => {
                return Err(format!(
                    "unknown field {:?}; expected pkg., mem., cores. or dist.",
                    quote(other)
                ));
            }
        }
    }
    Ok(NodeSpec {
        id,
        package: package.ok_or("missing pkg.<package> field")?,
        memory_mb: memory_mb.ok_or("missing mem.<MiB> field")?,
        cores: cores.unwrap_or_default(),
        distances: distances.unwrap_or_default(),
    })
}

/// Decodes runs `a[-b[sK]](tO)*` separated by `.`; every CPU is new in `seen`.
fn decode_cores(payload: &str, seen: &mut CpuSet) -> Result<Vec<CoreSpec>, String> {
    let mut cores = Vec::new();
    for run in payload.split('.') {
        let bad = |why: &str| {
            format!(
                "core run {:?} {why}; expected FIRST[-LAST[sSTRIDE]](tOFFSET)*",
                quote(run)
            )
        };
        let (head, offsets) = match run.find('t') {
            Some(pos) => (&run[..pos], &run[pos + 1..]),
            None => (run, ""),
        };
        let mut offset_list: Vec<u32> = Vec::new();
        if run.contains('t') {
            for o in offsets.split('t') {
                let o: u32 = parse_uint(o).map_err(|e| bad(&e))?;
                if o == 0 || offset_list.last().is_some_and(|&last| o <= last) {
                    return Err(bad(
                        "has sibling offsets that are not positive and ascending",
                    ));
                }
                offset_list.push(o);
            }
        }
        let (first, last, stride) = match head.split_once('-') {
            None => {
                let first: u32 = parse_uint(head).map_err(|e| bad(&e))?;
                (first, first, 1)
            }
            Some((a, rest)) => {
                let (b, stride) = match rest.split_once('s') {
                    Some((b, k)) => (b, parse_uint::<u32>(k).map_err(|e| bad(&e))?),
                    None => (rest, 1),
                };
                let a: u32 = parse_uint(a).map_err(|e| bad(&e))?;
                let b: u32 = parse_uint(b).map_err(|e| bad(&e))?;
                if stride == 0 || b < a || !(b - a).is_multiple_of(stride) {
                    return Err(bad(
                        "has LAST below FIRST, a zero stride, or LAST not FIRST plus a multiple of STRIDE",
                    ));
                }
                (a, b, stride)
            }
        };
        let mut f = first;
        loop {
            let mut core = CpuSet::new();
            for cpu in std::iter::once(Some(f)).chain(offset_list.iter().map(|&o| f.checked_add(o)))
            {
                let cpu = cpu
                    .filter(|&c| c <= MAX_SET_ID)
                    .ok_or_else(|| bad(&format!("reaches a CPU id above {MAX_SET_ID}")))?;
                if !seen.insert(CpuId(cpu)) {
                    return Err(bad(&format!("lists CPU {cpu}, which is already listed")));
                }
                core.insert(CpuId(cpu));
            }
            cores.push(CoreSpec { cpus: core });
            if f == last {
                break;
            }
            f += stride;
        }
    }
    Ok(cores)
}

/// Decodes `a.b-c.d` into a set; every CPU is new in `seen`.
fn decode_list(list: &str, seen: &mut CpuSet) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    for item in list.split('.') {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (parse_uint::<u32>(a)?, parse_uint::<u32>(b)?),
            None => {
                let a = parse_uint::<u32>(item)?;
                (a, a)
            }
        };
        if a > b || b > MAX_SET_ID {
            return Err(format!(
                "CPU range {:?} is backwards or above {MAX_SET_ID}",
                quote(item)
            ));
        }
        let run = CpuSet::from_range(a, b);
        if let Some(cpu) = run.intersection(seen).first() {
            return Err(format!("CPU {cpu} is listed twice"));
        }
        seen.union_with(&run);
        set.union_with(&run);
    }
    Ok(set)
}

/// An unsigned decimal integer (ASCII digits only).
fn parse_uint<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not an unsigned integer", quote(text)));
    }
    text.parse()
        .map_err(|_| format!("{:?} is too large", quote(text)))
}

// ---------------------------------------------------------------------------------------
// fuzzing

/// Fuzzing entry point (used by `proto/fuzz/fuzz_targets/agent_flags.rs` and the unit
/// tests): feeds `text` to every parser here and, when it makes a usable offer, checks that
/// re-encoding and decoding it again gives the same layout and resources. Errors are fine;
/// it panics only when an invariant of this module is broken.
#[doc(hidden)]
pub fn fuzz_agent_flags(text: &str) {
    let _ = parse_resources(text);
    let _ = parse_attributes(text);
    let Ok(parsed) = parse_agent_flags(text) else {
        return;
    };
    let Ok(offer) = offer_topology(&parsed.resources, &parsed.attributes) else {
        return;
    };
    let flags = match agent_flags(&offer.spec, &offer.free) {
        Ok(flags) => flags,
        Err(e) => panic!("a decoded offer must re-encode: {e}"),
    };
    for (_, value) in topology_attributes(&offer.spec).unwrap_or_default() {
        assert!(
            value.starts_with(|c: char| c.is_ascii_alphabetic()) && value.chars().all(is_text_char),
            "attribute value {value:?} is not Mesos text"
        );
    }
    let again = match parse_agent_flags(&flags.to_flag_lines()) {
        Ok(again) => again,
        Err(e) => panic!("encoded flags must parse: {e}\n{flags}"),
    };
    let back = match offer_topology(&again.resources, &again.attributes) {
        Ok(back) => back,
        Err(e) => panic!("encoded flags must decode: {e}\n{flags}"),
    };
    assert_eq!(back.spec, offer.spec, "layout changed in the round trip");
    assert_eq!(back.free, offer.free, "resources changed in the round trip");
    assert!(back.numa_aware);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(list: &str) -> CpuSet {
        list.parse().unwrap()
    }

    fn core(list: &str) -> CoreSpec {
        CoreSpec { cpus: set(list) }
    }

    /// The shape of `32em64t-2n8c2t-pci-noio.xml` (2 nodes, 8 cores x 2 threads each).
    fn two_socket() -> TopologySpec {
        let node = |id: u32, base: u32, mem: u64, dist: Vec<u32>| NodeSpec {
            id: NodeId(id),
            package: id,
            memory_mb: mem,
            cores: (0..8)
                .map(|i| core(&format!("{},{}", base + i, base + i + 16)))
                .collect(),
            distances: dist,
        };
        TopologySpec {
            nodes: vec![
                node(0, 0, 32739, vec![10, 20]),
                node(1, 8, 32768, vec![20, 10]),
            ],
            offline_cpus: CpuSet::new(),
        }
    }

    fn round_trip(spec: &TopologySpec, free: &FreeResources) -> OfferTopology {
        let flags = agent_flags(spec, free).unwrap();
        let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
        offer_topology(&parsed.resources, &parsed.attributes).unwrap()
    }

    #[test]
    fn two_socket_flags_are_exact() {
        let spec = two_socket();
        let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
        assert_eq!(
            flags.resources,
            "cpus:32;mem:65507;cpuids:[0-31];numanodes:2"
        );
        assert_eq!(
            flags.attributes,
            "retz_numa:v1;numa_n0:pkg.0/mem.32739/cores.0-7t16/dist.10.20;\
             numa_n1:pkg.1/mem.32768/cores.8-15t16/dist.20.10"
        );
        assert_eq!(
            flags.to_flag_lines(),
            format!(
                "--resources='{}'\n--attributes='{}'",
                flags.resources, flags.attributes
            )
        );
    }

    #[test]
    fn two_socket_round_trips() {
        let spec = two_socket();
        let free = FreeResources::whole_machine(&spec);
        let offer = round_trip(&spec, &free);
        assert!(offer.numa_aware);
        assert_eq!(offer.spec, spec);
        assert_eq!(offer.free, free);
    }

    #[test]
    fn strided_smt4_offline_memory_only_and_unordered_cores_round_trip() {
        let spec = TopologySpec {
            nodes: vec![
                NodeSpec {
                    id: NodeId(0),
                    package: 3,
                    memory_mb: 0,
                    cores: vec![
                        core("0,40"),
                        core("4,44"),
                        core("8,48"),
                        core("100-103"),
                        core("2"),
                        core("1"),
                        core("60,70,75"),
                    ],
                    distances: vec![10, 11, 31],
                },
                NodeSpec {
                    id: NodeId(5),
                    package: 3,
                    memory_mb: 1 << 40,
                    cores: Vec::new(),
                    distances: vec![11, 10, 31],
                },
                NodeSpec {
                    id: NodeId(65535),
                    package: u32::MAX,
                    memory_mb: u64::MAX,
                    cores: vec![core("65535")],
                    distances: vec![31, 31, 10],
                },
            ],
            offline_cpus: set("3,5-7,200"),
        };
        let attributes = attributes_text(&spec).unwrap();
        assert!(
            attributes.contains(
                "numa_n0:pkg.3/mem.0/cores.0-8s4t40.100t1t2t3.2.1.60t10t15/dist.10.11.31"
            ),
            "{attributes}"
        );
        assert!(
            attributes.contains("numa_n5:pkg.3/mem.1099511627776/dist.11.10.31"),
            "{attributes}"
        );
        assert!(
            attributes.ends_with(";numa_offline:cpus.3.5-7.200"),
            "{attributes}"
        );
        let free = FreeResources {
            cpuids: set("1-2,40,65535"),
            cpus: 2.5,
            mem_mb: 1024.125,
            disk_mb: 0.001,
            gpus: 2.0,
            numanodes: 1.0,
        };
        let offer = round_trip(&spec, &free);
        assert_eq!(offer.spec, spec);
        assert_eq!(offer.free, free);
    }

    #[test]
    fn encoder_rejects_invalid_specs_and_free_resources() {
        let mut spec = two_socket();
        spec.nodes[1].cores.push(core("0"));
        assert!(matches!(
            attributes_text(&spec),
            Err(NumaError::Topology(TopologyError::CpuInTwoCores { .. }))
        ));
        let spec = two_socket();
        let mut free = FreeResources::whole_machine(&spec);
        free.cpuids.insert(CpuId(40));
        let err = agent_flags(&spec, &free).unwrap_err();
        assert_eq!(err, NumaError::CpusOutsideTopology { cpus: set("40") });
        for bad in [f64::NAN, -1.0, f64::INFINITY, 2e12] {
            let mut free = FreeResources::whole_machine(&spec);
            free.mem_mb = bad;
            assert!(matches!(
                resources_text(&spec, &free),
                Err(NumaError::BadScalar { name: "mem", .. })
            ));
        }
    }

    #[test]
    fn resources_parse_like_a_mesos_agent() {
        let r = parse_resources(
            " cpus:8 ; mem:1024.5;cpuids:[0-3, 8-8,4-5];ports:[31000-32000];bugs(role):{a,b,c};cpus(retz):2;cpus:0.0005;disk:0",
        )
        .unwrap();
        let names: Vec<(&str, Option<&str>)> = r
            .iter()
            .map(|r| (r.name.as_str(), r.role.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("cpus", None),
                ("mem", None),
                ("cpuids", None),
                ("ports", None),
                ("bugs", Some("role")),
                ("cpus", Some("retz")),
            ]
        );
        // 8 + 0.0005 rounds to 3 decimals like Mesos; disk:0 is dropped
        assert_eq!(r[0].scalar.as_ref().unwrap().value, 8.001);
        assert_eq!(r[1].scalar.as_ref().unwrap().value, 1024.5);
        let cpuids = &r[2].ranges.as_ref().unwrap().range;
        assert_eq!(
            cpuids,
            &vec![
                value::Range { begin: 0, end: 5 },
                value::Range { begin: 8, end: 8 }
            ]
        );
        assert_eq!(r[4].r#type, value::Type::Set as i32);
        assert_eq!(r[4].set.as_ref().unwrap().item, ["a", "b", "c"]);
        assert_eq!(r[4].reservations.len(), 1);
        assert_eq!(r[4].reservations[0].role.as_deref(), Some("role"));
        assert_eq!(
            r[4].reservations[0].r#type,
            Some(reservation_info::Type::Static as i32)
        );
        assert!(parse_resources("").unwrap().is_empty());
        assert!(parse_resources("cpuids:[];x:{}").unwrap().is_empty());
        // ranges merge across entries of the same name and role
        let r = parse_resources("cpuids:[0-3];cpuids:[2-9]").unwrap();
        assert_eq!(
            r[0].ranges.as_ref().unwrap().range,
            vec![value::Range { begin: 0, end: 9 }]
        );
    }

    #[test]
    fn bad_resources_get_one_clear_error() {
        let cases = [
            ("cpus", "missing ':'"),
            ("cpus:1:2", "more than one ':'"),
            (":4", "empty name"),
            ("cpus:", "empty value"),
            ("cpus:abc", "is not a value"),
            ("cpus:-1", "negative"),
            ("cpus:1e3", "is not a value"),
            ("cpus:2000000000000", "too large"),
            ("cpuids:[5]", "not a pair"),
            ("cpuids:[5-5", "must end with ']'"),
            ("cpuids:[7-5]", "runs backwards"),
            ("cpuids:[0-5,3-8]", "overlap"),
            ("cpuids:[a-b]", "not a non-negative integer"),
            ("cpuids:[0-99999999999999999999]", "too large"),
            ("x:{a,a}", "given twice"),
            ("x:{a", "must end with '}'"),
            ("x:{a b}", "only letters"),
            ("cpus(:1", "closing ')'"),
            ("cpus():1", "empty role"),
            ("cp us:1", "only letters"),
            ("cpus:1;cpus:[1-2]", "one name has one type"),
        ];
        for (input, needle) in cases {
            let err = parse_resources(input).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    NumaError::Syntax {
                        flag: "--resources",
                        ..
                    }
                ),
                "{input}: {text}"
            );
            assert!(text.contains(needle), "{input}: {text}");
            assert!(!text.contains('\n'), "{input}: {text}");
        }
        for input in ["[{\"name\":\"cpus\"}]", "file:///etc/resources"] {
            assert!(matches!(
                parse_resources(input),
                Err(NumaError::Flags { .. })
            ));
        }
        let long = format!("cpus:{}", "x".repeat(10_000));
        assert!(parse_resources(&long).unwrap_err().to_string().len() < 600);
    }

    #[test]
    fn attributes_parse_like_a_mesos_agent() {
        let a = parse_attributes("rack:r-12;zone:2;range:[1-2];os:debian/12.5;ver:1.2.3").unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a[0].r#type, value::Type::Text as i32);
        assert_eq!(a[0].text.as_ref().unwrap().value, "r-12");
        assert_eq!(a[1].r#type, value::Type::Scalar as i32);
        assert_eq!(a[1].scalar.as_ref().unwrap().value, 2.0);
        assert_eq!(a[2].r#type, value::Type::Ranges as i32);
        assert_eq!(a[3].text.as_ref().unwrap().value, "debian/12.5");
        assert_eq!(a[4].r#type, value::Type::Text as i32);
        for (input, needle) in [
            ("s:{a,b}", "sets"),
            ("t:a b", "only letters"),
            ("t:a,b", "only letters"),
            ("n a:x", "attribute name"),
            ("t", "missing ':'"),
        ] {
            let text = parse_attributes(input).unwrap_err().to_string();
            assert!(text.contains(needle), "{input}: {text}");
        }
    }

    #[test]
    fn agent_flags_text_forms() {
        let spec = two_socket();
        let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
        let forms = [
            flags.to_flag_lines(),
            format!(
                "mesos-agent --master=zk://h:2181/mesos \\\n  --resources=\"{}\" --work_dir=/var/lib/mesos --attributes '{}'",
                flags.resources, flags.attributes
            ),
            format!(
                "--attributes={} --resources={}",
                flags.attributes, flags.resources
            ),
        ];
        let first = parse_agent_flags(&forms[0]).unwrap();
        assert_eq!(first.resources.len(), 4);
        assert_eq!(first.attributes.len(), 3);
        for form in &forms[1..] {
            assert_eq!(parse_agent_flags(form).unwrap(), first, "{form}");
        }
        for (input, needle) in [
            ("--resources='cpus:1", "unterminated"),
            ("--resources=cpus:1 --resources=cpus:2", "given twice"),
            ("--master=x", "neither"),
            ("--attributes", "last word"),
        ] {
            let text = parse_agent_flags(input).unwrap_err().to_string();
            assert!(text.contains(needle), "{input}: {text}");
        }
        // only resources: fine, no attributes
        let only = parse_agent_flags("--resources=cpus:2").unwrap();
        assert!(only.attributes.is_empty());
    }

    #[test]
    fn offer_without_numa_attributes_is_one_node_not_numa_aware() {
        let resources = parse_resources("cpus:3.7;mem:2048.9").unwrap();
        let rack = parse_attributes("rack:a").unwrap();
        let offer = offer_topology(&resources, &rack).unwrap();
        assert!(!offer.numa_aware);
        assert_eq!(offer.spec.nodes.len(), 1);
        assert_eq!(offer.spec.nodes[0].id, NodeId(0));
        assert_eq!(offer.spec.nodes[0].memory_mb, 2048);
        assert_eq!(
            offer.spec.nodes[0].cores,
            vec![core("0"), core("1"), core("2")]
        );
        assert_eq!(offer.free.cpuids, set("0-2"));
        assert_eq!(offer.free.cpus, 3.7);

        let resources =
            parse_resources("cpus:2;cpus(retz):2;cpuids:[4-5];cpuids(retz):[9-10]").unwrap();
        let offer = offer_topology(&resources, &[]).unwrap();
        assert!(!offer.numa_aware);
        assert_eq!(offer.free.cpus, 4.0);
        assert_eq!(offer.free.cpuids, set("4-5,9-10"));
        assert_eq!(
            offer.spec.nodes[0].cores,
            vec![core("4"), core("5"), core("9"), core("10")]
        );

        for text in ["mem:10", "cpus:0.5", ""] {
            let resources = parse_resources(text).unwrap();
            assert_eq!(
                offer_topology(&resources, &[]).unwrap_err(),
                NumaError::NoCpus
            );
        }
    }

    #[test]
    fn offer_with_partly_taken_cpus_keeps_the_layout() {
        let spec = two_socket();
        let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
        let attributes = parse_attributes(&flags.attributes).unwrap();
        let resources = parse_resources("cpus:4;mem:100;cpuids:[8-9,24-25];numanodes:1").unwrap();
        let offer = offer_topology(&resources, &attributes).unwrap();
        assert!(offer.numa_aware);
        assert_eq!(offer.spec, spec);
        assert_eq!(offer.free.cpuids, set("8-9,24-25"));
        assert_eq!(offer.free.numanodes, 1.0);
        // no cpuids left at all
        let offer = offer_topology(&parse_resources("mem:1").unwrap(), &attributes).unwrap();
        assert!(offer.free.cpuids.is_empty());
        // cpuids beyond the layout
        let resources = parse_resources("cpuids:[30-40]").unwrap();
        assert_eq!(
            offer_topology(&resources, &attributes).unwrap_err(),
            NumaError::CpusOutsideTopology { cpus: set("32-40") }
        );
    }

    #[test]
    fn bad_numa_attributes_get_clear_errors() {
        let with = |attrs: &str| {
            let attributes = parse_attributes(attrs).unwrap();
            offer_topology(&parse_resources("cpus:1").unwrap(), &attributes)
                .unwrap_err()
                .to_string()
        };
        let cases = [
            (
                "retz_numa:v2;numa_n0:pkg.0/mem.1/cores.0",
                "understands only",
            ),
            ("retz_numa:1;numa_n0:pkg.0/mem.1/cores.0", "TEXT"),
            ("retz_numa:v1", "no numa_n<id>"),
            ("retz_numa:v1;numa_nx:pkg.0/mem.1/cores.0", "numa_n<id>"),
            ("retz_numa:v1;numa_n99999:pkg.0/mem.1/cores.0", "numa_n<id>"),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_n0:pkg.0/mem.1",
                "given twice",
            ),
            ("retz_numa:v1;numa_n0:mem.1/cores.0", "missing pkg"),
            ("retz_numa:v1;numa_n0:pkg.0/cores.0", "missing mem"),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/pkg.1/cores.0",
                "given twice",
            ),
            ("retz_numa:v1;numa_n0:pkg.0/mem.1/cpus.0", "unknown field"),
            ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores", "not key.value"),
            (
                "retz_numa:v1;numa_n0:pkg.x/mem.1/cores.0",
                "not an unsigned integer",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0.0",
                "already listed",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-5s2",
                "multiple of STRIDE",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.5-0",
                "LAST below FIRST",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-4s0",
                "zero stride",
            ),
            ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0t2t1", "ascending"),
            ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0t0", "ascending"),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0t",
                "not an unsigned integer",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.65535t1",
                "above 65535",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-65535.0",
                "already listed",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0/dist.10.20",
                "distance row",
            ),
            ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0/dist.0", "is 0"),
            ("retz_numa:v1;numa_n0:pkg.0/mem.1", "no usable CPU"),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:0",
                "TEXT",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:cpus.0",
                "listed twice",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:cpus.3-1",
                "backwards",
            ),
            (
                "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:x.1",
                "cpus.<list>",
            ),
        ];
        for (attrs, needle) in cases {
            let text = with(attrs);
            assert!(text.contains(needle), "{attrs}: {text}");
            assert!(!text.contains('\n'), "{attrs}: {text}");
        }
    }

    #[test]
    fn offer_resources_of_the_wrong_type_are_errors() {
        let r = parse_resources("cpuids:7").unwrap();
        assert!(matches!(
            offer_topology(&r, &[]),
            Err(NumaError::ResourceType {
                expected: "RANGES",
                ..
            })
        ));
        let r = parse_resources("cpus:[1-2]").unwrap();
        assert!(matches!(
            offer_topology(&r, &[]),
            Err(NumaError::ResourceType {
                expected: "SCALAR",
                ..
            })
        ));
        let mut r = parse_resources("mem:1;cpus:1").unwrap();
        r[0].scalar = Some(value::Scalar { value: f64::NAN });
        assert!(matches!(
            offer_topology(&r, &[]),
            Err(NumaError::ResourceType { .. })
        ));
        let r = vec![Resource {
            name: CPUIDS.to_string(),
            r#type: value::Type::Ranges as i32,
            ranges: Some(value::Ranges {
                range: vec![value::Range {
                    begin: 0,
                    end: u64::MAX,
                }],
            }),
            ..Default::default()
        }];
        assert!(matches!(
            offer_topology(&r, &[]),
            Err(NumaError::ResourceType { .. })
        ));
    }

    #[test]
    fn cpuset_ranges_convert_both_ways() {
        let s = set("0-3,8,10-11");
        let r = cpuset_to_ranges(&s);
        assert_eq!(r.range.len(), 3);
        assert_eq!(ranges_to_cpuset(&r).unwrap(), s);
        let reversed = value::Ranges {
            range: vec![value::Range { begin: 5, end: 4 }],
        };
        assert!(ranges_to_cpuset(&reversed).is_err());
    }

    /// Nasty inputs for the fuzz target; none may panic.
    #[test]
    fn fuzz_target_survives_nasty_inputs() {
        let spec = two_socket();
        let good = agent_flags(&spec, &FreeResources::whole_machine(&spec))
            .unwrap()
            .to_flag_lines();
        let corpus = [
            String::new(),
            good.clone(),
            good.replace("cores.0-7t16", "cores.0-7t16t4294967295"),
            good.replace("cores.0-7t16", "cores.0-65535s1"),
            good.replace("cores.0-7t16", "cores.4294967295-4294967295"),
            good.replace("mem.32739", "mem.18446744073709551616"),
            good.replace("dist.10.20", "dist.4294967296.1"),
            good.replace("v1", "v1.0"),
            "--resources='cpus:999999999999;cpus:999999999999'".to_string(),
            "--resources=cpus:1000000000000;cpus:0.001".to_string(),
            "--resources=cpus:0.0004".to_string(),
            "--resources=cpus:1.9999 --attributes=".to_string(),
            "--resources=cpuids:[0-65535];cpus:1 ".to_string(),
            "--resources=cpuids:[0-65536]".to_string(),
            "--resources=\"\\".to_string(),
            "'\"'\"".to_string(),
            "--resources=;;;;:;".to_string(),
            "--attributes=retz_numa:v1;numa_n0://///".to_string(),
            "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.0-0s0".to_string(),
            "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.ttt".to_string(),
            "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.-".to_string(),
            "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.0-s".to_string(),
            "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.1é".to_string(),
            "--attributes=retz_numa:v1;numa_n00:pkg.0/mem.0/cores.1;numa_n0:pkg.0/mem.0/cores.2"
                .to_string(),
            "--resources=cpus(*):4;mem(r/x):5 --attributes=retz_numa:v1;numa_n3:pkg.0/mem.0/cores.0t1t2t3"
                .to_string(),
            "\u{0}\u{feff}--resources=cpus:1".to_string(),
            "x".repeat(100_000),
            format!("--resources=cpuids:[{}]", "1-1,".repeat(5000)),
            format!("--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.{}", "0t1".repeat(3000)),
        ];
        for input in &corpus {
            fuzz_agent_flags(input);
        }
    }

    // ---- property tests

    fn arb_cpu() -> impl Strategy<Value = u32> {
        prop_oneof![4 => 0u32..256, 1 => 0u32..=MAX_SET_ID]
    }

    fn arb_scalar() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            (0u64..100_000).prop_map(|k| k as f64),
            (0u64..=1_000_000_000_000_000).prop_map(|k| k as f64 / 1000.0),
        ]
    }

    prop_compose! {
        fn arb_spec_and_free()(
            ids in proptest::collection::btree_set(0u32..=MAX_SET_ID, 1..=6),
            cpus in proptest::collection::vec(arb_cpu(), 1..160),
            cores in proptest::collection::vec((any::<u8>(), 1usize..=4), 1..60),
            params in proptest::collection::vec((any::<u32>(), any::<u64>()), 6),
            with_distances in any::<bool>(),
            distances in proptest::collection::vec(1u32..=u32::MAX, 36),
            offline_mask in proptest::collection::vec(any::<bool>(), 160),
            free_mask in proptest::collection::vec(any::<bool>(), 160),
            scalars in proptest::collection::vec(arb_scalar(), 5),
        ) -> (TopologySpec, FreeResources) {
            let ids: Vec<u32> = ids.into_iter().collect();
            let n = ids.len();
            let mut seen = std::collections::BTreeSet::new();
            let cpus: Vec<u32> = cpus.into_iter().filter(|c| seen.insert(*c)).collect();
            let mut nodes: Vec<NodeSpec> = ids
                .iter()
                .enumerate()
                .map(|(i, &id)| NodeSpec {
                    id: NodeId(id),
                    package: params[i].0,
                    memory_mb: params[i].1,
                    cores: Vec::new(),
                    distances: if with_distances {
                        distances[i * 6..i * 6 + n].to_vec()
                    } else {
                        Vec::new()
                    },
                })
                .collect();
            let mut next = 0;
            for (selector, size) in cores {
                if next >= cpus.len() {
                    break;
                }
                let take = size.min(cpus.len() - next);
                let core_cpus: CpuSet = cpus[next..next + take].iter().map(|&c| CpuId(c)).collect();
                next += take;
                nodes[usize::from(selector) % n].cores.push(CoreSpec { cpus: core_cpus });
            }
            let offline_cpus: CpuSet = cpus[next..]
                .iter()
                .zip(&offline_mask)
                .filter(|(_, off)| **off)
                .map(|(&c, _)| CpuId(c))
                .collect();
            let usable: Vec<u32> = cpus[..next].to_vec();
            let cpuids: CpuSet = usable
                .iter()
                .zip(&free_mask)
                .filter(|(_, f)| **f)
                .map(|(&c, _)| CpuId(c))
                .collect();
            let free = FreeResources {
                cpuids,
                cpus: scalars[0],
                mem_mb: scalars[1],
                disk_mb: scalars[2],
                gpus: scalars[3],
                numanodes: scalars[4],
            };
            (TopologySpec { nodes, offline_cpus }, free)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn spec_to_flags_to_spec_is_identity((spec, free) in arb_spec_and_free()) {
            prop_assume!(Topology::new(spec.clone()).is_ok());
            let flags = agent_flags(&spec, &free).unwrap();
            for (name, value) in topology_attributes(&spec).unwrap() {
                prop_assert!(name.chars().all(is_text_char));
                prop_assert!(value.starts_with(|c: char| c.is_ascii_alphabetic()));
                prop_assert!(value.chars().all(is_text_char), "{}", value);
            }
            let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
            let offer = offer_topology(&parsed.resources, &parsed.attributes).unwrap();
            prop_assert!(offer.numa_aware);
            prop_assert_eq!(&offer.spec, &spec);
            prop_assert_eq!(&offer.free, &free);
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,200}") {
            fuzz_agent_flags(&text);
        }

        #[test]
        fn parsers_never_panic_on_flag_shaped_text(
            text in "(--resources=|--attributes=|retz_numa:v1;|numa_n[0-9]:|pkg\\.|mem\\.|cores\\.|dist\\.|[0-9]{1,6}|[-st./;:,\\[\\]{}()'\"]){0,40}"
        ) {
            fuzz_agent_flags(&text);
        }
    }
}
