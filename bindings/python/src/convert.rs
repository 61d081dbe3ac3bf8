//! Python values <-> the core's `Value`, with the brief's mapping: None, bool,
//! int (must fit 64 bits), float, str, bytes, list/tuple, dict with str keys.
//! Anything else is a `SerializationError` naming the path
//! (`args[1]["items"][3]`), found before anything is sent: other types, a str
//! with a lone surrogate, lists and dicts nested deeper than the core's
//! `MAX_DEPTH` (checked before recursing), a value that contains itself.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use titan_pm::value::{Bytes, MAX_DEPTH, SHARE_DATA_BYTES};
use titan_pm::{Error, Value};

/// One step of a path, collected while an error unwinds.
enum Step {
    Index(usize),
    Key(String),
}

struct Bad {
    steps: Vec<Step>,
    /// Drop this many of the deepest steps (a cycle names where it closes).
    skip: usize,
    message: String,
}

fn bad(message: String) -> Bad {
    Bad { steps: Vec::new(), skip: 0, message }
}

/// Converts `obj`; `root` names it in errors ("args", "result", "dependencies").
pub fn to_value(obj: &Bound<'_, PyAny>, root: &str) -> Result<Value, Error> {
    let mut reader = Reader { ancestors: Vec::new(), limit: MAX_DEPTH };
    reader.convert(obj).map_err(|b| Error::Serialization { path: path(root, &b), message: b.message })
}

/// Converts an options dict: its values (`dependencies`) get the full depth below it.
pub fn options_to_value(obj: &Bound<'_, PyAny>, root: &str) -> Result<Value, Error> {
    let mut reader = Reader { ancestors: Vec::new(), limit: MAX_DEPTH + 1 };
    reader.convert(obj).map_err(|b| Error::Serialization { path: path(root, &b), message: b.message })
}

/// Converts call arguments; argument `i` is named `args[i]`.
pub fn args_to_values(args: &Bound<'_, PyTuple>) -> Result<Vec<Value>, Error> {
    args.iter().enumerate().map(|(i, a)| to_value(&a, &format!("args[{i}]"))).collect()
}

fn path(root: &str, b: &Bad) -> String {
    let mut p = root.to_string();
    for s in b.steps.iter().skip(b.skip).rev() {
        match s {
            Step::Index(i) => p.push_str(&format!("[{i}]")),
            Step::Key(k) => p.push_str(&format!("[{k:?}]")),
        }
    }
    p
}

/// One conversion: the lists and dicts enclosing the current value (`ancestors`)
/// bound the recursion (a value inside more than `limit` of them is refused,
/// before recursing further) and reveal cycles.
struct Reader {
    ancestors: Vec<*mut pyo3::ffi::PyObject>,
    limit: usize,
}

impl Reader {
    fn convert(&mut self, obj: &Bound<'_, PyAny>) -> Result<Value, Bad> {
        if self.ancestors.len() > self.limit {
            return Err(self.too_deep(obj));
        }
        if obj.is_none() {
            return Ok(Value::Null);
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Value::Bool(b.is_true()));
        }
        if obj.cast::<PyInt>().is_ok() {
            return obj.extract::<i64>().map(Value::Int).map_err(|_| bad("int does not fit in 64 bits".into()));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(Value::Float(f.value()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return text(s).map(Value::Text).map_err(bad);
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Value::Data(data(b)));
        }
        if let Ok(b) = obj.cast::<PyByteArray>() {
            // Mutable: the caller may change it while the call runs, so copy.
            return Ok(Value::Data(Bytes::from(b.to_vec())));
        }
        if let Ok(l) = obj.cast::<PyList>() {
            return self.nested(obj, |r| r.list(l.iter(), l.len()));
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return self.nested(obj, |r| r.list(t.iter(), t.len()));
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            return self.nested(obj, |r| {
                let mut entries = Vec::with_capacity(d.len());
                for (k, v) in d.iter() {
                    let Ok(key) = k.cast::<PyString>() else {
                        let type_name = type_name(&k);
                        return Err(bad(format!("dict key {} is {type_name}; keys must be str", repr(&k))));
                    };
                    let key = text(key).map_err(|m| bad(format!("a key: {m}")))?;
                    match r.convert(&v) {
                        Ok(v) => entries.push((key, v)),
                        Err(mut b) => {
                            b.steps.push(Step::Key(key));
                            return Err(b);
                        }
                    }
                }
                Ok(Value::Map(entries))
            });
        }
        Err(bad(format!(
            "{} is not supported (use None, bool, int, float, str, bytes, list, tuple or dict)",
            type_name(obj)
        )))
    }

