//! `${NAME}` interpolation in config strings, applied to parsed string values
//! (never to the raw text, so a variable cannot inject TOML).

/// Replaces every `${NAME}` with the variable's value; `$${` writes `${`.
/// The error names the first variable that is not set. No error quotes
/// the value itself: a config value may be a secret (a malformed one
/// included), so errors give a byte position instead.
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let at = s.len() - tail.len();
            let end = t.find('}').ok_or_else(|| {
                EnvError::Malformed(format!("\"${{\" at byte {at} is not closed with \"}}\""))
            })?;
            let name = &t[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvError::Malformed(format!(
                    "\"${{…}}\" at byte {at} does not hold an environment variable name (letters, digits and _)"
                )));
            }
            let value = lookup(name).ok_or_else(|| EnvError::Unset(name.to_owned()))?;
            out.push_str(&value);
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The variable (named) is not set.
    #[error("environment variable {0} is not set")]
    Unset(String),
    /// A `${` without its `}`, or not holding a name.
    #[error("{0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("1".into()),
            "KEY_ID" => Some("LTAI".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_and_escapes() {
        assert_eq!(interpolate("x${A}y${KEY_ID}", &env).unwrap(), "x1yLTAI");
        assert_eq!(interpolate("cost $5 $${A}", &env).unwrap(), "cost $5 ${A}");
        assert_eq!(interpolate("plain", &env).unwrap(), "plain");
        assert_eq!(
            interpolate("${NOPE}", &env).unwrap_err().to_string(),
            "environment variable NOPE is not set"
        );
        assert_eq!(
            interpolate("k${A", &env).unwrap_err().to_string(),
            "\"${\" at byte 1 is not closed with \"}\""
        );
        assert!(interpolate("${a-b}", &env).is_err());
    }

    #[test]
    fn errors_never_quote_the_value() {
        for value in ["s3cr3t-${PART", "s3cr3t${s3cr3t-x}", "${s3cr3t s3cr3t}"] {
            let e = interpolate(value, &env).unwrap_err().to_string();
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }
}
