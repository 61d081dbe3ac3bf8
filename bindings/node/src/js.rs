//! Thin wrappers over the raw Node-API calls the bridge makes, so the rest of
//! the crate reads as plain Rust. Every function must run on the JS thread
//! that owns `env` (napi-rs hands us that env in each exported function and in
//! every threadsafe-function delivery).

use std::ffi::c_void;
use std::ptr;

use napi::sys;
use titan_pm::value::BytesMut;

pub type Env = sys::napi_env;
pub type Js = sys::napi_value;

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(napi::Status::from(status), format!("node-api {what} failed")))
    }
}

macro_rules! make {
    ($what:literal, |$out:ident| $call:expr) => {{
        let mut $out: Js = ptr::null_mut();
        check(unsafe { $call }, $what)?;
        napi::Result::<Js>::Ok($out)
    }};
}

pub fn type_of(env: Env, v: Js) -> i32 {
    let mut t = 0;
    unsafe { sys::napi_typeof(env, v, &mut t) };
    t
}

pub fn null(env: Env) -> napi::Result<Js> {
    make!("get_null", |out| sys::napi_get_null(env, &mut out))
}

pub fn undefined(env: Env) -> napi::Result<Js> {
    make!("get_undefined", |out| sys::napi_get_undefined(env, &mut out))
}

pub fn boolean(env: Env, b: bool) -> napi::Result<Js> {
    make!("get_boolean", |out| sys::napi_get_boolean(env, b, &mut out))
}

pub fn number(env: Env, x: f64) -> napi::Result<Js> {
    make!("create_double", |out| sys::napi_create_double(env, x, &mut out))
}

pub fn string(env: Env, s: &str) -> napi::Result<Js> {
    make!("create_string", |out| sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out))
}

pub fn bigint(env: Env, x: i64) -> napi::Result<Js> {
    make!("create_bigint", |out| sys::napi_create_bigint_int64(env, x, &mut out))
}

pub fn buffer(env: Env, bytes: &[u8]) -> napi::Result<Js> {
    let mut data: *mut c_void = ptr::null_mut();
    make!("create_buffer", |out| sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut out))
}

/// A Buffer over `bytes` without copying them: the Buffer owns them (uniquely, so
/// JS may write to them) and frees them when collected (the finalizer only drops
/// them, so any thread may run it).
pub fn buffer_from_bytes(env: Env, bytes: BytesMut) -> napi::Result<Js> {
    if bytes.is_empty() {
        return buffer(env, &bytes);
    }
    unsafe extern "C" fn free(_env: Env, _data: *mut c_void, hint: *mut c_void) {
        drop(Box::from_raw(hint as *mut BytesMut));
    }
    let mut owner = Box::new(bytes);
    let (data, len) = (owner.as_mut_ptr() as *mut c_void, owner.len());
    let hint = Box::into_raw(owner) as *mut c_void;
    let mut out: Js = ptr::null_mut();
    let status = unsafe { sys::napi_create_external_buffer(env, len, data, Some(free), hint, &mut out) };
    if status != sys::Status::napi_ok {
        // Not created (e.g. a runtime that refuses external memory): copy instead.
        let owner = unsafe { Box::from_raw(hint as *mut BytesMut) };
        return buffer(env, &owner);
    }
    Ok(out)
}

pub fn array(env: Env, len: usize) -> napi::Result<Js> {
    make!("create_array", |out| sys::napi_create_array_with_length(env, len, &mut out))
}

pub fn object(env: Env) -> napi::Result<Js> {
    make!("create_object", |out| sys::napi_create_object(env, &mut out))
}

pub fn error(env: Env, message: &str) -> napi::Result<Js> {
    let msg = string(env, message)?;
    make!("create_error", |out| sys::napi_create_error(env, ptr::null_mut(), msg, &mut out))
}

pub fn set(env: Env, obj: Js, key: &str, v: Js) -> napi::Result<()> {
    let k = string(env, key)?;
    check(unsafe { sys::napi_set_property(env, obj, k, v) }, "set_property")
}

pub fn set_index(env: Env, arr: Js, i: u32, v: Js) -> napi::Result<()> {
    check(unsafe { sys::napi_set_element(env, arr, i, v) }, "set_element")
}

pub fn get(env: Env, obj: Js, key: &str) -> napi::Result<Js> {
    let k = string(env, key)?;
    make!("get_property", |out| sys::napi_get_property(env, obj, k, &mut out))
}

pub fn get_key(env: Env, obj: Js, key: Js) -> napi::Result<Js> {
    make!("get_property", |out| sys::napi_get_property(env, obj, key, &mut out))
}

pub fn index(env: Env, arr: Js, i: u32) -> napi::Result<Js> {
    make!("get_element", |out| sys::napi_get_element(env, arr, i, &mut out))
}

pub fn get_bool(env: Env, v: Js) -> bool {
    let mut b = false;
    unsafe { sys::napi_get_value_bool(env, v, &mut b) };
    b
}

pub fn get_f64(env: Env, v: Js) -> f64 {
    let mut x = 0.0;
    unsafe { sys::napi_get_value_double(env, v, &mut x) };
    x
}

