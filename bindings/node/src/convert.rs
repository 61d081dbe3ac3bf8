//! JS values to and from the core's `Value` (brief §4 "Value mapping").
//!
//! JS to `Value`: null/undefined → null, boolean, a safe integer → int (any
//! other number → float), bigint → int (it must fit an i64), string,
//! Buffer/Uint8Array → data, Array → list, a plain object or a data-only class
//! instance → map, a Map with string keys → map. Anything else (functions,
//! symbols, class instances with methods, other typed arrays, a string with a
//! lone surrogate, lists and maps nested deeper than `MAX_DEPTH`, a value that
//! contains itself, ...) is an error naming the path to it: `args[1]["items"][3]`.
//! The depth is checked before recursing, so no value can overflow the stack.
//!
//! `Value` to JS: an int outside the safe range arrives as a bigint, data as a
//! Buffer, a map as a plain object.

use napi::sys::{TypedarrayType, ValueType};
use titan_pm::value::{Bytes, BytesMut, MAX_DEPTH, SHARE_DATA_BYTES};
use titan_pm::Value;

use crate::js::{self, Env, Js};

const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Why a value could not be converted, and where (`path` is filled on the way out).
pub struct Unsupported {
    segments: Vec<String>,
    /// Drop this many of the deepest segments (a cycle names where it closes).
    skip: usize,
    pub message: String,
}

impl Unsupported {
    fn new(message: impl Into<String>) -> Self {
        Unsupported { segments: Vec::new(), skip: 0, message: message.into() }
    }
    fn at(mut self, segment: String) -> Self {
        self.segments.push(segment);
        self
    }
    /// `root[1]["items"]`.
    pub fn path(&self, root: &str) -> String {
        self.segments.iter().skip(self.skip).rev().fold(root.to_string(), |p, s| p + s)
    }
}

impl From<napi::Error> for Unsupported {
    fn from(e: napi::Error) -> Self {
        Unsupported::new(e.reason.clone())
    }
}

/// Converts the elements of a JS array (call arguments): each is its own value.
pub fn list_from_js(env: Env, arr: Js) -> Result<Vec<Value>, Unsupported> {
    let n = js::array_len(env, arr);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        out.push(from_js(env, js::index(env, arr, i)?).map_err(|e| e.at(format!("[{i}]")))?);
    }
    Ok(out)
}

/// Converts one value (an argument, a result).
pub fn from_js(env: Env, v: Js) -> Result<Value, Unsupported> {
    Reader { env, limit: MAX_DEPTH, lossy: false, ancestors: Vec::new() }.value(v)
}

/// Converts an options object: its values (`dependencies`) get the full depth below it.
pub fn options_from_js(env: Env, v: Js) -> Result<Value, Unsupported> {
    Reader { env, limit: MAX_DEPTH + 1, lossy: false, ancestors: Vec::new() }.value(v)
}

/// Converts an error report from a worker runtime: text with lone surrogates is
/// kept (as U+FFFD) rather than losing the error.
pub fn report_from_js(env: Env, v: Js) -> Result<Value, Unsupported> {
    Reader { env, limit: MAX_DEPTH, lossy: true, ancestors: Vec::new() }.value(v)
}

/// One conversion: the lists and maps enclosing the current value (`ancestors`)
/// bound the recursion (a value inside more than `limit` of them is refused,
/// before recursing further) and reveal cycles.
struct Reader {
    env: Env,
    limit: usize,
    lossy: bool,
    ancestors: Vec<Js>,
}

impl Reader {
    fn value(&mut self, v: Js) -> Result<Value, Unsupported> {
        let env = self.env;
        if self.ancestors.len() > self.limit {
            return Err(self.too_deep(v));
        }
        Ok(match js::type_of(env, v) {
            ValueType::napi_undefined | ValueType::napi_null => Value::Null,
            ValueType::napi_boolean => Value::Bool(js::get_bool(env, v)),
            ValueType::napi_number => {
                let x = js::get_f64(env, v);
                if x.fract() == 0.0 && x.abs() <= MAX_SAFE {
                    Value::Int(x as i64)
                } else {
                    Value::Float(x)
                }
            }
            ValueType::napi_bigint => {
                Value::Int(js::get_bigint(env, v).ok_or_else(|| Unsupported::new("bigint out of the int64 range"))?)
            }
            ValueType::napi_string => Value::Text(self.text(v).map_err(Unsupported::new)?),
            ValueType::napi_object => self.object(v)?,
            ValueType::napi_function => return Err(Unsupported::new("a function cannot be sent")),
            ValueType::napi_symbol => return Err(Unsupported::new("a symbol cannot be sent")),
            _ => return Err(Unsupported::new("this kind of value cannot be sent")),
        })
    }

