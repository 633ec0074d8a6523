//! Field paths (`sources[1].reopen.max_ms`) and finding them in YAML text.
//!
//! serde_yaml_ng knows where a syntax or type error is while it reads text; for
//! the others (semantic checks, pieces read from the parsed tree) the position is
//! found by reading the indentation of block-style YAML. Flow style (`{a: 1}`) is
//! followed as far as it goes: the deepest step found gives the position.

use std::fmt;

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a field is, from the top of its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// This path followed by `relative`.
    pub fn join(&self, relative: &FieldPath) -> Self {
        let mut path = self.clone();
        path.0.extend(relative.0.iter().cloned());
        path
    }

    /// This path followed by a relative one written as text (`reopen.max_ms`, `[2].id`).
    pub fn join_str(&self, relative: &str) -> Self {
        let mut path = self.clone();
        path.0.extend(parse(relative).0);
        path
    }
}

/// Reads `a.b[2].c`; a `?` step (serde's "unknown") ends the path.
pub fn parse(text: &str) -> FieldPath {
    let mut segments = Vec::new();
    for part in text.split('.').filter(|p| !p.is_empty()) {
        let (key, mut indexes) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if key == "?" {
            break;
        }
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_string()));
        }
        while let Some(rest) = indexes.strip_prefix('[') {
            let Some((number, tail)) = rest.split_once(']') else {
                break;
            };
            match number.parse() {
                Ok(n) => segments.push(Segment::Index(n)),
                Err(_) => break,
            }
            indexes = tail;
        }
    }
    FieldPath(segments)
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A YAML line that holds something. A `- key: value` line is split in two: the
/// item marker, and `key: value` at the column where it starts.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

impl Line<'_> {
    fn is_item(&self) -> bool {
        self.text == "-" || self.text.starts_with("- ")
    }

    /// The key of a `key: value` line, without quotes.
    fn key(&self) -> Option<&str> {
        let (key, _) = self.text.split_once(':')?;
        let key = key.trim_end();
        let unquoted = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(open, close)| key.strip_prefix(*open)?.strip_suffix(*close));
        Some(unquoted.unwrap_or(key))
    }

    /// Whether the line is `key:` (bare or quoted) followed by a value, a comment or nothing.
    fn has_key(&self, key: &str) -> bool {
        let rest = [("", ""), ("\"", "\""), ("'", "'")]
            .iter()
            .find_map(|(open, close)| {
                self.text
                    .strip_prefix(open)?
                    .strip_prefix(key)?
                    .strip_prefix(close)?
                    .strip_prefix(':')
            });
        rest.is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    }
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let body = raw.trim_start_matches(' ');
        let mut indent = raw.len() - body.len();
        let mut body = body.trim_end();
        let blank = body.is_empty() || body.starts_with('#');
        let marker = indent == 0 && (body.starts_with("---") || body.starts_with("..."));
        if blank || marker {
            continue;
        }
        loop {
            let line = Line {
                number: i + 1,
                indent,
                text: body,
            };
            out.push(line);
            if !line.is_item() {
                break;
            }
            let value = body[1..].trim_start_matches(' ');
            if value.is_empty() || value.starts_with('#') {
                break;
            }
            indent += body.len() - value.len();
            body = value;
        }
    }
    out
}

/// The 1-based line and column of the field at `path` in `text`, or of the
/// deepest step of it that could be found.
pub fn locate(text: &str, path: &FieldPath) -> Option<(usize, usize)> {
    let all = lines(text);
    if path.0.is_empty() {
        return all.first().map(|l| (l.number, 1));
    }
    walk(&all, path).0
}

/// The first key written twice in the block mapping at `path`, if any.
pub fn repeated_key(text: &str, path: &FieldPath) -> Option<String> {
    let all = lines(text);
    let scope = walk(&all, path).1?;
    let indent = scope.iter().map(|l| l.indent).min()?;
    let mut seen: Vec<&str> = Vec::new();
    for line in scope.iter().filter(|l| l.indent == indent && !l.is_item()) {
        let Some(key) = line.key() else {
            continue;
        };
        if seen.contains(&key) {
            return Some(key.to_string());
        }
        seen.push(key);
    }
    None
}

/// Follows `path` down the lines: the position of the deepest step found, and
/// the lines that belong to the whole path when every step was found.
fn walk<'t, 'l>(
    all: &'l [Line<'t>],
    path: &FieldPath,
) -> (Option<(usize, usize)>, Option<&'l [Line<'t>]>) {
    let mut scope: &[Line<'_>] = all;
    let mut found = None;
    for segment in &path.0 {
        let Some(indent) = scope.iter().map(|l| l.indent).min() else {
            return (found, None);
        };
        let hit = match segment {
            Segment::Key(key) => scope
                .iter()
                .position(|l| l.indent == indent && l.has_key(key)),
            Segment::Index(n) => scope
                .iter()
                .enumerate()
                .filter(|(_, l)| l.indent == indent && l.is_item())
                .nth(*n)
                .map(|(i, _)| i),
        };
        let Some(i) = hit else {
            return (found, None);
        };
        let line = scope[i];
        // An item's own position is where its content starts, when on the same line.
        let start = match (segment, scope.get(i + 1)) {
            (Segment::Index(_), Some(next)) if next.number == line.number => next,
            _ => &line,
        };
        found = Some((line.number, start.indent + 1));
        // What belongs to this step: deeper lines, and for a key also the `- `
        // items at its own indentation.
        let rest = &scope[i + 1..];
        let belongs = |l: &Line<'_>| {
            l.indent > indent
                || (l.indent == indent && l.is_item() && matches!(segment, Segment::Key(_)))
        };
        let end = rest.iter().position(|l| !belongs(l)).unwrap_or(rest.len());
        scope = &rest[..end];
    }
    (found, Some(scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
gateway:
  id: pi
sources:
  - id: gps
    type: replay
    reopen:
      max_ms: 5
  -   id: other
      list:
      - a
      - - b
        - c
mappings: x
";

    fn at(path: &str) -> Option<(usize, usize)> {
        locate(TEXT, &parse(path))
    }

    #[test]
    fn keys_and_items_are_found_by_indentation() {
        assert_eq!(at("gateway"), Some((2, 1)));
        assert_eq!(at("gateway.id"), Some((3, 3)));
        assert_eq!(at("sources[0]"), Some((5, 5)));
        assert_eq!(at("sources[0].id"), Some((5, 5)));
        assert_eq!(at("sources[0].type"), Some((6, 5)));
        assert_eq!(at("sources[0].reopen.max_ms"), Some((8, 7)));
        assert_eq!(at("sources[1].id"), Some((9, 7)));
        assert_eq!(at("sources[1].list[1][1]"), Some((13, 11)));
        assert_eq!(at("mappings"), Some((14, 1)));
    }

    #[test]
    fn a_missing_step_gives_the_deepest_step_found() {
        assert_eq!(at("sources[0].nothing"), Some((5, 5)));
        assert_eq!(at("sources[7]"), Some((4, 1)));
        assert_eq!(at("nothing"), None);
    }

    #[test]
    fn paths_round_trip_through_text() {
        for text in ["a", "a.b", "sources[1].framing.sync[0]", "a[1][2]"] {
            assert_eq!(parse(text).to_string(), text);
        }
        assert_eq!(parse("a.?.b").to_string(), "a");
        assert_eq!(parse(".").to_string(), "");
    }
}
