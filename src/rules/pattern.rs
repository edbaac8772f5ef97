//! Resource patterns on object keys (docs/rules.md): at most one `*`.

use std::fmt;

/// OSS's object-key limit. Other stores allow longer keys (S3 and MinIO
/// 1024 bytes, Ceph a configured limit), so resources of any length are
/// accepted (docs/rules.md); `validate` only warns past this length.
pub const OSS_MAX_KEY_BYTES: usize = 1023;

/// A compiled resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `photos/cat.jpg`
    Exact(Box<str>),
    /// `photos/*`
    Prefix(Box<str>),
    /// `*.jpg`
    Suffix(Box<str>),
    /// `photos/*.jpg`: both, not overlapping inside the key.
    PrefixSuffix(Box<str>, Box<str>),
    /// `*`, or a rule without resources.
    Any,
}

impl Pattern {
    /// Parses a resource; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if s.is_empty() {
            return Err("empty resource; use \"*\" for every object".into());
        }
        let mut parts = s.splitn(3, '*');
        let head = parts.next().unwrap_or("");
        let Some(tail) = parts.next() else {
            return Ok(Pattern::Exact(s.into()));
        };
        if parts.next().is_some() {
            return Err(format!(
                "more than one '*' in {s:?}; a resource has at most one"
            ));
        }
        Ok(match (head.is_empty(), tail.is_empty()) {
            (true, true) => Pattern::Any,
            (false, true) => Pattern::Prefix(head.into()),
            (true, false) => Pattern::Suffix(tail.into()),
            (false, false) => Pattern::PrefixSuffix(head.into(), tail.into()),
        })
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Pattern::Exact(e) => key == &**e,
            Pattern::Prefix(p) => key.starts_with(&**p),
            Pattern::Suffix(s) => key.ends_with(&**s),
            Pattern::PrefixSuffix(p, s) => {
                key.len() >= p.len() + s.len() && key.starts_with(&**p) && key.ends_with(&**s)
            }
            Pattern::Any => true,
        }
    }

    /// The fixed text before the `*` (the whole text for an exact name).
    pub fn prefix(&self) -> &str {
        match self {
            Pattern::Exact(p) | Pattern::Prefix(p) | Pattern::PrefixSuffix(p, _) => p,
            Pattern::Suffix(_) | Pattern::Any => "",
        }
    }

    /// The fixed text after the `*`.
    pub fn suffix(&self) -> &str {
        match self {
            Pattern::Suffix(s) | Pattern::PrefixSuffix(_, s) => s,
            Pattern::Exact(_) | Pattern::Prefix(_) | Pattern::Any => "",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(e) => f.write_str(e),
            Pattern::Prefix(p) => write!(f, "{p}*"),
            Pattern::Suffix(s) => write!(f, "*{s}"),
            Pattern::PrefixSuffix(p, s) => write!(f, "{p}*{s}"),
            Pattern::Any => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_form() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert_eq!(p("photos/cat.jpg"), Pattern::Exact("photos/cat.jpg".into()));
        assert_eq!(p("photos/*"), Pattern::Prefix("photos/".into()));
        assert_eq!(p("*.jpg"), Pattern::Suffix(".jpg".into()));
        assert_eq!(
            p("photos/*.jpg"),
            Pattern::PrefixSuffix("photos/".into(), ".jpg".into())
        );
        assert_eq!(p("*"), Pattern::Any);
        for s in ["photos/cat.jpg", "photos/*", "*.jpg", "photos/*.jpg", "*"] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn matching() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert!(p("photos/cat.jpg").matches("photos/cat.jpg"));
        assert!(!p("photos/cat.jpg").matches("photos/cat.jpg2"));
        assert!(p("photos/*").matches("photos/"));
        assert!(p("photos/*").matches("photos/a/b"));
        assert!(!p("photos/*").matches("photo"));
        assert!(p("*.jpg").matches(".jpg"));
        assert!(!p("*.jpg").matches("a.JPG"));
        assert!(p("photos/*.jpg").matches("photos/x.jpg"));
        assert!(p("photos/*.jpg").matches("photos/.jpg"));
        // prefix and suffix may not share characters
        assert!(!p("ab*ba").matches("aba"));
        assert!(p("ab*ba").matches("abba"));
        assert!(p("*").matches(""));
    }

    #[test]
    fn rejects_two_stars_and_empty() {
        let e = Pattern::parse("a*b*").unwrap_err();
        assert_eq!(
            e,
            "more than one '*' in \"a*b*\"; a resource has at most one"
        );
        assert!(Pattern::parse("**").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn resources_of_any_length_parse() {
        let long = "k".repeat(70_000);
        assert_eq!(
            Pattern::parse(&format!("{long}*.jpg")).unwrap(),
            Pattern::PrefixSuffix(long.clone().into(), ".jpg".into())
        );
        assert!(Pattern::parse(&long).unwrap().matches(&long));
    }
}
