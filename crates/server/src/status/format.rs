//! How figures and text are written into pages: HTML escaping, percentages, milliseconds.

use std::fmt;

/// Text escaped for HTML element content and quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// An availability ratio as a percentage, rounded **down** to two decimals so a figure never
/// reads better than it is (99.9999 % shows 99.99 %, never 100 %); exactly 1 shows `100%`.
/// `None` (no checks in the window) shows `—`.
pub fn percent(ratio: Option<f64>) -> String {
    Percent(ratio).to_string()
}

/// [`percent`] written straight into a page, without a `String` of its own.
pub struct Percent(pub Option<f64>);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ratio) = self.0.filter(|r| r.is_finite()) else {
            return f.write_str("—");
        };
        if ratio >= 1.0 {
            return f.write_str("100%");
        }
        // The small epsilon keeps 0.9995 (binary 0.99949999…) at 99.95, not 99.94.
        let hundredths = (ratio.max(0.0) * 10_000.0 + 1e-7).floor() as u64;
        write!(f, "{}.{:02}%", hundredths / 100, hundredths % 100)
    }
}

/// A number with `.1` decimals (0 to 3), written through integer formatting: the pages write
/// thousands of SVG coordinates, and `{:.2}` on an `f64` takes the slow exact path of the
/// standard formatter for most of them. A tie rounds away from zero (the standard's rounds to
/// even); beyond ±2^53 / 10^decimals, or not finite, the standard formatter writes it.
pub struct Fixed(pub f64, pub u8);

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Fixed(value, decimals) = *self;
        let decimals = decimals.min(3);
        let scale = 10_i64.pow(u32::from(decimals));
        let scaled = (value * scale as f64).round();
        if !scaled.is_finite() || scaled.abs() >= 9.0e15 {
            return write!(f, "{value:.*}", usize::from(decimals));
        }
        let scaled = scaled as i64;
        let sign = if scaled < 0 { "-" } else { "" };
        let (whole, part) = (
            scaled.unsigned_abs() / scale as u64,
            scaled.unsigned_abs() % scale as u64,
        );
        match decimals {
            0 => write!(f, "{sign}{whole}"),
            _ => write!(
                f,
                "{sign}{whole}.{part:0width$}",
                width = usize::from(decimals)
            ),
        }
    }
}

/// Milliseconds as people read them: `0.8 ms`, `12 ms`, `1.24 s`.
pub fn millis(ms: Option<f64>) -> String {
    Millis(ms).to_string()
}

/// [`millis`] written straight into a page, without a `String` of its own.
pub struct Millis(pub Option<f64>);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.filter(|m| m.is_finite()) {
            None => f.write_str("—"),
            Some(ms) if ms < 10.0 => write!(f, "{} ms", Fixed(ms, 1)),
            Some(ms) if ms < 1000.0 => write!(f, "{} ms", Fixed(ms, 0)),
            Some(ms) => write!(f, "{} s", Fixed(ms / 1000.0, 2)),
        }
    }
}

/// The colour class of an availability figure (the 90-day bar, badges, table cells).
pub fn availability_class(ratio: Option<f64>) -> &'static str {
    match ratio {
        None => "a-none",
        Some(r) if r >= 0.999 => "a-good",
        Some(r) if r >= 0.99 => "a-fair",
        Some(r) if r >= 0.95 => "a-poor",
        Some(_) => "a-bad",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            Esc(r#"<script>alert("x")</script> & 'y'"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(Esc("plain").to_string(), "plain");
    }

    #[test]
    fn percentages_round_down_and_never_claim_a_perfect_record() {
        assert_eq!(percent(Some(1.0)), "100%");
        assert_eq!(percent(Some(0.999_999)), "99.99%");
        assert_eq!(percent(Some(0.9995)), "99.95%");
        assert_eq!(percent(Some(43_164.0 / 43_200.0)), "99.91%");
        assert_eq!(percent(Some(0.5)), "50.00%");
        assert_eq!(percent(Some(0.0)), "0.00%");
        assert_eq!(percent(None), "—");
        assert_eq!(percent(Some(f64::NAN)), "—");
    }

    #[test]
    fn milliseconds_read_naturally() {
        assert_eq!(millis(Some(0.84)), "0.8 ms");
        assert_eq!(millis(Some(12.4)), "12 ms");
        assert_eq!(millis(Some(1240.0)), "1.24 s");
        assert_eq!(millis(None), "—");
    }

    #[test]
    fn fixed_decimals_write_what_the_standard_formatter_writes_but_ties() {
        // Not ties: every value of a grid the charts use, and awkward ones.
        for i in 0..2_000 {
            let v = i as f64 * 0.37 + 1e-6;
            for d in 0..=3u8 {
                assert_eq!(
                    Fixed(v, d).to_string(),
                    format!("{v:.*}", usize::from(d)),
                    "{v} to {d} decimals"
                );
            }
        }
        assert_eq!(
            Fixed(0.25, 1).to_string(),
            "0.3",
            "a tie rounds away from zero"
        );
        assert_eq!(Fixed(-0.04, 1).to_string(), "0.0", "no negative zero");
        assert_eq!(Fixed(146.0, 1).to_string(), "146.0");
        assert_eq!(Fixed(f64::NAN, 2).to_string(), "NaN");
        assert_eq!(Fixed(1e300, 1).to_string(), format!("{:.1}", 1e300));
    }

    #[test]
    fn availability_colours_have_four_steps_and_a_gap() {
        assert_eq!(availability_class(Some(1.0)), "a-good");
        assert_eq!(availability_class(Some(0.995)), "a-fair");
        assert_eq!(availability_class(Some(0.96)), "a-poor");
        assert_eq!(availability_class(Some(0.2)), "a-bad");
        assert_eq!(availability_class(None), "a-none");
    }
}
