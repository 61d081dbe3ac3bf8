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

/// The byte buffer of [`Value::Data`]: cloning it shares the bytes (a refcount),
/// and a front end can wrap memory it already owns (`Bytes::from_owner`)
/// instead of copying it. Re-exported so the bridges name the same type.
pub use bytes::{Bytes, BytesMut};

/// Data at least this long is shared with the host language rather than copied
/// where the language allows it safely (an immutable Python `bytes` going in, a
/// Node Buffer over the value's own memory coming out); shorter data is copied.
/// Below this a copy costs less than the shared buffer's bookkeeping (an extra
/// allocation for the owner and, in Node, an external-memory finalizer).
pub const SHARE_DATA_BYTES: usize = 32 * 1024;

/// The deepest a value may nest: anything inside more than this many lists or
/// maps is refused (before it is sent) with a `SerializationError` naming its
/// path. The same limit holds in every front end and isolation; the wire
/// reader's nesting limit is set to admit exactly this much.
pub const MAX_DEPTH: usize = 100;

/// The largest encoding of the values of one message (a call's arguments, a
/// result, the spawn dependencies): 64 MiB. Larger values are refused, not
/// split: the sender gets a `SerializationError` that names this limit.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Bytes of one `Value` struct on the wire (2 data words, 1 pointer).
const VALUE_BYTES: usize = 24;
/// Bytes of one map entry struct (2 pointers).
const ENTRY_BYTES: usize = 16;

/// Checks that `items` (one message's values) can be sent: no value nested
/// deeper than [`MAX_DEPTH`], and together at most [`MAX_MESSAGE_BYTES`]
/// encoded. Element `i` is named `{path}[i]`. Returns the encoded size.
pub fn check_list(items: &[Value], path: &str) -> Result<usize> {
    let mut size = 8 + items.len() * VALUE_BYTES;
    for (i, item) in items.iter().enumerate() {
        size += walk(item, 0).map_err(|segments| too_deep(&format!("{path}[{i}]"), segments))?;
    }
    size_ok(size, path)
}

/// Like [`check_list`] for one value.
pub fn check(v: &Value, path: &str) -> Result<usize> {
    let size = 8 + VALUE_BYTES + walk(v, 0).map_err(|segments| too_deep(path, segments))?;
    size_ok(size, path)
}

fn size_ok(size: usize, path: &str) -> Result<usize> {
    if size > MAX_MESSAGE_BYTES {
        return Err(Error::Serialization {
            path: path.to_string(),
            message: format!(
                "the value is {} encoded, over the limit of {} per message",
                human(size),
                human(MAX_MESSAGE_BYTES)
            ),
        });
    }
    Ok(size)
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{bytes} bytes")
    }
}

fn too_deep(path: &str, mut segments: Vec<String>) -> Error {
    segments.reverse();
    Error::Serialization {
        path: format!("{path}{}", segments.concat()),
        message: format!("nested deeper than {MAX_DEPTH} levels"),
    }
}

/// The bytes `v`'s content takes beyond its own struct; `Err` holds the path
/// segments (innermost first) to a value nested too deep.
fn walk(v: &Value, depth: usize) -> std::result::Result<usize, Vec<String>> {
    if depth > MAX_DEPTH {
        return Err(Vec::new());
    }
    let words = |n: usize| n.div_ceil(8) * 8;
    Ok(match v {
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 0,
        Value::Text(s) => words(s.len() + 1),
        Value::Data(d) => words(d.len()),
        Value::List(items) => {
            let mut size = 8 + items.len() * VALUE_BYTES;
            for (i, item) in items.iter().enumerate() {
                size = size.saturating_add(walk(item, depth + 1).map_err(|mut p| {
                    p.push(format!("[{i}]"));
                    p
                })?);
            }
            size
        }
        Value::Map(entries) => {
            let mut size = 8 + entries.len() * ENTRY_BYTES;
            for (k, item) in entries {
                size = size.saturating_add(words(k.len() + 1) + VALUE_BYTES);
                size = size.saturating_add(walk(item, depth + 1).map_err(|mut p| {
                    p.push(format!("[{k:?}]"));
                    p
                })?);
            }
            size
        }
    })
}

