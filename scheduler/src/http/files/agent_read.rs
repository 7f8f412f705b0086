//! Decoding an agent's `/files/read` answer byte for byte.
//!
//! A Mesos agent writes the bytes it read straight into the JSON string (stout escapes
//! only `"`, `\`, `/` and control characters), so the body of a read of non-UTF-8 bytes
//! is not valid UTF-8 and no JSON library will take it; one that replaces invalid
//! sequences would alter the bytes and shift every later offset. [`parse_read`] reads
//! the object itself: raw bytes inside the string are taken as they are, and escapes
//! are decoded as JSON defines them (`\uXXXX` as the UTF-8 of that character, surrogate
//! pairs joined), which gives back exactly the file's bytes for Mesos's encoding and for
//! any standard JSON encoder's encoding of text.

/// What an agent's `/files/read` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRead {
    /// The bytes read.
    pub data: Vec<u8>,
    /// Where they start in the file (the file's size when no offset was asked).
    pub offset: u64,
}

/// Parses `{"data": "...", "offset": n}` (other members skipped, in any order).
pub fn parse_read(body: &[u8]) -> Result<AgentRead, String> {
    let mut p = Parser { s: body, i: 0 };
    p.ws();
    p.expect(b'{')?;
    let mut data = None;
    let mut offset = None;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            match key.as_slice() {
                b"data" => data = Some(p.string()?),
                b"offset" => offset = Some(p.unsigned()?),
                _ => p.skip_value(0)?,
            }
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(p.error("',' or '}'")),
            }
        }
    }
    p.ws();
    if p.i != body.len() {
        return Err(p.error("the end of the answer"));
    }
    Ok(AgentRead {
        data: data.ok_or("no \"data\" member")?,
        offset: offset.ok_or("no \"offset\" member")?,
    })
}

/// Deepest nesting skipped in members other than `data` and `offset`.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn error(&self, wanted: &str) -> String {
        match self.peek() {
            Some(b) => format!(
                "expected {wanted} at byte {}, found {:?}",
                self.i, b as char
            ),
            None => format!("expected {wanted} at byte {}, found the end", self.i),
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(&format!("{:?}", b as char)))
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.error("four hex digits"))?;
        self.i += 4;
        Ok(digits)
    }

    /// A string's bytes: raw bytes as they are, escapes decoded.
    fn string(&mut self) -> Result<Vec<u8>, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let start = self.i;
            while !matches!(self.peek(), Some(b'"' | b'\\') | None) {
                self.i += 1;
            }
            out.extend_from_slice(&self.s[start..self.i]);
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {}
                _ => return Err(self.error("the end of the string")),
            }
            let c = match self.next() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    let first = self.hex4()?;
                    let code = if (0xD800..0xDC00).contains(&first)
                        && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                    {
                        self.i += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(format!("a lone surrogate \\u{first:04x} in the data"));
                        }
                        0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        first
                    };
                    char::from_u32(code)
                        .ok_or_else(|| format!("a lone surrogate \\u{code:04x} in the data"))?
                }
                _ => {
                    self.i -= 1;
                    return Err(self.error("an escape"));
                }
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }

    fn unsigned(&mut self) -> Result<u64, String> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| {
                self.i = start;
                self.error("a whole number")
            })
    }

    /// Skips any JSON value (for members we do not use).
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("members nested deeper than {MAX_DEPTH}"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(self.error("',' or the end of a list")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')
                ) {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(self.error("a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_bytes_come_back_exactly() {
        // What a Mesos agent writes for 'a"\/' newline, DEL, 日 cut after two bytes, 0xFF.
        let body = b"{\"data\":\"a\\\"\\\\\\/\\n\\u007f\xe6\x97\xff\",\"offset\":65535}";
        let r = parse_read(body).unwrap();
        assert_eq!(r.data, b"a\"\\/\n\x7f\xe6\x97\xff");
        assert_eq!(r.offset, 65535);
    }

    #[test]
    fn standard_json_text_decodes_to_its_utf8() {
        let text = "日本 \u{1F600} é\t\u{0}";
        for body in [
            serde_json::json!({"data": text, "offset": 3}).to_string(),
            // every character escaped, as some encoders do
            r#"{ "offset" : 3 , "data" : "\u65e5\u672c \ud83d\ude00 \u00e9\t\u0000" }"#.to_owned(),
        ] {
            let r = parse_read(body.as_bytes()).unwrap();
            assert_eq!(
                (r.data.as_slice(), r.offset),
                (text.as_bytes(), 3),
                "{body}"
            );
        }
    }

    #[test]
    fn other_members_are_skipped_and_bad_answers_refused() {
        let r =
            parse_read(br#"{"x":[1,{"y":"}"},-2.5e3,true,null],"data":"","offset":0}"#).unwrap();
        assert_eq!(
            r,
            AgentRead {
                data: Vec::new(),
                offset: 0
            }
        );
        for bad in [
            &b""[..],
            b"[]",
            b"{\"data\":\"x\"}",
            b"{\"offset\":1}",
            b"{\"data\":\"x\",\"offset\":-1}",
            b"{\"data\":\"x,\"offset\":1}",
            b"{\"data\":\"\\ud800\",\"offset\":1}",
            b"{\"data\":\"\\q\",\"offset\":1}",
            b"{\"data\":\"\",\"offset\":1} trailing",
        ] {
            assert!(parse_read(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!(
            "{{\"x\":{}{},\"data\":\"\",\"offset\":0}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse_read(deep.as_bytes()).unwrap_err().contains("nested"));
    }

    proptest::proptest! {
        /// Whatever bytes a Mesos agent read, they come back unchanged.
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), offset in 0u64..u64::MAX) {
            let mut body = b"{\"data\":\"".to_vec();
            for &b in &data {
                match b {
                    b'"' => body.extend_from_slice(b"\\\""),
                    b'\\' => body.extend_from_slice(b"\\\\"),
                    b'/' => body.extend_from_slice(b"\\/"),
                    0x00..=0x1f | 0x7f => body.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                    _ => body.push(b),
                }
            }
            body.extend_from_slice(format!("\",\"offset\":{offset}}}").as_bytes());
            let r = parse_read(&body).unwrap();
            proptest::prop_assert_eq!(r.data, data);
            proptest::prop_assert_eq!(r.offset, offset);
        }
    }
}
