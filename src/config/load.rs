//! Reading a config: the main file, its `include`s and `rules_dir`, `${ENV}`
//! in every value outside the rules, sinks through the sink registry.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::diagnostic::{Diagnostic, Location};
use super::env::interpolate;
use super::model::{Config, RawConfig, RawRule, RulesFile, SinkEntry};
use super::validate::{validate, RuleSource};
use ossnotify_sinks::SinkKind;

/// What a successful load gives: the config and its warnings.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Loads and validates the config at `path`, with the process environment.
/// On failure, every error found (with warnings after them).
pub fn load(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    load_file(path, Mode::Run)
}

/// Loads the config at `path` for a command that sends nothing (`match`,
/// `test`, `dead-letter ls`, `backlog ls`, …): a `${NAME}` in a
/// `[sinks.NAME]` table may be unset, and stays as written, so that such a
/// command needs none of the sinks' secrets (a CI job running `ossnotify
/// test`). Everything else is as [`load`]: a value the placeholder makes
/// invalid (an endpoint) is still an error.
pub fn load_read_only(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    load_file(path, Mode::ReadOnly)
}

/// Which unset variables loading accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// None: every `${NAME}` must be set.
    Run,
    /// Those in the sinks' tables.
    ReadOnly,
    /// All of them (`validate --no-environment`).
    Structure,
}

/// Checks the config at `path` without its environment (`validate
/// --no-environment`, for a deployment's config in CI): an unset `${NAME}`
/// is no error, and the values that use one are not checked; everything
/// else is. Ok holds the warnings.
pub fn load_structure(path: &Path) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    match load_file(path, Mode::Structure) {
        Ok(loaded) => Ok(loaded.warnings),
        // What failed were only the values left to the environment.
        Err(diags) if diags.iter().all(|d| d.severity != super::Severity::Error) => Ok(diags),
        Err(diags) => Err(diags),
    }
}

fn load_file(path: &Path, mode: Mode) -> Result<Loaded, Vec<Diagnostic>> {
    let ignore_environment = mode == Mode::Structure;
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::error(
            None,
            "",
            format!("cannot read {}: {e}", path.display()),
        )]
    })?;
    let lookup = |name: &str| std::env::var(name).ok();
    let none = |_: &str| None;
    let env = Env {
        lookup: if ignore_environment { &none } else { &lookup },
        ignore_unset: ignore_environment,
        sinks_may_be_unset: mode == Mode::ReadOnly,
        unresolved: Default::default(),
        reported: Default::default(),
    };
    load_with(path, &text, &env)
}

/// How `${NAME}` is resolved while loading, and which fields could not be.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Unset variables are no error (the values are then not checked).
    ignore_unset: bool,
    /// Unset variables in the sinks' tables are no error; the values keep
    /// their `${NAME}` and are checked as they are.
    sinks_may_be_unset: bool,
    /// Fields whose value kept a `${…}`: their value checks are skipped,
    /// so one unset variable gives one error, not a cascade.
    unresolved: std::cell::RefCell<std::collections::HashSet<String>>,
    /// The interpolation errors themselves (field, message): kept.
    reported: std::cell::RefCell<std::collections::HashSet<(String, String)>>,
}

/// A source text and the file it came from, for locations.
pub(super) struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

impl SourceText {
    pub fn location(&self, offset: usize) -> Location {
        Location::at(&self.path, &self.text, offset)
    }

    pub fn toml_error(&self, field_prefix: &str, path: &str, e: &toml::de::Error) -> Diagnostic {
        let field = join_path(field_prefix, path);
        Diagnostic::error(
            e.span().map(|s| self.location(s.start)),
            field,
            e.message().trim_end().to_owned(),
        )
    }
}

