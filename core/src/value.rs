//! The dynamic [`Value`] every language maps to, and its Cap'n Proto codec.
//!
//! Front ends convert their native values to `Value` (naming the path of anything
//! they cannot convert), and `Value` to and from the wire here. Rust callers use
//! serde: [`to_value`] and [`from_value`] go through `serde_json::Value`, so any
//! `Serialize` type works (bytes travel as a list of ints that way; use
//! [`Value::Data`] directly for binary data).
//!
//! ```
//! use titan_pm::value::{to_value, from_value, Value};
//! let v = to_value(&(5, "x")).unwrap();
//! assert_eq!(v, Value::List(vec![Value::Int(5), Value::Text("x".into())]));
//! let back: (i64, String) = from_value(v).unwrap();
//! assert_eq!(back, (5, "x".to_string()));
//! ```

use crate::error::{Error, Result};
use crate::titan_capnp::value;

/// The deepest a value may nest: anything inside more than this many lists or
/// maps is refused (before it is sent) with a `SerializationError` naming its
/// path. The same limit holds in every front end and isolation; the wire
/// reader's nesting limit is set to admit exactly this much.
pub const MAX_DEPTH: usize = 100;

/// A dynamic value: what crosses the wire as an argument or a result.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Data(Vec<u8>),
    List(Vec<Value>),
    /// Text keys in insertion order.
    Map(Vec<(String, Value)>),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        if let Value::Int(i) = self { Some(*i) } else { None }
    }
    pub fn as_str(&self) -> Option<&str> {
        if let Value::Text(s) = self { Some(s) } else { None }
    }
    /// The value under `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Data(_) => "data",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

/// Writes `v` into a Cap'n Proto `Value` builder.
pub fn write(v: &Value, mut b: value::Builder<'_>) {
    match v {
        Value::Null => b.set_null(()),
        Value::Bool(x) => b.set_bool(*x),
        Value::Int(x) => b.set_int(*x),
        Value::Float(x) => b.set_float(*x),
        Value::Text(s) => b.set_text(s.as_str()),
        Value::Data(d) => b.set_data(d),
        Value::List(items) => {
            let mut l = b.init_list(items.len() as u32);
            for (i, item) in items.iter().enumerate() {
                write(item, l.reborrow().get(i as u32));
            }
        }
        Value::Map(entries) => {
            let mut l = b.init_map(entries.len() as u32);
            for (i, (k, item)) in entries.iter().enumerate() {
                let mut e = l.reborrow().get(i as u32);
                e.set_key(k.as_str());
                write(item, e.init_value());
            }
        }
    }
}

/// Writes a list of values (call arguments).
pub fn write_list(items: &[Value], mut l: capnp::struct_list::Builder<'_, value::Owned>) {
    for (i, item) in items.iter().enumerate() {
        write(item, l.reborrow().get(i as u32));
    }
}

/// Reads a Cap'n Proto `Value`; `path` names it in errors.
pub fn read(r: value::Reader<'_>, path: &str) -> Result<Value> {
    use value::Which;
    let bad = |e: capnp::Error| Error::Serialization { path: path.to_string(), message: e.to_string() };
    Ok(match r.which().map_err(|e| Error::Serialization { path: path.into(), message: e.to_string() })? {
        Which::Null(()) => Value::Null,
        Which::Bool(x) => Value::Bool(x),
        Which::Int(x) => Value::Int(x),
        Which::Float(x) => Value::Float(x),
        Which::Text(t) => Value::Text(text(t.map_err(bad)?, path)?),
        Which::Data(d) => Value::Data(d.map_err(bad)?.to_vec()),
        Which::List(l) => {
            let l = l.map_err(bad)?;
            let mut out = Vec::with_capacity(l.len() as usize);
            for (i, item) in l.iter().enumerate() {
                out.push(read(item, &format!("{path}[{i}]"))?);
            }
            Value::List(out)
        }
        Which::Map(l) => {
            let l = l.map_err(bad)?;
            let mut out = Vec::with_capacity(l.len() as usize);
            for e in l.iter() {
                let key = text(e.get_key().map_err(bad)?, path)?;
                let item = read(e.get_value().map_err(bad)?, &format!("{path}[{key:?}]"))?;
                out.push((key, item));
            }
            Value::Map(out)
        }
    })
}