/// A dynamic value: what crosses the wire as an argument or a result.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Binary data; a clone shares the bytes instead of copying them.
    Data(Bytes),
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
        // The one copy out of the message (which is freed after the read):
        // `copy_from_slice` allocates without zero-filling.
        Which::Data(d) => Value::Data(Bytes::copy_from_slice(d.map_err(bad)?)),
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
        Value::Data(d) => J::Array(d.iter().copied().map(J::from).collect()),
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
            ("d".into(), Value::Data(vec![0, 255].into())),
            ("l".into(), Value::List(vec![Value::Int(1), Value::List(vec![])])),
        ]);
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn large_data_survives_the_wire_and_clones_share_it() {
        let bytes: Vec<u8> = (0..2 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let v = Value::Data(Bytes::from(bytes.clone()));
        // Over the transport's framing too, as a worker receives it.
        let mut msg = capnp::message::Builder::new_default();
        write(&v, msg.init_root::<value::Builder>());
        let mut wire = Vec::new();
        capnp::serialize::write_message(&mut wire, &msg).unwrap();
        let reader = capnp::serialize::read_message(&mut &wire[..], crate::transport::reader_options()).unwrap();
        let back = read(reader.get_root::<value::Reader>().unwrap(), "v").unwrap();
        let Value::Data(d) = &back else { panic!("{}", back.type_name()) };
        assert!(d[..] == bytes[..], "the bytes changed on the wire");
        let copy = back.clone();
        let Value::Data(c) = &copy else { unreachable!() };
        assert_eq!(c.as_ptr(), d.as_ptr(), "a clone copied the bytes");
        assert_eq!(c.len(), d.len());
    }

    #[test]
    fn a_bad_float_names_its_path() {
        let v = Value::List(vec![Value::Int(1), Value::Map(vec![("x".into(), Value::Float(f64::NAN))])]);
        let err = from_value::<serde_json::Value>(v).unwrap_err();
        assert!(err.to_string().contains(r#"value[1]["x"]"#), "{err}");
    }

    fn nested(depth: usize, map: bool) -> Value {
        let mut v = Value::Int(1);
        for _ in 0..depth {
            v = if map { Value::Map(vec![("k".into(), v)]) } else { Value::List(vec![v]) };
        }
        v
    }

    #[test]
    fn the_depth_limit_is_exact_and_names_the_path() {
        // The innermost int sits inside MAX_DEPTH containers: allowed, and it reads back.
        for map in [false, true] {
            let ok = nested(MAX_DEPTH, map);
            check(&ok, "v").unwrap();
            let mut msg = capnp::message::Builder::new_default();
            write(&ok, msg.init_root::<value::Builder>());
            let mut bytes = Vec::new();
            capnp::serialize::write_message(&mut bytes, &msg).unwrap();
            let reader = capnp::serialize::read_message(&mut &bytes[..], crate::transport::reader_options()).unwrap();
            assert_eq!(read(reader.get_root::<value::Reader>().unwrap(), "v").unwrap(), ok);
        }
        let err = check_list(&[Value::Null, nested(MAX_DEPTH + 1, false)], "args").unwrap_err();
        let Error::Serialization { path, message } = &err else { panic!("{err}") };
        assert_eq!(path, &format!("args[1]{}", "[0]".repeat(MAX_DEPTH + 1)));
        assert!(message.contains("nested deeper than 100 levels"), "{message}");
        let err = check(&nested(MAX_DEPTH + 1, true), "result").unwrap_err();
        assert!(err.to_string().starts_with(r#"cannot serialize result["k"]["k"]"#), "{err}");
    }

    #[test]
    fn the_size_estimate_bounds_the_real_encoding() {
        let v = Value::Map(vec![
            ("text".into(), Value::Text("héllo".repeat(99))),
            ("data".into(), Value::Data(vec![7; 1001].into())),
            ("list".into(), Value::List(vec![Value::Int(1), Value::Null, Value::List(vec![Value::Float(2.0)])])),
        ]);
        let mut msg = capnp::message::Builder::new_default();
        write(&v, msg.init_root::<value::Builder>());
        let real = capnp::serialize::compute_serialized_size_in_words(&msg) * 8;
        let estimate = check(&v, "v").unwrap();
        assert!(estimate + 8 >= real && estimate <= real + 64, "estimate {estimate}, real {real}");
        let big = vec![Value::Data(vec![0; MAX_MESSAGE_BYTES].into())];
        let err = check_list(&big, "args").unwrap_err();
        assert!(err.to_string().contains("over the limit of 64.0 MiB per message"), "{err}");
    }

    #[test]
    fn tuples_become_argument_lists() {
        assert_eq!(to_args(&(1, 2)).unwrap(), vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(to_args(&()).unwrap(), vec![]);
        assert_eq!(to_args(&"x").unwrap(), vec![Value::Text("x".into())]);
    }
}
