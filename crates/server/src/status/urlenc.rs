//! Percent-encoding for the page's links and the decoding of paths and query strings.

use std::fmt::Write;

/// Encodes `text` for one path segment or query value: everything but RFC 3986's unreserved
/// characters is `%XX`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Decodes `%XX` (and `+` as a space when `plus_is_space`, as forms send it). `None` when the
/// escapes are malformed or the bytes are not UTF-8.
pub fn decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The `name=value` pairs of a query string, decoded; `Err(raw pair)` for one that isn't.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (decode(name, true), decode(value, true)) {
                (Some(name), Some(value)) => Ok((name, value)),
                _ => Err(pair.to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_any_target_name() {
        for name in [
            "db.internal:5432",
            "https://shop.example/health?x=1&y=2",
            "a b/c%d",
            "ünïcødé",
        ] {
            let encoded = encode(name);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{encoded}"
            );
            assert_eq!(decode(&encoded, false).as_deref(), Some(name));
        }
    }

    #[test]
    fn malformed_escapes_are_refused() {
        assert_eq!(decode("%zz", false), None);
        assert_eq!(decode("%4", false), None);
        assert_eq!(decode("%ff", false), None, "not UTF-8");
        assert_eq!(decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(decode("a+b", false).as_deref(), Some("a+b"));
    }

    #[test]
    fn query_strings_split_into_decoded_pairs() {
        assert_eq!(
            query_pairs(Some("page=2&q=web+01&&flag")).unwrap(),
            [
                ("page".to_string(), "2".to_string()),
                ("q".to_string(), "web 01".to_string()),
                ("flag".to_string(), String::new())
            ]
        );
        assert_eq!(query_pairs(Some("a=%zz")), Err("a=%zz".to_string()));
        assert!(query_pairs(None).unwrap().is_empty());
    }
}
