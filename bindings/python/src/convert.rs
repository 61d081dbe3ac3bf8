//! Python values <-> the core's `Value`, with the brief's mapping: None, bool,
//! int (must fit 64 bits), float, str, bytes, list/tuple, dict with str keys.
//! Anything else is a `SerializationError` naming the path
//! (`args[1]["items"][3]`), found before anything is sent.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use titan_pm::{Error, Value};

/// One step of a path, collected while an error unwinds.
enum Step {
    Index(usize),
    Key(String),
}

struct Bad {
    steps: Vec<Step>,
    message: String,
}

fn bad(message: String) -> Bad {
    Bad { steps: Vec::new(), message }
}

/// Converts `obj`; `root` names it in errors ("args", "result", "dependencies").
pub fn to_value(obj: &Bound<'_, PyAny>, root: &str) -> Result<Value, Error> {
    convert(obj, 0).map_err(|b| Error::Serialization { path: path(root, &b.steps), message: b.message })
}

/// Converts call arguments; argument `i` is named `args[i]`.
pub fn args_to_values(args: &Bound<'_, PyTuple>) -> Result<Vec<Value>, Error> {
    args.iter().enumerate().map(|(i, a)| to_value(&a, &format!("args[{i}]"))).collect()
}

fn path(root: &str, steps: &[Step]) -> String {
    let mut p = root.to_string();
    for s in steps.iter().rev() {
        match s {
            Step::Index(i) => p.push_str(&format!("[{i}]")),
            Step::Key(k) => p.push_str(&format!("[{k:?}]")),
        }
    }
    p
}

const MAX_DEPTH: usize = 200;

fn convert(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Bad> {
    if depth > MAX_DEPTH {
        return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
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
        return s.to_cow().map(|s| Value::Text(s.into_owned())).map_err(|e| bad(format!("invalid str: {e}")));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Data(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Data(b.to_vec()));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return list(l.iter(), l.len(), depth);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return list(t.iter(), t.len(), depth);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                let type_name = type_name(&k);
                return Err(bad(format!("dict key {} is {type_name}; keys must be str", repr(&k))));
            };
            let key = key.to_cow().map_err(|e| bad(format!("invalid str key: {e}")))?.into_owned();
            match convert(&v, depth + 1) {
                Ok(v) => entries.push((key, v)),
                Err(mut b) => {
                    b.steps.push(Step::Key(key));
                    return Err(b);
                }
            }
        }
        return Ok(Value::Map(entries));
    }
    Err(bad(format!(
        "{} is not supported (use None, bool, int, float, str, bytes, list, tuple or dict)",
        type_name(obj)
    )))
}

fn list<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>, len: usize, depth: usize) -> Result<Value, Bad> {
    let mut out = Vec::with_capacity(len);
    for (i, item) in items.enumerate() {
        match convert(&item, depth + 1) {
            Ok(v) => out.push(v),
            Err(mut b) => {
                b.steps.push(Step::Index(i));
                return Err(b);
            }
        }
    }
    Ok(Value::List(out))
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