fn join_path(prefix: &str, path: &str) -> String {
    let path = if path == "." { "" } else { path };
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Loads from text already in memory; `path` locates errors and includes.
pub fn load_str(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let env = Env {
        lookup: env,
        ignore_unset: false,
        sinks_may_be_unset: false,
        unresolved: Default::default(),
        reported: Default::default(),
    };
    load_with(path, text, &env)
}

fn load_with(path: &Path, text: &str, env: &Env<'_>) -> Result<Loaded, Vec<Diagnostic>> {
    let main = SourceText {
        path: path.to_path_buf(),
        text: text.to_owned(),
    };
    let mut errors = Vec::new();
    let mut doc = DeTable::parse(text).map_err(|e| vec![main.toml_error("", "", &e)])?;
    let rules_value = doc.get_mut().remove("rules");
    let sinks_value = doc.get_mut().remove("sinks");
    interpolate_values(doc.get_mut(), "", &main, env, &mut errors);

    let raw: Option<RawConfig> =
        deserialize(toml::de::Deserializer::from(doc), &main, "", &mut errors);
    let mut broken_sinks = Vec::new();
    let sinks = match sinks_value {
        Some(mut v) => {
            if let DeValue::Table(t) = v.get_mut() {
                interpolate_values(t, "sinks", &main, env, &mut errors);
            }
            read_sinks(v, &main, &mut errors, &mut broken_sinks)
        }
        None => Vec::new(),
    };

    let mut sources = vec![main];
    let mut rules: Vec<(usize, RawRule)> = Vec::new();
    if let Some(v) = rules_value {
        let field = "rules";
        if let Some(list) = deserialize::<Vec<RawRule>, _>(
            ValueDeserializer::from(v),
            &sources[0],
            field,
            &mut errors,
        ) {
            rules.extend(list.into_iter().map(|r| (0, r)));
        }
    }
    if let Some(raw) = &raw {
        read_rule_files(path, raw, &mut sources, &mut rules, &mut errors);
    }
    let Some(raw) = raw else {
        return Err(errors);
    };
    let rule_sources = RuleSource { files: &sources };
    let checked = validate(
        path,
        raw,
        sinks,
        &broken_sinks,
        rules,
        &rule_sources,
        errors,
    );
    // A field that kept its `${…}` was already reported once (or, without
    // the environment, is not to be checked): drop what its value caused.
    let (unresolved, reported) = (env.unresolved.borrow(), env.reported.borrow());
    checked.map_err(|diags| {
        diags
            .into_iter()
            .filter(|d| {
                !unresolved.contains(&d.field)
                    || reported.contains(&(d.field.clone(), d.message.clone()))
            })
            .collect()
    })
}

/// The rules of the files the config includes and of its `rules_dir`,
/// each file's text kept in `sources` (its errors name it).
fn read_rule_files(
    path: &Path,
    raw: &RawConfig,
    sources: &mut Vec<SourceText>,
    rules: &mut Vec<(usize, RawRule)>,
    errors: &mut Vec<Diagnostic>,
) {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files: Vec<(PathBuf, Option<Location>)> = Vec::new();
    for inc in &raw.include {
        files.push((
            base.join(inc.get_ref()),
            Some(sources[0].location(inc.span().start)),
        ));
    }
    if let Some(dir) = &raw.rules_dir {
        let at = sources[0].location(dir.span().start);
        match list_toml_files(&base.join(dir.get_ref())) {
            Ok(found) => files.extend(found.into_iter().map(|f| (f, Some(at.clone())))),
            Err(e) => errors.push(Diagnostic::error(Some(at), "rules_dir", e)),
        }
    }
    for (file, at) in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let src = SourceText { path: file, text };
                match DeTable::parse(&src.text) {
                    Ok(doc) => {
                        if let Some(f) = deserialize::<RulesFile, _>(
                            toml::de::Deserializer::from(doc),
                            &src,
                            "",
                            errors,
                        ) {
                            let n = sources.len();
                            rules.extend(f.rules.into_iter().map(|r| (n, r)));
                        }
                    }
                    Err(e) => errors.push(src.toml_error("", "", &e)),
                }
                sources.push(src);
            }
            Err(e) => errors.push(Diagnostic::error(
                at,
                "include",
                format!("cannot read {}: {e}", file.display()),
            )),
        }
    }
}

/// Deserializes with the failing field's path; records the error.
fn deserialize<'de, T: DeserializeOwned, D: serde::Deserializer<'de, Error = toml::de::Error>>(
    de: D,
    src: &SourceText,
    prefix: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            errors.push(src.toml_error(prefix, &path, e.inner()));
            None
        }
    }
}