    /// A JS string as UTF-8; a lone surrogate is an error (or U+FFFD when `lossy`).
    fn text(&self, v: Js) -> Result<String, String> {
        let s = js::get_string(self.env, v).map_err(|e| e.reason)?;
        // Node writes a lone surrogate as U+FFFD: only then look at the UTF-16.
        if self.lossy || !s.contains('\u{fffd}') {
            return Ok(s);
        }
        let units = js::get_utf16(self.env, v).map_err(|e| e.reason)?;
        match lone_surrogate(&units) {
            Some((at, unit)) => Err(format!("a lone surrogate (\\u{unit:04x}) at index {at} is not valid unicode")),
            None => Ok(s),
        }
    }

    fn object(&mut self, v: Js) -> Result<Value, Unsupported> {
        let env = self.env;
        if js::is_array(env, v) {
            return self.nested(v, |r| {
                let n = js::array_len(env, v);
                let mut out = Vec::with_capacity(n as usize);
                for i in 0..n {
                    out.push(r.value(js::index(env, v, i)?).map_err(|e| e.at(format!("[{i}]")))?);
                }
                Ok(Value::List(out))
            });
        }
        if let Some((kind, bytes)) = js::typed_array(env, v) {
            if kind == TypedarrayType::uint8_array {
                // Copied: JS may change the array after the call returns.
                return Ok(Value::Data(Bytes::copy_from_slice(bytes)));
            }
            return Err(Unsupported::new(format!("a {} cannot be sent (use a Uint8Array or Buffer)", class_name(env, v)?)));
        }
        let proto = js::prototype(env, v)?;
        let plain = js::type_of(env, proto) == ValueType::napi_null
            || js::type_of(env, js::prototype(env, proto)?) == ValueType::napi_null;
        if !plain {
            let name = class_name(env, v)?;
            if name == "Map" {
                return self.nested(v, |r| r.map(v));
            }
            if has_methods(env, proto)? {
                return Err(Unsupported::new(format!("a {name} instance cannot be sent (it has methods; send plain data)")));
            }
        }
        self.nested(v, |r| {
            let keys = js::keys(env, v, true)?;
            let mut entries = Vec::with_capacity(keys.len());
            for k in keys {
                let key = r.text(k).map_err(|m| Unsupported::new(format!("a key: {m}")))?;
                let item = r.value(js::get_key(env, v, k)?).map_err(|e| e.at(format!("[{key:?}]")))?;
                entries.push((key, item));
            }
            Ok(Value::Map(entries))
        })
    }

    /// Converts the list or map `v` with `convert`, its items one level deeper.
    fn nested(&mut self, v: Js, convert: impl FnOnce(&mut Self) -> Result<Value, Unsupported>) -> Result<Value, Unsupported> {
        self.ancestors.push(v);
        let out = convert(self);
        self.ancestors.pop();
        out
    }

    /// `v` sits inside more lists and maps than the limit: an error, naming where the
    /// value contains itself if it does.
    fn too_deep(&self, v: Js) -> Unsupported {
        let chain: Vec<Js> = self.ancestors.iter().copied().chain(std::iter::once(v)).collect();
        // The first list or map that is also one of its own ancestors closes a cycle.
        for j in 1..chain.len() {
            if (0..j).any(|i| js::strict_equals(self.env, chain[i], chain[j])) {
                let mut u = Unsupported::new("a cyclic value (it contains itself) cannot be sent");
                u.skip = chain.len() - 1 - j; // `v` is `chain.len() - 1` segments deep
                return u;
            }
        }
        Unsupported::new(format!("nested deeper than {MAX_DEPTH} levels"))
    }

