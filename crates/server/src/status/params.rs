//! Query parameters: pagination, time ranges and filters, each refused with an error that
//! names the parameter (the API answers it as `400 application/problem+json`).

use super::model::{CheckKind, PageRequest, Tier, TimeRange, UnixMs, Verdict, Window};
use super::urlenc::query_pairs;
use time::format_description::well_known::Rfc3339;

/// A bad query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {detail}")]
pub struct ParamError {
    pub parameter: String,
    pub detail: String,
}

impl ParamError {
    pub fn new(parameter: &str, detail: impl Into<String>) -> ParamError {
        ParamError {
            parameter: parameter.to_string(),
            detail: detail.into(),
        }
    }
}

pub const MAX_PAGE: u32 = 1_000_000;
pub const MAX_PER_PAGE: u32 = 500;
/// The longest range a history or incident list may ask for.
pub const MAX_RANGE_DAYS: i64 = 3_660;

/// A request's query parameters, checked against the names the route knows.
#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Pages' forms send empty fields for "any"; the API treats an empty value as a bad one.
    empty_is_absent: bool,
}

impl Params {
    /// Splits `query`; a name outside `known` is an error (a typo must not pass silently).
    pub fn parse(
        query: Option<&str>,
        known: &[&str],
        empty_is_absent: bool,
    ) -> Result<Params, ParamError> {
        let pairs = query_pairs(query)
            .map_err(|pair| ParamError::new(&pair, "malformed percent-encoding"))?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            let detail = if known.is_empty() {
                "unknown parameter; this path takes none".to_string()
            } else {
                format!("unknown parameter; expected one of {}", known.join(", "))
            };
            return Err(ParamError::new(name, detail));
        }
        Ok(Params {
            pairs,
            empty_is_absent,
        })
    }

    /// The value of `name`, `None` when absent; given twice is an error.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ParamError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ParamError::new(name, "given more than once"));
        }
        Ok(first.filter(|v| !(self.empty_is_absent && v.is_empty())))
    }

    /// A free-text value (a group, a domain, a search).
    pub fn text(&self, name: &str) -> Result<Option<String>, ParamError> {
        match self.get(name)? {
            Some("") => Err(ParamError::new(name, "empty; leave it out for any")),
            Some(value) if value.chars().count() > 512 => {
                Err(ParamError::new(name, "longer than 512 characters"))
            }
            other => Ok(other.map(str::to_string)),
        }
    }

    pub fn number(&self, name: &str, min: u32, max: u32) -> Result<Option<u32>, ParamError> {
        let Some(value) = self.get(name)? else {
            return Ok(None);
        };
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ParamError::new(
                name,
                format!(
                    "expected a whole number from {min} to {max}, got {:?}",
                    shorten(value)
                ),
            )),
        }
    }

    /// `page` (from 1) and `per_page` (1 to [`MAX_PER_PAGE`], default `default_per_page`).
    pub fn page(&self, default_per_page: u32) -> Result<PageRequest, ParamError> {
        Ok(PageRequest {
            page: self.number("page", 1, MAX_PAGE)?.unwrap_or(1),
            per_page: self
                .number("per_page", 1, MAX_PER_PAGE)?
                .unwrap_or(default_per_page),
        })
    }

    /// `verdict=down,flappy`: any of these.
    pub fn verdicts(&self) -> Result<Vec<Verdict>, ParamError> {
        let Some(value) = self.get("verdict")? else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(|word| {
                Verdict::parse(word).ok_or_else(|| {
                    ParamError::new(
                        "verdict",
                        format!(
                            "{:?} is not a verdict; expected a comma-separated list of {}",
                            shorten(word),
                            Verdict::ALL.map(Verdict::as_str).join(", ")
                        ),
                    )
                })
            })
            .collect()
    }

    pub fn kind(&self) -> Result<Option<CheckKind>, ParamError> {
        self.enumerated(
            "kind",
            |text| match text {
                "tcp" => Some(CheckKind::Tcp),
                "http" => Some(CheckKind::Http),
                _ => None,
            },
            "tcp, http",
        )
    }

    pub fn tier(&self) -> Result<Option<Tier>, ParamError> {
        match self.get("tier")? {
            Some("auto") | None => Ok(None),
            Some(_) => self.enumerated("tier", Tier::parse, "auto, minute, hour, day"),
        }
    }

    fn enumerated<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, ParamError> {
        let Some(value) = self.get(name)? else {
            return Ok(None);
        };
        parse(value).map(Some).ok_or_else(|| {
            ParamError::new(
                name,
                format!("expected one of {expected}, got {:?}", shorten(value)),
            )
        })
    }

    /// `range=7d` (ending at `now`), or `from`/`to` (RFC 3339; `to` defaults to `now`), or
    /// the last `default_ms`. The range must be non-empty, not before 1970 and at most
    /// [`MAX_RANGE_DAYS`] long.
    pub fn range(&self, now: UnixMs, default_ms: i64) -> Result<TimeRange, ParamError> {
        let span = self.get("range")?;
        let from = self.get("from")?;
        let to = self.get("to")?;
        if span.is_some() && (from.is_some() || to.is_some()) {
            return Err(ParamError::new(
                "range",
                "give either range or from/to, not both",
            ));
        }
        let range = if let Some(span) = span {
            let span = parse_span(span).ok_or_else(|| {
                ParamError::new(
                    "range",
                    format!(
                        "expected a span such as 90m, 24h, 7d or 365d (at most {MAX_RANGE_DAYS}d), got {:?}",
                        shorten(span)
                    ),
                )
            })?;
            TimeRange {
                from: UnixMs(now.0 - span),
                to: now,
            }
        } else {
            let to = match to {
                Some(text) => parse_instant("to", text)?,
                None => now,
            };
            let from = match from {
                Some(text) => parse_instant("from", text)?,
                None => UnixMs(to.0 - default_ms),
            };
            TimeRange { from, to }
        };
        if range.from >= range.to {
            return Err(ParamError::new("from", "must be before to"));
        }
        if range.from.0 < 0 {
            return Err(ParamError::new("from", "must not be before 1970"));
        }
        if range.span_ms() > MAX_RANGE_DAYS * UnixMs::DAY {
            return Err(ParamError::new(
                "from",
                format!("the range may span at most {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(range)
    }
}

/// `90m`, `24h`, `7d` → milliseconds (1 minute to [`MAX_RANGE_DAYS`] days).
pub fn parse_span(text: &str) -> Option<i64> {
    if let Some(window) = Window::parse(text) {
        return Some(window.millis());
    }
    let unit = match text.chars().last()? {
        'm' => UnixMs::MINUTE,
        'h' => UnixMs::HOUR,
        'd' => UnixMs::DAY,
        'w' => 7 * UnixMs::DAY,
        _ => return None,
    };
    let count: i64 = text[..text.len() - 1].parse().ok()?;
    let span = count.checked_mul(unit)?;
    (UnixMs::MINUTE..=MAX_RANGE_DAYS * UnixMs::DAY)
        .contains(&span)
        .then_some(span)
}

fn parse_instant(name: &str, text: &str) -> Result<UnixMs, ParamError> {
    // A `+02:00` offset arrives as ` 02:00` when the client didn't encode the `+`.
    let candidates = [text.to_string(), text.replace(' ', "+")];
    candidates
        .iter()
        .find_map(|c| time::OffsetDateTime::parse(c, &Rfc3339).ok())
        .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
        .map(UnixMs)
        .ok_or_else(|| {
            ParamError::new(
                name,
                format!(
                    "expected an RFC 3339 time such as 2025-03-01T12:00:00Z, got {:?}",
                    shorten(text)
                ),
            )
        })
}

/// A value as an error quotes it: at most 64 characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = UnixMs(1_740_830_400_000);

    fn params(query: &str) -> Params {
        Params::parse(
            Some(query),
            &[
                "page", "per_page", "range", "from", "to", "verdict", "kind", "tier", "group",
            ],
            false,
        )
        .expect("known names")
    }

    #[test]
    fn pagination_defaults_and_bounds() {
        assert_eq!(
            params("").page(50).unwrap(),
            PageRequest {
                page: 1,
                per_page: 50
            }
        );
        assert_eq!(
            params("page=3&per_page=10").page(50).unwrap(),
            PageRequest {
                page: 3,
                per_page: 10
            }
        );
        for (query, parameter) in [
            ("page=0", "page"),
            ("page=-1", "page"),
            ("page=abc", "page"),
            ("per_page=501", "per_page"),
            ("per_page=", "per_page"),
            ("page=1&page=2", "page"),
        ] {
            let err = params(query).page(50).expect_err(query);
            assert_eq!(err.parameter, parameter, "{query}: {err}");
        }
    }

    #[test]
    fn unknown_parameters_are_named() {
        let err = Params::parse(Some("pgae=2"), &["page"], false).unwrap_err();
        assert_eq!(err.parameter, "pgae");
        assert!(err.detail.contains("expected one of page"), "{err}");
    }

    #[test]
    fn ranges_are_a_span_or_from_and_to() {
        let day = params("range=24h").range(NOW, UnixMs::HOUR).unwrap();
        assert_eq!(day.span_ms(), UnixMs::DAY);
        assert_eq!(day.to, NOW);
        let default = params("").range(NOW, UnixMs::HOUR).unwrap();
        assert_eq!(default.span_ms(), UnixMs::HOUR);
        let explicit = params("from=2025-03-01T00:00:00Z&to=2025-03-01T06:00:00%2B00:00")
            .range(NOW, UnixMs::HOUR)
            .unwrap();
        assert_eq!(explicit.span_ms(), 6 * UnixMs::HOUR);
        let unencoded_plus = params("from=2025-03-01T00:00:00+02:00&to=2025-03-01T06:00:00Z")
            .range(NOW, UnixMs::HOUR)
            .unwrap();
        assert_eq!(unencoded_plus.span_ms(), 8 * UnixMs::HOUR);
    }

    #[test]
    fn bad_ranges_name_the_parameter() {
        for (query, parameter) in [
            ("range=yesterday", "range"),
            ("range=0m", "range"),
            ("range=99999d", "range"),
            ("range=1h&from=2025-03-01T00:00:00Z", "range"),
            ("from=soon", "from"),
            ("to=2025-13-01T00:00:00Z", "to"),
            ("from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z", "from"),
            ("from=1900-01-01T00:00:00Z", "from"),
        ] {
            let err = params(query).range(NOW, UnixMs::HOUR).expect_err(query);
            assert_eq!(err.parameter, parameter, "{query}: {err}");
        }
    }

    #[test]
    fn filters_parse_or_say_what_they_expected() {
        assert_eq!(
            params("verdict=down,flappy").verdicts().unwrap(),
            [Verdict::Down, Verdict::Flappy]
        );
        let err = params("verdict=down,sad").verdicts().unwrap_err();
        assert!(err.detail.contains("\"sad\" is not a verdict"), "{err}");
        assert_eq!(params("kind=http").kind().unwrap(), Some(CheckKind::Http));
        assert_eq!(params("kind=udp").kind().unwrap_err().parameter, "kind");
        assert_eq!(params("tier=auto").tier().unwrap(), None);
        assert_eq!(params("tier=hour").tier().unwrap(), Some(Tier::Hour));
        assert_eq!(params("tier=week").tier().unwrap_err().parameter, "tier");
    }

    #[test]
    fn forms_send_empty_fields_for_any() {
        let form = Params::parse(
            Some("group=&verdict=&page="),
            &["group", "verdict", "page"],
            true,
        )
        .unwrap();
        assert_eq!(form.text("group").unwrap(), None);
        assert!(form.verdicts().unwrap().is_empty());
        assert_eq!(form.page(50).unwrap().page, 1);
        let api = params("group=");
        assert_eq!(api.text("group").unwrap_err().parameter, "group");
    }
}
