//! The one YAML field walker. Every config netvantage reads (the `http` endpoint list, the
//! agent's config) is walked with it, so every error has the same shape:
//! `FILE:LINE:COL: WHAT, field `NAME`: what is wrong`.
//!
//! The tree is walked by hand rather than through serde because every node carries its
//! position, so an error can point at the exact line of the offending field.

use netvantage_core::duration::parse_duration;
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use std::time::Duration;

/// A config the user must fix: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    pub fn at(file: &str, node: Option<&MarkedYaml>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            location: node.map(position),
            message: message.into(),
        }
    }
}

/// A problem found while walking: the node to point at and the message.
pub type Failure<'a, 'y> = (&'a MarkedYaml<'y>, String);

/// Loads `text` as YAML documents with positions; a syntax error names its line and column.
pub fn load_documents<'y>(text: &'y str, file: &str) -> Result<Vec<MarkedYaml<'y>>, ConfigError> {
    MarkedYaml::load_from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        location: Some((e.marker().line(), e.marker().col() + 1)),
        message: format!("invalid YAML: {}", e.info()),
    })
}

/// A node's 1-based line and column.
pub fn position(node: &MarkedYaml) -> (usize, usize) {
    (node.span.start.line(), node.span.start.col() + 1)
}

/// A scalar node's text, whatever its YAML type (`8080`, `true`, `"x"`: `x-retry: 3` means the
/// text "3"); `None` for sequences and mappings.
pub fn scalar_text(node: &MarkedYaml) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        YamlData::Tagged(_, inner) => scalar_text(inner),
        _ => None,
    }
}

/// A mapping's fields, checked against the names it may have. `what` names the mapping in
/// messages ("entry 2", "tcp group 1", "`sinks.kafka`").
pub struct Fields<'a, 'y> {
    pub node: &'a MarkedYaml<'y>,
    pub what: String,
    fields: Vec<(String, &'a MarkedYaml<'y>)>,
}

impl<'a, 'y> Fields<'a, 'y> {
    pub fn new(
        node: &'a MarkedYaml<'y>,
        what: impl Into<String>,
        known: &[&str],
    ) -> Result<Self, Failure<'a, 'y>> {
        let what = what.into();
        let YamlData::Mapping(map) = &node.data else {
            return Err((node, format!("{what} must be a mapping")));
        };
        let mut fields = Vec::new();
        for (key, value) in map {
            let Some(name) = scalar_text(key) else {
                return Err((key, format!("{what}: keys must be plain names")));
            };
            if !known.contains(&name.as_str()) {
                return Err((
                    key,
                    format!(
                        "{what}, field `{name}`: unknown field (known: {})",
                        known.join(", ")
                    ),
                ));
            }
            fields.push((name, value));
        }
        Ok(Fields { node, what, fields })
    }

    /// A problem with field `field` at `node`.
    pub fn fail(
        &self,
        node: &'a MarkedYaml<'y>,
        field: &str,
        message: impl std::fmt::Display,
    ) -> Failure<'a, 'y> {
        (node, format!("{}, field `{field}`: {message}", self.what))
    }

    /// A problem with the mapping as a whole.
    pub fn fail_here(&self, message: impl std::fmt::Display) -> Failure<'a, 'y> {
        (self.node, format!("{}: {message}", self.what))
    }

