//! A threadsafe function: the one way any thread hands a message to a JS
//! thread. Each message is delivered, in order, to a Rust closure running on
//! that JS thread (which usually calls the JS callback given at creation).
//!
//! Survives its JS thread: when a worker thread's environment is torn down,
//! Node finalizes the function, and later sends report `false` instead of
//! touching freed memory.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr;
use std::sync::{Arc, Mutex};

use napi::sys;

use crate::js::{self, Env, Js};

type Deliver<M> = Box<dyn Fn(Env, Js, M, &KeepAlive)>;

/// Lets a delivery say whether the function keeps its JS thread's loop alive.
pub struct KeepAlive<'a> {
    raw: &'a Mutex<Option<Raw>>,
    env: Env,
}

impl KeepAlive<'_> {
    pub fn set(&self, on: bool) {
        keep_alive(self.raw, self.env, on);
    }
}

fn keep_alive(raw: &Mutex<Option<Raw>>, env: Env, on: bool) {
    if let Some(raw) = raw.lock().unwrap().as_ref() {
        unsafe {
            if on {
                sys::napi_ref_threadsafe_function(env, raw.0);
            } else {
                sys::napi_unref_threadsafe_function(env, raw.0);
            }
        }
    }
}

struct Raw(sys::napi_threadsafe_function);
// SAFETY: Node-API threadsafe functions are made to be called from any thread.
unsafe impl Send for Raw {}

struct Shared<M> {
    raw: Mutex<Option<Raw>>,
    deliver: Deliver<M>,
}

pub struct Tsfn<M: Send + 'static> {
    shared: Arc<Shared<M>>,
    _m: PhantomData<fn(M)>,
}

// SAFETY: `deliver` only runs on the owning JS thread; the raw handle is behind a mutex.
unsafe impl<M: Send> Send for Tsfn<M> {}
unsafe impl<M: Send> Sync for Tsfn<M> {}
unsafe impl<M: Send> Send for Shared<M> {}
unsafe impl<M: Send> Sync for Shared<M> {}

unsafe extern "C" fn call_js<M: Send + 'static>(env: Env, callback: Js, context: *mut c_void, data: *mut c_void) {
    let message = Box::from_raw(data as *mut M);
    if env.is_null() {
        return; // the environment is going away: drop the message
    }
    let shared = &*(context as *const Shared<M>);
    (shared.deliver)(env, callback, *message, &KeepAlive { raw: &shared.raw, env });
    js::report_pending(env);
}

unsafe extern "C" fn finalize<M: Send + 'static>(_env: Env, data: *mut c_void, _hint: *mut c_void) {
    let shared = Arc::from_raw(data as *const Shared<M>);
    shared.raw.lock().unwrap().take();
}

impl<M: Send + 'static> Tsfn<M> {
    /// Created on the JS thread of `env`; `weak` ones do not keep its event loop alive.
    pub fn new(
        env: Env,
        callback: Option<Js>,
        weak: bool,
        deliver: impl Fn(Env, Js, M, &KeepAlive) + 'static,
    ) -> napi::Result<Self> {
        let shared = Arc::new(Shared { raw: Mutex::new(None), deliver: Box::new(deliver) });
        let name = js::string(env, "titan-pm")?;
        let context = Arc::as_ptr(&shared) as *mut c_void;
        let finalize_data = Arc::into_raw(shared.clone()) as *mut c_void;
        let mut raw = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                env,
                callback.unwrap_or(ptr::null_mut()),
                ptr::null_mut(),
                name,
                0,
                1,
                finalize_data,
                Some(finalize::<M>),
                context,
                Some(call_js::<M>),
                &mut raw,
            )
        };
        if status != sys::Status::napi_ok {
            unsafe { drop(Arc::from_raw(finalize_data as *const Shared<M>)) };
            return Err(napi::Error::from_reason("cannot create a threadsafe function"));
        }
        if weak {
            unsafe { sys::napi_unref_threadsafe_function(env, raw) };
        }
        *shared.raw.lock().unwrap() = Some(Raw(raw));
        Ok(Tsfn { shared, _m: PhantomData })
    }

    /// Queues `message` for the JS thread; `false` if that thread is gone.
    pub fn send(&self, message: M) -> bool {
        let guard = self.shared.raw.lock().unwrap();
        let Some(raw) = guard.as_ref() else { return false };
        let data = Box::into_raw(Box::new(message));
        let status = unsafe {
            sys::napi_call_threadsafe_function(raw.0, data.cast(), sys::ThreadsafeFunctionCallMode::nonblocking)
        };
        if status != sys::Status::napi_ok {
            unsafe { drop(Box::from_raw(data)) };
            return false;
        }
        true
    }

    /// Whether pending messages keep the JS thread's event loop alive. JS thread only.
    pub fn keep_alive(&self, env: Env, on: bool) {
        keep_alive(&self.shared.raw, env, on);
    }
}

impl<M: Send + 'static> Drop for Tsfn<M> {
    fn drop(&mut self) {
        if let Some(raw) = self.shared.raw.lock().unwrap().take() {
            unsafe { sys::napi_release_threadsafe_function(raw.0, sys::ThreadsafeFunctionReleaseMode::release) };
        }
    }
}