/// The bigint's value, if it fits an i64.
pub fn get_bigint(env: Env, v: Js) -> Option<i64> {
    let (mut x, mut lossless) = (0i64, false);
    unsafe { sys::napi_get_value_bigint_int64(env, v, &mut x, &mut lossless) };
    lossless.then_some(x)
}

pub fn get_string(env: Env, v: Js) -> napi::Result<String> {
    let mut len = 0usize;
    check(unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) }, "get_string")?;
    let mut buf = vec![0u8; len + 1];
    check(unsafe { sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), len + 1, &mut len) }, "get_string")?;
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| napi::Error::from_reason(e.to_string()))
}

/// A string's UTF-16 code units, as JS holds them (lone surrogates included).
pub fn get_utf16(env: Env, v: Js) -> napi::Result<Vec<u16>> {
    let mut len = 0usize;
    check(unsafe { sys::napi_get_value_string_utf16(env, v, ptr::null_mut(), 0, &mut len) }, "get_string")?;
    let mut buf = vec![0u16; len + 1];
    check(unsafe { sys::napi_get_value_string_utf16(env, v, buf.as_mut_ptr(), len + 1, &mut len) }, "get_string")?;
    buf.truncate(len);
    Ok(buf)
}

/// `a === b`.
pub fn strict_equals(env: Env, a: Js, b: Js) -> bool {
    let mut eq = false;
    unsafe { sys::napi_strict_equals(env, a, b, &mut eq) };
    eq
}

pub fn is_array(env: Env, v: Js) -> bool {
    let mut b = false;
    unsafe { sys::napi_is_array(env, v, &mut b) };
    b
}

pub fn array_len(env: Env, v: Js) -> u32 {
    let mut n = 0;
    unsafe { sys::napi_get_array_length(env, v, &mut n) };
    n
}

/// A typed array's element type and bytes (a Buffer is a Uint8Array).
pub fn typed_array<'a>(env: Env, v: Js) -> Option<(i32, &'a [u8])> {
    let mut is = false;
    unsafe { sys::napi_is_typedarray(env, v, &mut is) };
    if !is {
        return None;
    }
    let (mut kind, mut len, mut data, mut buf, mut off) = (0, 0usize, ptr::null_mut::<c_void>(), ptr::null_mut(), 0usize);
    unsafe { sys::napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, &mut buf, &mut off) };
    let bytes = if len == 0 || data.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(data as *const u8, len) } };
    Some((kind, bytes))
}

pub fn prototype(env: Env, v: Js) -> napi::Result<Js> {
    make!("get_prototype", |out| sys::napi_get_prototype(env, v, &mut out))
}

/// Own property names (strings only); `enumerable_only` for the data of an object.
pub fn keys(env: Env, obj: Js, enumerable_only: bool) -> napi::Result<Vec<Js>> {
    let filter = sys::KeyFilter::skip_symbols | if enumerable_only { sys::KeyFilter::enumerable } else { 0 };
    let names: Js = make!("get_all_property_names", |out| sys::napi_get_all_property_names(
        env,
        obj,
        sys::KeyCollectionMode::own_only,
        filter,
        sys::KeyConversion::numbers_to_strings,
        &mut out
    ))?;
    (0..array_len(env, names)).map(|i| index(env, names, i)).collect()
}

/// `f(...args)` with `this` undefined; a thrown exception stays pending and is an `Err`.
pub fn call(env: Env, f: Js, args: &[Js]) -> napi::Result<Js> {
    let this = undefined(env)?;
    make!("call_function", |out| sys::napi_call_function(env, this, f, args.len(), args.as_ptr(), &mut out))
}

/// Reports a pending exception (from a callback we invoked) as uncaught, instead of losing it.
pub fn report_pending(env: Env) {
    let mut pending = false;
    unsafe { sys::napi_is_exception_pending(env, &mut pending) };
    if pending {
        let mut e = ptr::null_mut();
        unsafe {
            sys::napi_get_and_clear_last_exception(env, &mut e);
            sys::napi_fatal_exception(env, e);
        }
    }
}

/// A promise and the deferred that settles it.
pub struct Deferred(sys::napi_deferred);

// SAFETY: the deferred is only settled on its JS thread (through a threadsafe function).
unsafe impl Send for Deferred {}

pub fn promise(env: Env) -> napi::Result<(Deferred, Js)> {
    let mut d = ptr::null_mut();
    let p = make!("create_promise", |out| sys::napi_create_promise(env, &mut d, &mut out))?;
    Ok((Deferred(d), p))
}

impl Deferred {
    pub fn settle(self, env: Env, outcome: Result<Js, Js>) {
        unsafe {
            match outcome {
                Ok(v) => sys::napi_resolve_deferred(env, self.0, v),
                Err(e) => sys::napi_reject_deferred(env, self.0, e),
            };
        }
    }
}

pub fn global(env: Env) -> napi::Result<Js> {
    make!("get_global", |out| sys::napi_get_global(env, &mut out))
}