fn read_sinks(
    value: Spanned<DeValue<'_>>,
    src: &SourceText,
    errors: &mut Vec<Diagnostic>,
    broken: &mut Vec<String>,
) -> Vec<(SinkEntry, Location)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        errors.push(Diagnostic::error(
            Some(src.location(span.start)),
            "sinks",
            "expected a table of sinks ([sinks.NAME])",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, mut v) in table {
        let name = name.into_inner().into_owned();
        // Assume broken until it parses, so rules naming it are not also
        // reported as naming an unknown sink.
        broken.push(name.clone());
        let field = format!("sinks.{name}");
        let at = src.location(v.span().start);
        let DeValue::Table(t) = v.get_mut() else {
            errors.push(Diagnostic::error(Some(at), field, "expected a table"));
            continue;
        };
        let Some(kind) = sink_kind(t, &field, &at, src, errors) else {
            continue;
        };
        let flat = move_flat_keys(kind.moved, t, &field, src, errors);
        // What the table says, spans and key order aside: a reload keeps a
        // running sink whose fingerprint did not change.
        let fingerprint = format!("{}{}", kind.name, canonical_table(t));
        let spans: Vec<(String, usize)> = t
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), v.span().start))
            .collect();
        match kind.parse(ValueDeserializer::from(v)) {
            Ok(config) => {
                report_issues(config.validate(), &flat, &spans, &field, &at, src, errors);
                broken.pop();
                out.push((
                    SinkEntry {
                        name,
                        config,
                        fingerprint,
                    },
                    at,
                ));
            }
            Err(e) => errors.push(src.toml_error(&field, &e.path, &e.error)),
        }
    }
    out
}

/// The sink type a table names in `type` (taken out of it); or an error.
fn sink_kind(
    t: &mut DeTable<'_>,
    field: &str,
    at: &Location,
    src: &SourceText,
    errors: &mut Vec<Diagnostic>,
) -> Option<&'static SinkKind> {
    let Some(kind_value) = t.remove("type") else {
        errors.push(Diagnostic::error(
            Some(at.clone()),
            format!("{field}.type"),
            format!("missing; expected one of {}", SinkKind::names().join(", ")),
        ));
        return None;
    };
    let kind_at = src.location(kind_value.span().start);
    let DeValue::String(kind) = kind_value.get_ref() else {
        errors.push(Diagnostic::error(
            Some(kind_at),
            format!("{field}.type"),
            "expected a string",
        ));
        return None;
    };
    let Some(kind) = SinkKind::find(kind) else {
        errors.push(Diagnostic::error(
            Some(kind_at),
            format!("{field}.type"),
            format!(
                "unknown sink type {:?}; expected one of {}",
                kind.as_ref(),
                SinkKind::names().join(", ")
            ),
        ));
        return None;
    };
    Some(kind)
}

