//! Reading one options object: typed getters that know the option's full path
//! for their errors, and a `finish` that refuses every key nobody asked for.
//!
//! ```
//! use titan_pm::dialect::{Dialect, Section};
//! use titan_pm::Value;
//! let v = Value::Map(vec![("maxQueueSize".into(), Value::Int(5)), ("maxQueue".into(), Value::Int(1))]);
//! let mut s = Section::root(&v, "pool", Dialect::Js).unwrap();
//! assert_eq!(s.count("maxQueueSize").unwrap(), Some(5));
//! let e = s.finish().unwrap_err().to_string();
//! assert!(e.contains("maxQueue: unknown option (expected one of: maxQueueSize)"), "{e}");
//! ```

use std::time::Duration;

use super::Dialect;
use crate::error::{Error, Result};
use crate::value::Value;

static EMPTY: Vec<(String, Value)> = Vec::new();

thread_local! {
    /// While [`probe`] runs: every option path the readers accept.
    static PROBE: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `read` over an empty object with every sub-object entered, and returns
/// every option path it accepts: the schema, for the front ends' drift tests.
pub fn probe(read: impl FnOnce()) -> Vec<String> {
    PROBE.with(|p| *p.borrow_mut() = Some(Vec::new()));
    read();
    let mut paths = PROBE.with(|p| p.borrow_mut().take()).unwrap_or_default();
    paths.sort();
    paths.dedup();
    paths
}

fn probing() -> bool {
    PROBE.with(|p| p.borrow().is_some())
}

/// An options object being read.
pub struct Section<'a> {
    dialect: Dialect,
    /// Where this object sits, in the caller's spelling (`autoScale`); empty at the root.
    path: String,
    entries: &'a [(String, Value)],
    /// The camelCase names asked for so far: what this object accepts.
    known: Vec<&'static str>,
}

/// A sub-object that can also be given as `true` (its defaults) or `false` (off).
pub enum Toggle<'a> {
    Absent,
    Off,
    On(Section<'a>),
}

impl<'a> Section<'a> {
    /// The top-level object; `what` names it in errors when it is not an object.
    pub fn root(v: &'a Value, what: &str, dialect: Dialect) -> Result<Self> {
        match v {
            Value::Null => Ok(Section::over(&EMPTY, String::new(), dialect)),
            Value::Map(entries) => Ok(Section::over(entries, String::new(), dialect)),
            other => Err(Error::Config(format!("{what} options must be an object, not {}", other.type_name()))),
        }
    }

    /// An object found at `path` (a list element, `children[2]`); `what` names it when it is not an object.
    pub fn at(v: &'a Value, path: String, what: &str, dialect: Dialect) -> Result<Self> {
        match v {
            Value::Map(entries) => Ok(Section::over(entries, path, dialect)),
            other => Err(Error::Config(format!("{path}: {what} options must be an object, not {}", other.type_name()))),
        }
    }

