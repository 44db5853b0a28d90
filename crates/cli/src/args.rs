//! Value parsers shared by every subcommand, so `10s` means the same everywhere.

use std::time::Duration;

/// clap value parser for durations: `500ms`, `10s`, `1m`; a bare number is seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    netvantage_core::parse_duration(text).map_err(|e| e.to_string())
}

/// Like [`duration`], but zero is refused.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err(format!("{text:?} must be greater than zero")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_share_one_syntax() {
        assert_eq!(super::duration("1m").unwrap().as_secs(), 60);
        assert!(super::positive_duration("0s").is_err());
        assert!(super::duration("soon").unwrap_err().contains("soon"));
    }
}