/// A sink config's own checks, located: a key written flat is named as
/// written, where written; any other at its top-level key.
fn report_issues(
    issues: Vec<ossnotify_sinks::config::FieldIssue>,
    flat: &[((String, &'static str), usize)],
    spans: &[(String, usize)],
    field: &str,
    at: &Location,
    src: &SourceText,
    errors: &mut Vec<Diagnostic>,
) {
    for issue in issues {
        // A key written flat is named as written, where written.
        if let Some((name, s)) = flat.iter().find(|(n, _)| n.0 == issue.field) {
            errors.push(Diagnostic::error(
                Some(src.location(*s)),
                format!("{field}.{}", name.1),
                issue.message,
            ));
            continue;
        }
        let top = issue.field.split('.').next().unwrap_or(issue.field);
        let loc = spans
            .iter()
            .find(|(k, _)| k == top)
            .map(|(_, s)| src.location(*s))
            .unwrap_or_else(|| at.clone());
        errors.push(Diagnostic::error(
            Some(loc),
            format!("{field}.{}", issue.field),
            issue.message,
        ));
    }
}

/// Moves the keys a sink type nested (`max_in_flight` → `[sinks.NAME.request]
/// max_in_flight`) into their tables, with a warning at each flat key; a
/// key given both ways is an error. A key whose flat name is its table's
/// (`http`'s `batch = "ndjson"`, now `batch.mode`) moves only when it is
/// not a table already. Returns the keys moved: (their nested path, their
/// flat name) and where their value starts, so that an error names what
/// was written.
fn move_flat_keys(
    moved: &[ossnotify_sinks::config::Moved],
    t: &mut DeTable<'_>,
    field: &str,
    src: &SourceText,
    diags: &mut Vec<Diagnostic>,
) -> Vec<((String, &'static str), usize)> {
    let mut out = Vec::new();
    for m in moved {
        let Some((key, value)) = t.remove_entry(m.flat) else {
            continue;
        };
        if m.flat == m.table && matches!(value.get_ref(), DeValue::Table(_)) {
            t.insert(key, value);
            continue;
        }
        let at = src.location(key.span().start);
        diags.push(Diagnostic::warning(
            Some(at.clone()),
            format!("{field}.{}", m.flat),
            format!(
                "deprecated: write it as `{}` in [{field}.{}] (docs/config.md, \"Nested sink tables\")",
                m.key, m.table
            ),
        ));
        let span = key.span();
        let nested = t
            .entry(toml::Spanned::new(span.clone(), m.table.into()))
            .or_insert_with(|| toml::Spanned::new(span.clone(), DeValue::Table(DeTable::new())));
        let DeValue::Table(nested) = nested.get_mut() else {
            diags.push(Diagnostic::error(
                Some(at),
                format!("{field}.{}", m.table),
                "expected a table",
            ));
            continue;
        };
        if nested.contains_key(m.key) {
            diags.push(Diagnostic::error(
                Some(at),
                format!("{field}.{}", m.flat),
                format!(
                    "given twice: here and as `{}` in [{field}.{}]",
                    m.key, m.table
                ),
            ));
            continue;
        }
        out.push((
            (format!("{}.{}", m.table, m.key), m.flat),
            value.span().start,
        ));
        nested.insert(toml::Spanned::new(span, m.key.into()), value);
    }
    out
}

fn interpolate_values(
    table: &mut DeTable<'_>,
    prefix: &str,
    src: &SourceText,
    env: &Env<'_>,
    errors: &mut Vec<Diagnostic>,
) {
    for (k, v) in table.iter_mut() {
        let field = join_path(prefix, k.get_ref());
        interpolate_value(v, &field, src, env, errors);
    }
}

fn interpolate_value(
    v: &mut Spanned<DeValue<'_>>,
    field: &str,
    src: &SourceText,
    env: &Env<'_>,
    errors: &mut Vec<Diagnostic>,
) {
    let start = v.span().start;
    match v.get_mut() {
        DeValue::String(s) if s.contains('$') => match interpolate(s, env.lookup) {
            Ok(new) => *s = new.into(),
            Err(super::env::EnvError::Unset(_))
                if env.sinks_may_be_unset && field.starts_with("sinks.") => {}
            Err(e) => {
                env.unresolved.borrow_mut().insert(field.to_owned());
                let unset = matches!(e, super::env::EnvError::Unset(_));
                if !(unset && env.ignore_unset) {
                    let message = e.to_string();
                    env.reported
                        .borrow_mut()
                        .insert((field.to_owned(), message.clone()));
                    errors.push(Diagnostic::error(Some(src.location(start)), field, message));
                }
            }
        },
        DeValue::Table(t) => interpolate_values(t, field, src, env, errors),
        DeValue::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                interpolate_value(item, &format!("{field}[{i}]"), src, env, errors);
            }
        }
        _ => {}
    }
}

fn list_toml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// A value as text with sorted keys and no spans: equal for equal meaning.
fn canonical(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("{s:?}"),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| canonical(x.get_ref())).collect();
            format!("[{}]", items.join(","))
        }
        DeValue::Table(t) => canonical_table(t),
    }
}

fn canonical_table(t: &DeTable<'_>) -> String {
    let mut items: Vec<String> = t
        .iter()
        .map(|(k, x)| format!("{:?}={}", k.get_ref(), canonical(x.get_ref())))
        .collect();
    items.sort();
    format!("{{{}}}", items.join(","))
}
