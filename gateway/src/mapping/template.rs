//! Topic templates such as `sensors/{source}/{name}`: parsed once, filled per message.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Placeholder(String),
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parse `s`; `{name}` is a placeholder, a `{` or `}` outside one is an error.
    pub(super) fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(Part::Text(rest.to_string()));
                    break;
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(format!(
                        "unmatched '}}' at byte {}",
                        s.len() - rest.len() + i
                    ));
                }
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Text(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = after.find('}').ok_or_else(|| {
                        format!("unclosed '{{' at byte {}", s.len() - rest.len() + i)
                    })?;
                    let name = &after[..end];
                    let ok = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !ok {
                        return Err(format!(
                            "placeholder {{{name}}} must be a non-empty name of letters, digits, '_' or '-'"
                        ));
                    }
                    parts.push(Part::Placeholder(name.to_string()));
                    rest = &after[end + 1..];
                }
            }
        }
        Ok(Template {
            source: s.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub(super) fn as_str(&self) -> &str {
        &self.source
    }

    /// The topic with each placeholder replaced by `value(name)`; the first name
    /// without a value is the error.
    pub(super) fn fill<'a, F>(&self, mut value: F) -> Result<String, String>
    where
        F: FnMut(&str) -> Option<Cow<'a, str>>,
    {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(name) => match value(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(name.clone()),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(t: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
        Template::parse(t)?.fill(|n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| Cow::Owned(v.to_string()))
        })
    }

    #[test]
    fn placeholders_are_replaced_in_order() {
        assert_eq!(
            fill(
                "sensors/{source}/{name}",
                &[("source", "gps"), ("name", "fix")]
            )
            .unwrap(),
            "sensors/gps/fix"
        );
        assert_eq!(fill("{a}{b}", &[("a", "x"), ("b", "y")]).unwrap(), "xy");
        assert_eq!(fill("plain/topic", &[]).unwrap(), "plain/topic");
    }

    #[test]
    fn a_placeholder_without_a_value_is_named_in_the_error() {
        assert_eq!(
            fill("s/{source}/{nope}", &[("source", "gps")]),
            Err("nope".into())
        );
    }

    #[test]
    fn broken_braces_are_parse_errors() {
        assert!(Template::parse("s/{source")
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("s/source}")
            .unwrap_err()
            .contains("unmatched"));
        assert!(Template::parse("s/{}").unwrap_err().contains("non-empty"));
        assert!(Template::parse("s/{a b}").is_err());
    }

    #[test]
    fn the_template_keeps_its_text() {
        assert_eq!(Template::parse("a/{x}/b").unwrap().as_str(), "a/{x}/b");
    }
}