    pub fn get(&self, field: &str) -> Option<&'a MarkedYaml<'y>> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, v)| *v)
    }

    /// A scalar field as written (it may be empty).
    pub fn raw_text(
        &self,
        field: &str,
    ) -> Result<Option<(&'a MarkedYaml<'y>, String)>, Failure<'a, 'y>> {
        match self.get(field) {
            None => Ok(None),
            Some(node) => match scalar_text(node) {
                Some(text) => Ok(Some((node, text))),
                None => Err(self.fail(node, field, "must be a string")),
            },
        }
    }

    /// A scalar field, trimmed, that must not be empty.
    pub fn text(
        &self,
        field: &str,
    ) -> Result<Option<(&'a MarkedYaml<'y>, String)>, Failure<'a, 'y>> {
        match self.raw_text(field)? {
            None => Ok(None),
            Some((node, text)) if text.trim().is_empty() => {
                Err(self.fail(node, field, "must be a non-empty string"))
            }
            Some((node, text)) => Ok(Some((node, text.trim().to_string()))),
        }
    }

    pub fn required(&self, field: &str) -> Result<(&'a MarkedYaml<'y>, String), Failure<'a, 'y>> {
        self.text(field)?
            .ok_or_else(|| self.fail_here(format!("missing field `{field}`")))
    }

    /// A positive duration (`500ms`, `10s`, `1m`), if given.
    pub fn duration(
        &self,
        field: &str,
    ) -> Result<Option<(&'a MarkedYaml<'y>, Duration)>, Failure<'a, 'y>> {
        match self.text(field)? {
            None => Ok(None),
            Some((node, text)) => match parse_duration(&text) {
                Ok(d) if !d.is_zero() => Ok(Some((node, d))),
                Ok(_) => Err(self.fail(node, field, format!("{text:?} must be greater than zero"))),
                Err(e) => Err(self.fail(node, field, e)),
            },
        }
    }

    pub fn duration_or(&self, field: &str, default: Duration) -> Result<Duration, Failure<'a, 'y>> {
        Ok(self.duration(field)?.map_or(default, |(_, d)| d))
    }

    pub fn number<T: std::str::FromStr>(
        &self,
        field: &str,
        default: T,
        valid: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<T, Failure<'a, 'y>> {
        match self.text(field)? {
            None => Ok(default),
            Some((node, text)) => match text.parse::<T>() {
                Ok(n) if valid(&n) => Ok(n),
                _ => Err(self.fail(node, field, format!("{text:?} is not {expected}"))),
            },
        }
    }

    pub fn flag(&self, field: &str) -> Result<bool, Failure<'a, 'y>> {
        match self.get(field) {
            None => Ok(false),
            Some(node) => match &node.data {
                YamlData::Value(Scalar::Boolean(b)) => Ok(*b),
                // `stdout: {}` reads as "on" too.
                YamlData::Mapping(m) if m.is_empty() => Ok(true),
                _ => Err(self.fail(node, field, "must be true or false")),
            },
        }
    }

    /// A list field's items (a single scalar counts as a list of one when `single_ok`).
    pub fn list(
        &self,
        field: &str,
        single_ok: bool,
    ) -> Result<Option<Vec<&'a MarkedYaml<'y>>>, Failure<'a, 'y>> {
        match self.get(field) {
            None => Ok(None),
            Some(node) => match &node.data {
                YamlData::Sequence(items) => Ok(Some(items.iter().collect())),
                YamlData::Value(_) if single_ok => Ok(Some(vec![node])),
                _ => Err(self.fail(node, field, "must be a list")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Vec<MarkedYaml<'_>> {
        load_documents(text, "t.yaml").unwrap()
    }

    #[test]
    fn unknown_fields_and_bad_values_point_at_their_line() {
        let docs = doc("a: 1\nb: soon\n");
        let err = Fields::new(&docs[0], "the thing", &["a"])
            .err()
            .map(|(node, m)| ConfigError::at("t.yaml", Some(node), m).to_string())
            .unwrap();
        assert_eq!(
            err,
            "t.yaml:2:1: the thing, field `b`: unknown field (known: a)"
        );
        let fields = Fields::new(&docs[0], "the thing", &["a", "b"]).unwrap();
        let (node, message) = fields.duration("b").err().unwrap();
        assert_eq!(position(node), (2, 4));
        assert!(
            message.starts_with("the thing, field `b`: invalid duration"),
            "{message}"
        );
        assert_eq!(fields.number("a", 0u32, |_| true, "a number").unwrap(), 1);
        let (_, missing) = fields.required("c").err().unwrap();
        assert_eq!(missing, "the thing: missing field `c`");
    }

    #[test]
    fn a_syntax_error_names_line_and_column() {
        let err = load_documents("a: [1,\n", "t.yaml").unwrap_err();
        assert_eq!(err.file, "t.yaml");
        assert!(err.location.is_some());
        assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
    }
}
