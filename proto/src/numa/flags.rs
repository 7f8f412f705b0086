//! Agent flag text → Mesos values: `--resources`/`--attributes` read like a Mesos agent
//! reads them (scalars, `[ranges]`, `{sets}`, `name(role)`, text attributes), one clear
//! error per bad input (part of the NUMA convention, see the parent module).

use super::*;

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
pub(super) fn shell_words(text: &str) -> Result<Vec<String>, NumaError> {
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

pub(super) fn split_entry(entry: &str) -> Result<(&str, &str), String> {
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

pub(super) fn parse_resource_key(key: &str) -> Result<(&str, Option<&str>), String> {
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
pub(super) fn check_text(text: &str, what: &str) -> Result<(), String> {
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

pub(super) fn is_text_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')
}

pub(super) enum ParsedValue {
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

pub(super) fn type_name(type_: i32) -> String {
    match value::Type::try_from(type_) {
        Ok(value::Type::Scalar) => "SCALAR".to_string(),
        Ok(value::Type::Ranges) => "RANGES".to_string(),
        Ok(value::Type::Set) => "SET".to_string(),
        Ok(value::Type::Text) => "TEXT".to_string(),
        Err(_) => format!("unknown type {type_}"),
    }
}

pub(super) fn merge_value(existing: &mut Resource, parsed: ParsedValue) -> Result<(), String> {
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
pub(super) fn parse_value(text: &str, attribute: bool) -> Result<ParsedValue, String> {
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
pub(super) fn parse_scalar(text: &str) -> Result<Option<f64>, String> {
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
pub(super) fn parse_ranges(inner: &str) -> Result<Vec<value::Range>, String> {
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
pub(super) fn coalesce(
    mut ranges: Vec<value::Range>,
    strict: bool,
) -> Result<Vec<value::Range>, String> {
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

pub(super) fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTE_MAX {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(QUOTE_MAX).collect();
        s.push('…');
        s
    }
}