/// Reads a list of values; element `i` is named `{path}[i]`.
pub fn read_list(l: capnp::struct_list::Reader<'_, value::Owned>, path: &str) -> Result<Vec<Value>> {
    l.iter().enumerate().map(|(i, item)| read(item, &format!("{path}[{i}]"))).collect()
}

pub(crate) fn text(t: capnp::text::Reader<'_>, path: &str) -> Result<String> {
    t.to_string().map_err(|e| Error::Serialization { path: path.to_string(), message: format!("invalid utf-8: {e}") })
}

/// Converts any `Serialize` value (a tuple becomes a list, a struct a map).
pub fn to_value<T: serde::Serialize + ?Sized>(v: &T) -> Result<Value> {
    let json = serde_json::to_value(v)
        .map_err(|e| Error::Serialization { path: "value".into(), message: e.to_string() })?;
    Ok(from_json(json))
}

/// Converts a `Value` to any `Deserialize` type.
pub fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    let json = to_json(v, "value")?;
    serde_json::from_value(json).map_err(|e| Error::Serialization { path: "value".into(), message: e.to_string() })
}

fn from_json(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Text(s),
        J::Array(a) => Value::List(a.into_iter().map(from_json).collect()),
        J::Object(o) => Value::Map(o.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

fn to_json(v: Value, path: &str) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(b),
        Value::Int(i) => J::from(i),
        Value::Float(f) => serde_json::Number::from_f64(f).map(J::Number).ok_or_else(|| Error::Serialization {
            path: path.to_string(),
            message: format!("{f} has no JSON form"),
        })?,
        Value::Text(s) => J::String(s),
        Value::Data(d) => J::Array(d.into_iter().map(J::from).collect()),
        Value::List(items) => J::Array(
            items.into_iter().enumerate().map(|(i, x)| to_json(x, &format!("{path}[{i}]"))).collect::<Result<_>>()?,
        ),
        Value::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, x) in entries {
                let p = format!("{path}[{k:?}]");
                m.insert(k, to_json(x, &p)?);
            }
            J::Object(m)
        }
    })
}

/// Arguments for a call: a tuple or a list becomes the argument list, `()` none,
/// anything else a single argument.
pub fn to_args<T: serde::Serialize + ?Sized>(args: &T) -> Result<Vec<Value>> {
    Ok(match to_value(args)? {
        Value::List(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: &Value) -> Value {
        let mut msg = capnp::message::Builder::new_default();
        write(v, msg.init_root::<value::Builder>());
        read(msg.get_root_as_reader::<value::Reader>().unwrap(), "v").unwrap()
    }

    #[test]
    fn every_variant_survives_the_wire() {
        let v = Value::Map(vec![
            ("n".into(), Value::Null),
            ("b".into(), Value::Bool(true)),
            ("i".into(), Value::Int(i64::MIN)),
            ("f".into(), Value::Float(1.5)),
            ("t".into(), Value::Text("héllo".into())),
            ("d".into(), Value::Data(vec![0, 255])),
            ("l".into(), Value::List(vec![Value::Int(1), Value::List(vec![])])),
        ]);
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn a_bad_float_names_its_path() {
        let v = Value::List(vec![Value::Int(1), Value::Map(vec![("x".into(), Value::Float(f64::NAN))])]);
        let err = from_value::<serde_json::Value>(v).unwrap_err();
        assert!(err.to_string().contains(r#"value[1]["x"]"#), "{err}");
    }

    #[test]
    fn tuples_become_argument_lists() {
        assert_eq!(to_args(&(1, 2)).unwrap(), vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(to_args(&()).unwrap(), vec![]);
        assert_eq!(to_args(&"x").unwrap(), vec![Value::Text("x".into())]);
    }
}
