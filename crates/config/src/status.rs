//! Expected HTTP statuses (`expect_status`): single codes, ranges and classes, so `200`,
//! `"200-299"`, `"2xx"` and lists of them all mean what an SRE expects.

use std::fmt;

/// A set of acceptable status codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    ranges: Vec<(u16, u16)>,
}

impl Default for StatusSet {
    /// Any 2xx: the definition of a successful response.
    fn default() -> Self {
        StatusSet {
            ranges: vec![(200, 299)],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid status {input:?}: {problem} (use e.g. 200, \"200-299\" or \"2xx\")")]
pub struct StatusError {
    pub input: String,
    pub problem: &'static str,
}

fn code(text: &str, input: &str) -> Result<u16, StatusError> {
    let fail = |problem| StatusError {
        input: input.to_string(),
        problem,
    };
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail("not a three-digit status code"));
    }
    match text.parse::<u16>() {
        Ok(n @ 100..=599) => Ok(n),
        _ => Err(fail("status codes are 100-599")),
    }
}

impl StatusSet {
    pub fn new(ranges: Vec<(u16, u16)>) -> Self {
        StatusSet { ranges }
    }

    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// Parses one item: `200`, `200-299` or `2xx`.
    pub fn parse_item(input: &str) -> Result<(u16, u16), StatusError> {
        let text = input.trim();
        let fail = |problem| StatusError {
            input: input.to_string(),
            problem,
        };
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            return match class.as_bytes() {
                [d @ b'1'..=b'5'] => {
                    let base = u16::from(d - b'0') * 100;
                    Ok((base, base + 99))
                }
                _ => Err(fail("a class is 1xx to 5xx")),
            };
        }
        match text.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (code(lo.trim(), input)?, code(hi.trim(), input)?);
                if lo > hi {
                    return Err(fail("range is reversed"));
                }
                Ok((lo, hi))
            }
            None => {
                let c = code(text, input)?;
                Ok((c, c))
            }
        }
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_any_2xx() {
        let set = StatusSet::default();
        assert!(set.contains(200) && set.contains(201) && set.contains(299));
        assert!(!set.contains(199) && !set.contains(300) && !set.contains(500));
    }

    #[test]
    fn items_are_codes_ranges_or_classes() {
        assert_eq!(StatusSet::parse_item("200"), Ok((200, 200)));
        assert_eq!(StatusSet::parse_item(" 301 - 308 "), Ok((301, 308)));
        assert_eq!(StatusSet::parse_item("3xx"), Ok((300, 399)));
        assert_eq!(StatusSet::parse_item("5XX"), Ok((500, 599)));
    }

    #[test]
    fn bad_items_name_the_input() {
        for bad in [
            "", "20", "2000", "600", "099", "abc", "299-200", "6xx", "xx", "2-3xx", "200-",
        ] {
            let err = StatusSet::parse_item(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(
            StatusSet::new(vec![(200, 200), (300, 399)]).to_string(),
            "200,300-399"
        );
    }
}
