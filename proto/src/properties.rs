//! The one reader of Java `.properties` text (the original Retz's `retz.properties`), used
//! by the server's and the client's config loaders, which used to carry two copies of a
//! line-splitting loop.
//!
//! The grammar is `java.util.Properties.load`'s: `#` and `!` comment lines; a key ends
//! at the first unescaped `=`, `:` or whitespace, and one `=`/`:` with the whitespace
//! around it separates it from the value (a line with only a key has an empty value); a
//! line ending in an odd number of backslashes continues on the next one (whose leading
//! whitespace is dropped); `\t`, `\n`, `\r`, `\f`, `\uXXXX` and `\c` (any other
//! character, itself) are escapes. Two differences, both kept from the readers this one
//! replaces: unescaped trailing whitespace of a value is dropped, and a leading byte order
//! mark is ignored.

/// One `key = value` entry, with the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    /// The line the entry starts on (1-based).
    pub line: usize,
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped.
    pub value: String,
}

/// Why a properties text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `\u` escape not followed by four hexadecimal digits.
    #[error("line {line}: malformed \\uXXXX escape (write four hex digits after \\u)")]
    BadUnicodeEscape {
        /// The line the escape is on (1-based).
        line: usize,
    },
    /// A `\uXXXX` escape naming a lone surrogate half, which is no character.
    #[error("line {line}: \\u{code:04X} is half of a surrogate pair, not a character")]
    LoneSurrogate {
        /// The line the escape is on (1-based).
        line: usize,
        /// The code unit.
        code: u16,
    },
}

impl ParseError {
    /// The line the error is on (1-based).
    pub fn line(&self) -> usize {
        match self {
            ParseError::BadUnicodeEscape { line } | ParseError::LoneSurrogate { line, .. } => *line,
        }
    }
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Reads every entry of `text`, in file order (a later entry for a key does not remove an
/// earlier one; callers apply them in order, so the last wins).
pub fn parse(text: &str) -> Result<Vec<Property>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut lines = split_lines(text).enumerate().peekable();
    while let Some((index, first)) = lines.next() {
        let start = first.trim_start_matches(is_blank);
        if start.is_empty() || start.starts_with('#') || start.starts_with('!') {
            continue;
        }
        // Join the continuation lines: (physical line number, text) pieces.
        let mut logical: Vec<(usize, &str)> = Vec::new();
        let mut piece = start;
        let mut number = index + 1;
        loop {
            let continued = ends_in_odd_backslashes(piece);
            if !continued {
                logical.push((number, piece));
                break;
            }
            logical.push((number, &piece[..piece.len() - 1]));
            match lines.next() {
                Some((i, next)) => {
                    number = i + 1;
                    piece = next.trim_start_matches(is_blank);
                }
                None => break,
            }
        }
        out.push(entry(index + 1, &logical)?);
    }
    Ok(out)
}

/// Natural lines: split at `\n`, `\r` or `\r\n`.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.find(['\n', '\r']) {
            Some(i) => {
                let skip = if r[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&r[i + skip..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                (!r.is_empty()).then_some(r)
            }
        }
    })
}

fn ends_in_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Where the reader is in one logical line.
#[derive(PartialEq)]
enum Part {
    Key,
    /// After the key: whitespace, then at most one `=` or `:`.
    Separator {
        seen: bool,
    },
    Value,
}

/// One logical line (its continuation pieces) as an entry.
fn entry(line: usize, pieces: &[(usize, &str)]) -> Result<Property, ParseError> {
    let mut key = String::new();
    let mut value = String::new();
    // Bytes of `value` that must stay (up to and including the last escaped character).
    let mut kept = 0;
    let mut part = Part::Key;
    for &(number, piece) in pieces {
        let mut chars = piece.chars();
        while let Some(c) = chars.next() {
            let (c, escaped) = if c == '\\' {
                match chars.next() {
                    Some(e) => (unescape(e, &mut chars, number)?, true),
                    None => break,
                }
            } else {
                (c, false)
            };
            if let Part::Separator { seen } = part {
                if !escaped && is_blank(c) {
                    continue;
                }
                if !escaped && !seen && (c == '=' || c == ':') {
                    part = Part::Separator { seen: true };
                    continue;
                }
                part = Part::Value;
            }
            match part {
                Part::Key if !escaped && (c == '=' || c == ':') => {
                    part = Part::Separator { seen: true };
                }
                Part::Key if !escaped && is_blank(c) => part = Part::Separator { seen: false },
                Part::Key => key.push(c),
                _ => {
                    value.push(c);
                    if escaped {
                        kept = value.len();
                    }
                }
            }
        }
    }
    let trimmed = value[kept..].trim_end().len();
    value.truncate(kept + trimmed);
    Ok(Property { line, key, value })
}

