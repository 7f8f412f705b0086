//! Query strings and path segments exactly as they are sent and signed.
//!
//! Invariant: everything but ASCII letters, digits and `-._~` is percent-encoded (UTF-8),
//! so the text the client signs is byte for byte the text on the wire (no later
//! normalisation by the URL parser can change it), and a space is `%20`, never `+`.

/// Percent-encodes one query value or path segment.
pub fn encode(value: &str) -> String {
    // form_urlencoded leaves only `*-._` and alphanumerics, writes a space as `+` and a
    // literal `+` as `%2B`; so every `+` in its output is a space.
    let s: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    s.replace('+', "%20").replace('*', "%2A")
}

/// `k1=v1&k2=v2` with every key and value encoded by [`encode`]; empty for no pairs.
pub fn build(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_plus_and_unicode_survive_a_form_decoder() {
        let nasty = "a b+c/d?e&f=g%h#i 日本.txt*";
        let q = build(&[("path", nasty), ("offset", "0")]);
        assert!(
            !q.contains(' ') && !q.contains('+') && !q.contains('#'),
            "{q}"
        );
        let back: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(back[0], ("path".to_owned(), nasty.to_owned()));
        assert_eq!(back[1], ("offset".to_owned(), "0".to_owned()));
    }

    #[test]
    fn encoded_text_is_not_changed_by_the_url_parser() {
        let q = build(&[("path", "x y+z/ü~")]);
        let u = url::Url::parse(&format!("http://h/job/1/file?{q}")).unwrap();
        assert_eq!(u.query(), Some(q.as_str()));
    }
}