    fn map(&mut self, map: Js) -> Result<Value, Unsupported> {
        let env = self.env;
        // Array.from(map) gives [key, value] pairs.
        let array = js::get(env, js::global(env)?, "Array")?;
        let from = js::get(env, array, "from")?;
        let pairs = js::call(env, from, &[map])?;
        let mut entries = Vec::new();
        for i in 0..js::array_len(env, pairs) {
            let pair = js::index(env, pairs, i)?;
            let k = js::index(env, pair, 0)?;
            if js::type_of(env, k) != ValueType::napi_string {
                return Err(Unsupported::new("a Map key is not a string"));
            }
            let key = self.text(k).map_err(|m| Unsupported::new(format!("a key: {m}")))?;
            let item = self.value(js::index(env, pair, 1)?).map_err(|e| e.at(format!("[{key:?}]")))?;
            entries.push((key, item));
        }
        Ok(Value::Map(entries))
    }
}

/// The first unpaired surrogate in UTF-16 text: its index and code unit.
fn lone_surrogate(units: &[u16]) -> Option<(usize, u16)> {
    let mut at = 0;
    for c in char::decode_utf16(units.iter().copied()) {
        match c {
            Ok(c) => at += c.len_utf16(),
            Err(e) => return Some((at, e.unpaired_surrogate())),
        }
    }
    None
}

/// Whether a prototype chain (up to `Object.prototype`) defines methods besides `constructor`.
fn has_methods(env: Env, mut proto: Js) -> Result<bool, Unsupported> {
    loop {
        let next = js::prototype(env, proto)?;
        if js::type_of(env, next) == ValueType::napi_null {
            return Ok(false); // `proto` is Object.prototype
        }
        for k in js::keys(env, proto, false)? {
            if js::get_string(env, k)? != "constructor" && js::type_of(env, js::get_key(env, proto, k)?) == ValueType::napi_function {
                return Ok(true);
            }
        }
        proto = next;
    }
}

fn class_name(env: Env, v: Js) -> Result<String, Unsupported> {
    let ctor = js::get(env, v, "constructor")?;
    if js::type_of(env, ctor) != ValueType::napi_function {
        return Ok("object".into());
    }
    Ok(js::get_string(env, js::get(env, ctor, "name")?).unwrap_or_default())
}

pub fn to_js(env: Env, v: &Value) -> napi::Result<Js> {
    match v {
        Value::Null => js::null(env),
        Value::Bool(b) => js::boolean(env, *b),
        Value::Int(i) if (*i as f64).abs() <= MAX_SAFE => js::number(env, *i as f64),
        Value::Int(i) => js::bigint(env, *i),
        Value::Float(x) => js::number(env, *x),
        Value::Text(s) => js::string(env, s),
        Value::Data(d) => js::buffer(env, d),
        Value::List(items) => list_to_js(env, items),
        Value::Map(entries) => {
            let obj = js::object(env)?;
            for (k, item) in entries {
                js::set(env, obj, k, to_js(env, item)?)?;
            }
            Ok(obj)
        }
    }
}

/// [`to_js`], consuming the value: large data is handed to its Buffer without a copy.
pub fn into_js(env: Env, v: Value) -> napi::Result<Js> {
    match v {
        // Data of `SHARE_DATA_BYTES` or more becomes a Buffer over the value's own
        // bytes (no copy); shorter data is copied (cheaper than an external
        // buffer's bookkeeping). JS may write to the Buffer, so it gets bytes no
        // one else holds: `BytesMut::from` takes them over when this value is
        // their only holder (as a value just read off the wire is), else copies.
        Value::Data(d) if d.len() >= SHARE_DATA_BYTES => js::buffer_from_bytes(env, BytesMut::from(d)),
        Value::List(items) => list_into_js(env, items),
        Value::Map(entries) => {
            let obj = js::object(env)?;
            for (k, item) in entries {
                js::set(env, obj, &k, into_js(env, item)?)?;
            }
            Ok(obj)
        }
        other => to_js(env, &other),
    }
}

/// [`list_to_js`], consuming the items.
pub fn list_into_js(env: Env, items: Vec<Value>) -> napi::Result<Js> {
    let arr = js::array(env, items.len())?;
    for (i, item) in items.into_iter().enumerate() {
        js::set_index(env, arr, i as u32, into_js(env, item)?)?;
    }
    Ok(arr)
}

pub fn list_to_js(env: Env, items: &[Value]) -> napi::Result<Js> {
    let arr = js::array(env, items.len())?;
    for (i, item) in items.iter().enumerate() {
        js::set_index(env, arr, i as u32, to_js(env, item)?)?;
    }
    Ok(arr)
}
