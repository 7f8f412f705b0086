//! The logging setup the three binaries share (`retz-server`, `retz-mesos-local`,
//! `retz-executor`): one [`init`] each `main` calls.
//!
//! Invariants:
//! - logs go to stderr; ANSI colour only when stderr is a terminal (a log file or a
//!   journal never gets escape codes);
//! - [`LogFormat::Json`] writes one JSON object per line (fields, the current span and
//!   its parents flattened in `spans`), [`LogFormat::Text`] the usual human format;
//! - the filter comes from the environment variable the binary names (`RUST_LOG`,
//!   `RETZ_LOG`), else the binary's default level.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A `--log-format` value that is neither `text` nor `json`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}; use text or json")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, UnknownLogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.chars().take(32).collect())),
        }
    }
}

/// A subscriber writing to `writer` in `format`, filtered by `filter`, with colour only
/// when `ansi`. [`init`] installs one over stderr; tests capture with their own writer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
}

/// Installs the process's logger: stderr, `format`, the filter in the environment
/// variable `env_var` (else `default_level`), colour only on a terminal. A second call
/// (a logger already installed) changes nothing.
pub fn init(format: LogFormat, env_var: &str, default_level: &str) {
    let filter = EnvFilter::try_from_env(env_var).unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = std::io::stderr().is_terminal();
    let _ =
        tracing::subscriber::set_global_default(subscriber(format, filter, ansi, std::io::stderr));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'w> MakeWriter<'w> for Buf {
        type Writer = Buf;
        fn make_writer(&'w self) -> Buf {
            self.clone()
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    fn capture(format: LogFormat, ansi: bool) -> String {
        let buf = Buf::default();
        let sub = subscriber(format, EnvFilter::new("info"), ansi, buf.clone());
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("request", request_id = "abc-1");
            let _g = span.enter();
            tracing::info!(status = 500, "request failed");
            tracing::warn!("second line");
        });
        buf.text()
    }

    #[test]
    fn json_format_writes_one_json_object_per_line_with_the_span() {
        let out = capture(LogFormat::Json, true);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).expect(line);
            assert!(v["level"].is_string(), "{line}");
        }
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["message"], "request failed");
        assert_eq!(first["status"], 500);
        assert_eq!(first["span"]["request_id"], "abc-1");
        assert!(!out.contains('\u{1b}'), "no escape codes in JSON: {out}");
    }

    #[test]
    fn text_without_a_terminal_has_no_escape_codes() {
        let plain = capture(LogFormat::Text, false);
        assert!(plain.contains("request failed"), "{plain}");
        assert!(plain.contains("request_id"), "{plain}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        let coloured = capture(LogFormat::Text, true);
        assert!(
            coloured.contains('\u{1b}'),
            "colour on a terminal: {coloured:?}"
        );
    }

    #[test]
    fn formats_parse_and_unknown_ones_are_named() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(" TEXT ".parse::<LogFormat>().unwrap(), LogFormat::Text);
        let e = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(e.to_string().contains("use text or json"), "{e}");
    }
}