    fn over(entries: &'a [(String, Value)], path: String, dialect: Dialect) -> Self {
        Section { dialect, path, entries, known: Vec::new() }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// `name`'s full path in the caller's spelling (`autoScale.targetCPU`).
    pub fn path(&self, name: &str) -> String {
        let name = self.dialect.name(name);
        if self.path.is_empty() { name.into_owned() } else { format!("{}.{name}", self.path) }
    }

    /// An error about option `name`.
    pub fn error(&self, name: &str, message: impl std::fmt::Display) -> Error {
        Error::Config(format!("{}: {message}", self.path(name)))
    }

    /// The raw value of `name` (absent or null: `None`); marks `name` as known.
    pub fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.known.push(name);
        let key = self.dialect.name(name);
        let entries = self.entries;
        entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v).filter(|v| !matches!(v, Value::Null))
    }

    /// The first of several spellings that is present (`targetCPU`, `targetCpu`), with its name.
    pub fn get_any(&mut self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        let mut found = None;
        for name in names {
            if let Some(v) = self.get(name) {
                found = found.or(Some((*name, v)));
            }
        }
        found
    }

    pub fn bool(&mut self, name: &'static str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.error(name, format!("must be true or false, not {}", other.type_name()))),
        }
    }

    pub fn text(&mut self, name: &'static str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Text(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(name, format!("must be a string, not {}", other.type_name()))),
        }
    }

    /// A text option parsed with `FromStr` (an enum name such as a strategy).
    pub fn parse<T: std::str::FromStr<Err = Error>>(&mut self, name: &'static str) -> Result<Option<T>> {
        match self.text(name)? {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|e| match e {
                Error::Config(m) => self.error(name, m),
                other => other,
            }),
        }
    }

    /// A finite number.
    pub fn number(&mut self, name: &'static str) -> Result<Option<f64>> {
        Ok(self.number_of(name)?.map(|(_, x)| x))
    }

    fn number_of(&mut self, name: &'static str) -> Result<Option<(&'static str, f64)>> {
        let v = self.get(name);
        number_value(v).map(|x| x.map(|x| (name, x))).map_err(|m| self.error(name, m))
    }

    /// A whole number >= 0.
    pub fn count(&mut self, name: &'static str) -> Result<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Int(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(Value::Float(x)) if *x >= 0.0 && x.fract() == 0.0 && *x < 9.0e15 => Ok(Some(*x as u64)),
            Some(other) => Err(self.error(name, format!("must be a whole number >= 0, not {}", show(other)))),
        }
    }

    /// A percentage, 0 to 100.
    pub fn percent(&mut self, name: &'static str) -> Result<Option<f64>> {
        match self.number(name)? {
            Some(x) if !(0.0..=100.0).contains(&x) => Err(self.error(name, format!("must be a percentage from 0 to 100, not {x}"))),
            x => Ok(x),
        }
    }

    /// A duration: a number in the dialect's unit, or a string with a unit (`"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`).
    pub fn duration(&mut self, name: &'static str) -> Result<Option<Duration>> {
        let dialect = self.dialect;
        match self.get(name) {
            None => Ok(None),
            Some(Value::Text(s)) => parse_duration(s).map(Some).map_err(|m| self.error(name, m)),
            Some(v) => match number_value(Some(v)) {
                Ok(Some(x)) if x >= 0.0 => dialect
                    .duration(x)
                    .map(Some)
                    .ok_or_else(|| self.error(name, format!("{x} {} is out of range", dialect.time_unit()))),
                Ok(_) | Err(_) => Err(self.error(
                    name,
                    format!("must be a duration (a number of {} >= 0, or a string such as \"30s\"), not {}", dialect.time_unit(), show(v)),
                )),
            },
        }
    }

    /// A size in bytes: a whole number, or a string such as `"512MB"`, `"1GB"`, `"64KiB"` (units of 1024).
    pub fn bytes(&mut self, name: &'static str) -> Result<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Text(s)) => parse_bytes(s).map(Some).map_err(|m| self.error(name, m)),
            Some(Value::Int(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(Value::Float(x)) if *x >= 0.0 && x.fract() == 0.0 => Ok(Some(*x as u64)),
            Some(other) => Err(self.error(name, format!("must be a number of bytes or a size such as \"512MB\", not {}", show(other)))),
        }
    }

    /// A list of text.
    pub fn texts(&mut self, name: &'static str) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::List(items)) => items
                .iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::Text(s) => Ok(s.clone()),
                    other => Err(self.error(name, format!("[{i}] must be a string, not {}", other.type_name()))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => Err(self.error(name, format!("must be a list of strings, not {}", other.type_name()))),
        }
    }

    /// A map of text to text (`env`).
    pub fn text_map(&mut self, name: &'static str) -> Result<Option<Vec<(String, String)>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Map(entries)) => entries
                .iter()
                .map(|(k, x)| match x {
                    Value::Text(s) => Ok((k.clone(), s.clone())),
                    other => Err(self.error(name, format!("{k:?} must be a string, not {}", other.type_name()))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => Err(self.error(name, format!("must be an object of strings, not {}", other.type_name()))),
        }
    }

    /// Whether the schema is being probed (readers then enter every sub-object).
    pub fn probing(&self) -> bool {
        probing()
    }

    /// A sub-object (`autoScale: {...}`), or `true` for its defaults, or `false` for off.
    /// `{ enabled: false, ... }` is off as well.
    pub fn toggle(&mut self, name: &'static str) -> Result<Toggle<'a>> {
        let path = self.path(name);
        let dialect = self.dialect;
        if probing() {
            self.known.push(name);
            let mut s = Section::over(&EMPTY, path, dialect);
            s.known.push("enabled");
            return Ok(Toggle::On(s));
        }
        match self.get(name) {
            None => Ok(Toggle::Absent),
            Some(Value::Bool(false)) => Ok(Toggle::Off),
            Some(Value::Bool(true)) => Ok(Toggle::On(Section::over(&EMPTY, path, dialect))),
            Some(Value::Map(entries)) => {
                let mut s = Section::over(entries, path, dialect);
                match s.bool("enabled")? {
                    Some(false) => Ok(Toggle::Off),
                    _ => Ok(Toggle::On(s)),
                }
            }
            Some(other) => Err(self.error(name, format!("must be an object or true/false, not {}", other.type_name()))),
        }
    }

    /// A sub-object that must be an object.
    pub fn section(&mut self, name: &'static str) -> Result<Option<Section<'a>>> {
        let path = self.path(name);
        let dialect = self.dialect;
        if probing() {
            self.known.push(name);
            return Ok(Some(Section::over(&EMPTY, path, dialect)));
        }
        match self.get(name) {
            None => Ok(None),
            Some(Value::Map(entries)) => Ok(Some(Section::over(entries, path, dialect))),
            Some(other) => Err(self.error(name, format!("must be an object, not {}", other.type_name()))),
        }
    }

    /// Refuses every key that no getter asked for, naming its full path and the accepted names.
    pub fn finish(self) -> Result<()> {
        if probing() {
            let paths: Vec<String> = self.known.iter().map(|k| self.path(k)).collect();
            PROBE.with(|p| p.borrow_mut().as_mut().map(|v| v.extend(paths)));
            return Ok(());
        }
        for (key, _) in self.entries {
            if !self.known.iter().any(|k| self.dialect.name(k) == key.as_str()) {
                let mut names: Vec<String> = self.known.iter().map(|k| self.dialect.name(k).into_owned()).collect();
                names.sort();
                names.dedup();
                let full = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
                return Err(Error::Config(format!("{full}: unknown option (expected one of: {})", names.join(", "))));
            }
        }
        Ok(())
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Text(s) => format!("{s:?}"),
        other => other.type_name().to_string(),
    }
}

fn number_value(v: Option<&Value>) -> std::result::Result<Option<f64>, String> {
    match v {
        None => Ok(None),
        Some(Value::Int(n)) => Ok(Some(*n as f64)),
        Some(Value::Float(x)) if x.is_finite() => Ok(Some(*x)),
        Some(other) => Err(format!("must be a number, not {}", show(other))),
    }
}

/// `"250ms"`, `"1.5s"`, `"30m"`, `"1h"`, `"2d"`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration (expected e.g. \"250ms\", \"30s\", \"5m\", \"1h\")"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("{s:?} has an unknown unit (expected ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a duration >= 0"))
}

/// `"512MB"`, `"1GB"`, `"64KiB"`, `"100"` (units of 1024).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size (expected e.g. \"512MB\" or \"1GB\")"))?;
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("{s:?} has an unknown unit (expected B, KB, MB, GB or TB)")),
    };
    if n < 0.0 || !n.is_finite() {
        return Err(format!("{s:?} is not a size >= 0"));
    }
    Ok((n * scale as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_users_write_them() {
        assert_eq!(parse_bytes("512MB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1GB"), Ok(1 << 30));
        assert_eq!(parse_bytes("64kib"), Ok(64 << 10));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn a_python_section_reads_snake_case_seconds_and_names_the_path() {
        let v = Value::Map(vec![("auto_scale".into(), Value::Map(vec![("cooldown_period".into(), Value::Float(1.5)), ("target_cpux".into(), Value::Int(1))]))]);
        let mut root = Section::root(&v, "pool", Dialect::Python).unwrap();
        let Toggle::On(mut a) = root.toggle("autoScale").unwrap() else { panic!() };
        assert_eq!(a.duration("cooldownPeriod").unwrap(), Some(Duration::from_millis(1500)));
        a.number("targetCPU").unwrap();
        let e = a.finish().unwrap_err().to_string();
        assert!(e.contains("auto_scale.target_cpux: unknown option"), "{e}");
    }
}