    fn list<'py>(&mut self, items: impl Iterator<Item = Bound<'py, PyAny>>, len: usize) -> Result<Value, Bad> {
        let mut out = Vec::with_capacity(len);
        for (i, item) in items.enumerate() {
            match self.convert(&item) {
                Ok(v) => out.push(v),
                Err(mut b) => {
                    b.steps.push(Step::Index(i));
                    return Err(b);
                }
            }
        }
        Ok(Value::List(out))
    }

    /// `obj` sits inside more lists and dicts than the limit: an error, naming
    /// where the value contains itself if it does.
    fn too_deep(&self, obj: &Bound<'_, PyAny>) -> Bad {
        let chain: Vec<_> = self.ancestors.iter().copied().chain(std::iter::once(obj.as_ptr())).collect();
        // The first list or dict that is also one of its own ancestors closes a cycle.
        if let Some(j) = (1..chain.len()).find(|&j| chain[..j].contains(&chain[j])) {
            let mut b = bad("a cyclic value (it contains itself) cannot be sent".into());
            b.skip = chain.len() - 1 - j; // `obj` is `chain.len() - 1` steps deep
            return b;
        }
        bad(format!("nested deeper than {MAX_DEPTH} levels"))
    }

    /// Converts the list or dict `obj` with `convert`, its items one level deeper.
    fn nested(&mut self, obj: &Bound<'_, PyAny>, convert: impl FnOnce(&mut Self) -> Result<Value, Bad>) -> Result<Value, Bad> {
        self.ancestors.push(obj.as_ptr());
        let out = convert(self);
        self.ancestors.pop();
        out
    }
}

/// A `bytes` object's content: large ones are shared, not copied (see [`Shared`]);
/// below `SHARE_DATA_BYTES` a copy is cheaper than the owner's allocation.
fn data(b: &Bound<'_, PyBytes>) -> Bytes {
    let slice = b.as_bytes();
    if slice.len() < SHARE_DATA_BYTES {
        return Bytes::copy_from_slice(slice);
    }
    Bytes::from_owner(Shared { ptr: slice.as_ptr(), len: slice.len(), _owner: b.clone().unbind() })
}

/// A Python `bytes` object lent to the core: the `Bytes` built over it reads
/// the object's own buffer and holds a reference that keeps it alive.
///
/// Safety: a `bytes` object is immutable and its buffer is part of the object
/// (CPython allocates it inline and never moves or frees it while the object
/// lives), so the pointer and length taken while attached to the interpreter
/// stay valid and unchanged for as long as `_owner` holds its reference, and
/// reading them needs no interpreter lock. The last `Bytes` may be dropped on
/// any thread (the engine's, after the call is written): dropping a `Py<T>`
/// while not attached does not touch Python; pyo3 0.30 queues the decref in its
/// reference pool and applies it the next time any thread attaches (every call
/// into this module does). After interpreter shutdown the queue is never drained,
/// which only leaks the object.
struct Shared {
    ptr: *const u8,
    len: usize,
    _owner: Py<PyBytes>,
}

// Safety: see above; the pointer is only read, and `Py<PyBytes>` is itself Send.
unsafe impl Send for Shared {}

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        // Safety: see the type's comment.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A str as UTF-8; a lone surrogate (which UTF-8 cannot hold) is an error naming it.
fn text(s: &Bound<'_, PyString>) -> Result<String, String> {
    let e = match s.to_cow() {
        Ok(t) => return Ok(t.into_owned()),
        Err(e) => e,
    };
    let py = s.py();
    let lone = || -> PyResult<(usize, u32)> {
        let at: usize = e.value(py).getattr("start")?.extract()?;
        let code: u32 = py.import("builtins")?.getattr("ord")?.call1((s.get_item(at)?,))?.extract()?;
        Ok((at, code))
    };
    Err(match lone() {
        Ok((at, code)) if (0xD800..0xE000).contains(&code) => {
            format!("a lone surrogate (\\u{code:04x}) at index {at} is not valid unicode")
        }
        _ => format!("invalid str: {e}"),
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into())
}

/// Converts a `Value` to the Python object it stands for.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Text(s) => PyString::new(py, s).into_any(),
        Value::Data(d) => PyBytes::new(py, d).into_any(),
        Value::List(items) => {
            let l = PyList::empty(py);
            for item in items {
                l.append(to_py(py, item)?)?;
            }
            l.into_any()
        }
        Value::Map(entries) => {
            let d = PyDict::new(py);
            for (k, item) in entries {
                d.set_item(k, to_py(py, item)?)?;
            }
            d.into_any()
        }
    })
}

/// Sends `obj` through the codec and back (what a worker would receive).
#[pyfunction]
pub fn roundtrip<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let v = to_value(obj, "value").map_err(crate::errors::to_py)?;
    to_py(py, &v)
}
