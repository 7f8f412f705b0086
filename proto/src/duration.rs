//! The one duration grammar of Retz: Mesos' (`5secs`, `1.5mins`, `100ms`, as in
//! `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`) plus the short forms operators type on command
//! lines (`15s`, `2m`, `1h`; a bare number is seconds). Used by the executor's
//! environment and flags and by `retz-mesos-local`'s flags, which used to parse two
//! different grammars.

use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number at the start.
    #[error("'{0}' is not a duration: write a number and a unit, e.g. 5secs, 15s or 500ms")]
    NotANumber(String),
    /// A unit this grammar does not know.
    #[error(
        "'{text}': unknown unit '{unit}' (use ns, us, ms, s/secs, m/mins, h/hrs, d/days or w/weeks)"
    )]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// Negative, not finite or too long for a `Duration`.
    #[error("'{0}' is out of range for a duration")]
    OutOfRange(String),
}

/// Parses `text` as a duration (see the module docs for the grammar).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotANumber(text.to_owned()))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "" | "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        other => {
            return Err(DurationError::UnknownUnit {
                text: text.to_owned(),
                unit: other.to_owned(),
            });
        }
    };
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| DurationError::OutOfRange(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mesos_and_short_forms() {
        for (text, want) in [
            ("5secs", Duration::from_secs(5)),
            ("250us", Duration::from_micros(250)),
            ("3ns", Duration::from_nanos(3)),
            ("1weeks", Duration::from_secs(604_800)),
            ("1.5mins", Duration::from_secs(90)),
            ("15", Duration::from_secs(15)),
            ("1.5s", Duration::from_millis(1500)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0secs", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        for bad in ["", "x", "secs", "..secs", "-1s"] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::NotANumber(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_duration("5 hours"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert_eq!(
            parse_duration("1e999secs").unwrap_err().to_string(),
            "'1e999secs': unknown unit 'e999secs' (use ns, us, ms, s/secs, m/mins, h/hrs, d/days or w/weeks)"
        );
        assert_eq!(
            parse_duration("99999999999999999999999weeks"),
            Err(DurationError::OutOfRange(
                "99999999999999999999999weeks".into()
            ))
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = parse_duration(&s);
        }
    }
}
