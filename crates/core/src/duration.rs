//! Human durations on the command line and in config: `500ms`, `10s`, `1m`, `2h`, `1.5s`; a
//! bare number means seconds (the convention of `sleep`, `timeout` and Nagios plugins).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {problem} (use e.g. 500ms, 10s, 1m; a bare number is seconds)"
)]
pub struct DurationError {
    pub input: String,
    pub problem: &'static str,
}

/// Parses `500ms`, `10s`, `1m`, `2h`, `1d`, `1.5s`, `250us` or a bare number of seconds.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |problem| DurationError {
        input: input.to_string(),
        problem,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(fail("empty"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(fail("no number"));
    }
    let value: f64 = number.parse().map_err(|_| fail("not a number"))?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(fail("unknown unit")),
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(fail("too large"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration the way `parse_duration` reads it, for help text and logs.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        format!("{}us", duration.as_micros())
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_bare_seconds() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration(" 0.1 ").unwrap(), Duration::from_millis(100));
    }

    #[test]
    fn rejects_garbage_with_the_input_named() {
        for bad in ["", "ms", "10x", "abc", "1e999", "-5s", "1..2s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["500ms", "10s", "1m", "90s", "250us"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