/// The character `\e` stands for (reading four hex digits from `rest` after `\u`).
fn unescape(e: char, rest: &mut std::str::Chars<'_>, line: usize) -> Result<char, ParseError> {
    Ok(match e {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'f' => '\u{c}',
        'u' => {
            let hex: String = rest.by_ref().take(4).collect();
            let code = (hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(&hex, 16).ok())
                .flatten()
                .ok_or(ParseError::BadUnicodeEscape { line })?;
            char::from_u32(u32::from(code)).ok_or(ParseError::LoneSurrogate { line, code })?
        }
        other => other,
    })
}

/// `value` written so that [`parse`] reads it back exactly after `key = `: backslashes
/// and line breaks escaped, and leading and trailing whitespace kept with `\ ` / `\t`.
pub fn escape_value(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let last_kept = chars.iter().rposition(|c| !c.is_whitespace());
    let mut out = String::with_capacity(value.len());
    for (i, &c) in chars.iter().enumerate() {
        let edge = i == 0 || last_kept.is_none_or(|l| i > l);
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_whitespace() && edge => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn escaped_values_read_back_exactly(v in "\\PC*|[ \t\\\\=:#!a\n\r]{0,8}") {
            let text = format!("k = {}\n", escape_value(&v));
            let got = parse(&text).unwrap();
            proptest::prop_assert_eq!(got.len(), 1);
            proptest::prop_assert_eq!(&got[0].value, &v);
        }
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn one(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.to_owned(), v.to_owned())]
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# comment\n  ! also a comment\n\na=1\nb : 2\nc   3\nd\n  e=x=y\n";
        let got = parse(text).unwrap();
        let lines: Vec<usize> = got.iter().map(|p| p.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8]);
        assert_eq!(
            pairs(text),
            [("a", "1"), ("b", "2"), ("c", "3"), ("d", ""), ("e", "x=y")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // `=` after whitespace is the separator; a second one belongs to the value.
        assert_eq!(pairs("k = = v"), one("k", "= v"));
        // A URL value keeps its colons: only the first one separates.
        assert_eq!(
            pairs("retz.server.uri : http://h:9090"),
            one("retz.server.uri", "http://h:9090")
        );
    }

    /// Where the two loops this reader replaces went wrong (both the same way): a
    /// continued line was cut at the backslash and its rest read as a new key, escapes
    /// stayed in the value, an escaped `:` in a key split the key, and a byte order mark
    /// became part of the first key.
    #[test]
    fn continuation_lines_escapes_and_bom() {
        let got = parse("retz.mesos = 10.0.0.1:5050,\\\n    10.0.0.2:5050\nnext=1\n").unwrap();
        assert_eq!(got[0].value, "10.0.0.1:5050,10.0.0.2:5050");
        assert_eq!((got[1].line, got[1].key.as_str()), (3, "next"));
        assert_eq!(pairs("a\\:b=c"), one("a:b", "c"));
        assert_eq!(
            pairs("path=C:\\\\data\\\\retz"),
            one("path", "C:\\data\\retz")
        );
        assert_eq!(pairs("tab=\\tx\\u0041\\u65e5"), one("tab", "\txA日"));
        assert_eq!(pairs("\u{feff}retz.user=jobs"), one("retz.user", "jobs"));
        // Trailing whitespace is dropped unless escaped; an even run of backslashes
        // does not continue the line.
        assert_eq!(pairs("k=v  \t"), one("k", "v"));
        assert_eq!(pairs("k=v\\ \n"), one("k", "v "));
        assert_eq!(
            pairs("k=v\\\\\nn=1"),
            vec![
                ("k".to_owned(), "v\\".to_owned()),
                ("n".to_owned(), "1".to_owned())
            ]
        );
        // CR and CRLF end lines too; a continuation at the end of the text ends it.
        assert_eq!(
            pairs("a=1\r\nb=2\rc=3\\"),
            [("a", "1"), ("b", "2"), ("c", "3")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn errors_carry_the_line() {
        let e = parse("a=1\n# x\nb=\\u12").unwrap_err();
        assert_eq!(e, ParseError::BadUnicodeEscape { line: 3 });
        assert!(e.to_string().starts_with("line 3: "), "{e}");
        let e = parse("a=1\\\n  \\uzzzz").unwrap_err();
        assert_eq!(e.line(), 2);
        let e = parse("a=\\ud800").unwrap_err();
        assert_eq!(
            e,
            ParseError::LoneSurrogate {
                line: 1,
                code: 0xd800
            }
        );
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for text in [
            "\\",
            "\\u",
            "=",
            ":",
            "\u{feff}",
            "\r\r\n\\\r",
            "k\\",
            "日本=語\\u00e9",
        ] {
            let _ = parse(text);
        }
    }
}
