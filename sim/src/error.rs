//! Errors of outside input: [`InputError`] names the file (or the command-line value), the
//! 1-based line when there is one, and what to do. Every parser in this crate returns it,
//! so the binary can print exactly one line `file:line: message` and exit non-zero.
//!
//! Invariant: `message` never holds a newline (long or hostile input is cut to a short
//! excerpt by [`excerpt`] before it goes into a message).

use std::fmt;
use std::path::Path;

/// Bad outside input: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The file, or a label such as `--cluster` for a command-line value.
    pub origin: String,
    /// 1-based line number; 0 when the error is not about one line.
    pub line: usize,
    /// What is wrong and what to do, one line.
    pub message: String,
}

impl InputError {
    /// An error at `line` (1-based; 0 = the whole input) of `source`.
    pub fn new(source: impl Into<String>, line: usize, message: impl Into<String>) -> Self {
        let message: String = message.into();
        InputError {
            origin: source.into(),
            line,
            message: message.replace(['\n', '\r'], " "),
        }
    }

    /// An error about a file as a whole (cannot be read, is empty, ...).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        InputError::new(path.display().to_string(), 0, message)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.origin, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.origin, self.message)
        }
    }
}

/// At most `max` characters of `s` (for quoting input in messages), with `…` when cut, and
/// control characters replaced.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Reads a whole file as UTF-8 text, with an [`InputError`] naming it on failure.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::file(path, format!("cannot read the file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        InputError::new(
            path.display().to_string(),
            line,
            "the file is not UTF-8 text; convert it (e.g. iconv) or check it is the right file",
        )
    })
}

/// The 1-based line of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_and_without_line() {
        let e = InputError::new("w.swf", 7, "bad\nthing");
        assert_eq!(e.to_string(), "w.swf:7: bad thing");
        assert_eq!(
            InputError::new("--cluster", 0, "empty").to_string(),
            "--cluster: empty"
        );
    }

    #[test]
    fn excerpts_and_lines() {
        assert_eq!(excerpt("abc", 2), "ab…");
        assert_eq!(excerpt("a\tb", 5), "a b");
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn reading_reports_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        let e = read_text(&p).unwrap_err();
        assert!(e.to_string().contains("x.txt: cannot read the file"), "{e}");
        std::fs::write(&p, b"ok\n\xff\xfe").unwrap();
        let e = read_text(&p).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}
