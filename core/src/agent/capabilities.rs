//! What a worker was given by its host at `init`: processes it may call
//! (@InjectProcess, sidecars), each a Cap'n Proto capability the host serves,
//! and its class's host-held shared state (@SharedState). A worker can reach
//! exactly the processes it was given: there is nothing to address others with.
//!
//! ```no_run
//! use titan_pm::agent::WorkerDef;
//! let def = WorkerDef::new("orders", "1.0.0");
//! let caps = def.capabilities(); // filled in at init
//! let def = def.method("place", move |(user,): (u64,)| {
//!     let caps = caps.clone();
//!     async move {
//!         let name: String = caps.process("users")?.call("name", (user,)).await?;
//!         let n = caps.shared()?.add("orders", 1).await?;
//!         Ok(format!("order {n:?} for {name}"))
//!     }
//! });
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::ErrorInfo;
use crate::titan_capnp::{caller, shared_state, worker};
use crate::value::{self, Value};

/// The capabilities a worker holds; clone it into methods before `init` fills it.
#[derive(Clone, Default)]
pub struct Capabilities {
    inner: Rc<RefCell<Inner>>,
}

#[derive(Default)]
struct Inner {
    processes: BTreeMap<String, caller::Client>,
    shared: Option<shared_state::Client>,
    /// Where [`Capabilities::replace`] moved these contents (processes given later go there).
    moved_to: Option<Rc<RefCell<Inner>>>,
}

impl Capabilities {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process given under `name`.
    pub fn process(&self, name: &str) -> Result<ProcessRef> {
        let inner = self.inner.borrow();
        match inner.processes.get(name) {
            Some(c) => Ok(ProcessRef { name: name.to_string(), client: c.clone() }),
            None => {
                let given: Vec<&str> = inner.processes.keys().map(String::as_str).collect();
                let given = if given.is_empty() { "none".to_string() } else { given.join(", ") };
                Err(Error::Config(format!("no process named {name:?} was given to this worker (given: {given})")))
            }
        }
    }

    /// The names of the processes this worker was given.
    pub fn process_names(&self) -> Vec<String> {
        self.inner.borrow().processes.keys().cloned().collect()
    }

    /// This worker's class's shared state.
    pub fn shared(&self) -> Result<SharedRef> {
        let shared = self.inner.borrow().shared.clone();
        shared.map(|client| SharedRef { client }).ok_or_else(|| Error::Config("this worker was given no shared state (its host is older)".into()))
    }

    /// Takes `other`'s contents (the agent's fresh set, at init) into this shared handle.
    pub(crate) fn replace(&self, other: Capabilities) {
        if !Rc::ptr_eq(&self.inner, &other.inner) {
            let taken = std::mem::take(&mut *other.inner.borrow_mut());
            *self.inner.borrow_mut() = taken;
            other.inner.borrow_mut().moved_to = Some(self.inner.clone());
        }
    }

    /// Takes the processes a call was given (handles the host passed as its arguments).
    pub(crate) fn give(&self, grants: capnp::struct_list::Reader<'_, crate::titan_capnp::grant::Owned>) -> capnp::Result<()> {
        let target = self.inner.borrow().moved_to.clone().unwrap_or_else(|| self.inner.clone());
        let mut inner = target.borrow_mut();
        for g in grants {
            let name = g.get_name()?.to_string()?;
            if !inner.processes.contains_key(&name) && inner.processes.len() >= MAX_GIVEN {
                return Err(capnp::Error::failed(format!("a worker holds at most {MAX_GIVEN} given processes")));
            }
            inner.processes.insert(name, g.get_caller()?);
        }
        Ok(())
    }

    /// Reads what the host handed over in `init`.
    pub(crate) fn fill(&self, params: worker::init_params::Reader<'_>) -> capnp::Result<()> {
        let mut inner = self.inner.borrow_mut();
        if params.has_processes() {
            for g in params.get_processes()? {
                inner.processes.insert(g.get_name()?.to_string()?, g.get_caller()?);
            }
        }
        if params.has_shared() {
            inner.shared = Some(params.get_shared()?);
        }
        Ok(())
    }
}

/// A process this worker may call, with the host's error kinds.
#[derive(Clone)]
pub struct ProcessRef {
    name: String,
    client: caller::Client,
}

impl ProcessRef {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `method` with a tuple of arguments and decodes the result.
    pub async fn call<R: serde::de::DeserializeOwned>(&self, method: &str, args: impl serde::Serialize) -> Result<R> {
        value::from_value(self.call_value(method, value::to_args(&args)?, None).await?)
    }

    /// Calls with converted arguments; `timeout` `None` takes the process's default deadline.
    pub async fn call_value(&self, method: &str, args: Vec<Value>, timeout: Option<Duration>) -> Result<Value> {
        use crate::titan_capnp::call_result::Which;
        let mut req = self.client.call_request();
        {
            let mut p = req.get();
            p.set_method(method);
            value::write_list(&args, p.reborrow().init_args(args.len() as u32));
            p.set_timeout_ms(timeout.map(|t| t.as_millis().max(1) as u64).unwrap_or(0));
            // Inside a call this worker serves, the call joins that call's trace as its child.
            if let Some(t) = crate::policy::trace::current() {
                p.set_trace_id(t.trace_id.as_str());
                p.set_span_id(t.span_id.as_str());
            }
        }
        let reply = req.send().promise.await.map_err(rpc)?;
        let result = reply.get().and_then(|r| r.get_result()).map_err(rpc)?;
        match result.which().map_err(|e| rpc(e.into()))? {
            Which::Ok(v) => value::read(v.map_err(rpc)?, "result"),
            Which::Error(e) => Err(ErrorInfo::read(e.map_err(rpc)?)?.into_error()),
        }
    }
}

/// The host-held shared properties of this worker's class. Each operation is
/// atomic on its own; a read sees every write that completed before it.
#[derive(Clone)]
pub struct SharedRef {
    client: shared_state::Client,
}

impl SharedRef {
    /// The property's value (`Null` if never set).
    pub async fn get(&self, property: &str) -> Result<Value> {
        let mut req = self.client.get_request();
        req.get().set_property(property);
        let reply = req.send().promise.await.map_err(rpc)?;
        value::read(reply.get().and_then(|r| r.get_value()).map_err(rpc)?, property)
    }

    pub async fn set(&self, property: &str, v: Value) -> Result<()> {
        let mut req = self.client.set_request();
        req.get().set_property(property);
        value::write(&v, req.get().init_value());
        req.send().promise.await.map_err(rpc)?;
        Ok(())
    }

    /// Adds `delta` (an int or a float; a missing value counts as 0) in one
    /// step and returns the new value: concurrent increments are never lost.
    pub async fn add(&self, property: &str, delta: impl Into<Value>) -> Result<Value> {
        let mut req = self.client.add_request();
        req.get().set_property(property);
        value::write(&delta.into(), req.get().init_delta());
        let reply = req.send().promise.await.map_err(rpc)?;
        value::read(reply.get().and_then(|r| r.get_value()).map_err(rpc)?, property)
    }

    /// Sets the property to `v` if it was never set (the first instance seeds
    /// the initial value), in one step; returns its value.
    pub async fn init(&self, property: &str, v: Value) -> Result<Value> {
        let mut req = self.client.init_request();
        req.get().set_property(property);
        value::write(&v, req.get().init_value());
        let reply = req.send().promise.await.map_err(rpc)?;
        value::read(reply.get().and_then(|r| r.get_value()).map_err(rpc)?, property)
    }
}

/// A failure of the capability itself: the host went away, or refused the operation.
fn rpc(e: capnp::Error) -> Error {
    match e.kind {
        capnp::ErrorKind::Disconnected => Error::ManagerShutDown,
        _ => Error::Config(e.extra.trim_start_matches("invalid configuration: ").to_string()),
    }
}

/// Operations a [`Remote`] hands to the agent's thread.
pub(crate) enum Op {
    Call { process: String, method: String, args: Vec<Value>, timeout: Option<Duration>, trace: Option<TraceContext> },
    Get { property: String },
    Set { property: String, value: Value },
    Add { property: String, delta: Value },
    Init { property: String, value: Value },
}

/// Where an operation's outcome goes; run on the agent's thread.
pub type Reply = Box<dyn FnOnce(Result<Value>) + Send>;

/// Processes one worker may hold (given at init or with calls); past it, a call giving more fails.
pub const MAX_GIVEN: usize = 1024;

/// Operations a worker's runtime may have waiting on the agent at once; past it one fails at once.
pub const MAX_REMOTE_IN_FLIGHT: usize = 4096;

/// [`Capabilities`] for a runtime whose code runs on other threads (a Python or
/// JS worker): a `Send` handle whose operations run on the agent's thread,
/// where the capabilities live, each replying through its callback there. What
/// may be called, and how shared state behaves, is decided exactly as for
/// [`Capabilities`]; this only carries operations across threads.
#[derive(Clone)]
pub struct Remote {
    tx: tokio::sync::mpsc::UnboundedSender<(Op, Reply)>,
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    names: std::sync::Arc<Vec<String>>,
}

use crate::policy::trace::TraceContext;

impl Capabilities {
    /// Serves these capabilities to other threads until every [`Remote`] is
    /// dropped. Must be called on the agent's thread (inside its `LocalSet`),
    /// as [`crate::agent::Handler::grant`] is.
    pub fn remote(&self) -> Remote {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Op, Reply)>();
        let caps = self.clone();
        tokio::task::spawn_local(async move {
            while let Some((op, reply)) = rx.recv().await {
                let caps = caps.clone();
                tokio::task::spawn_local(async move { reply(caps.run(op).await) });
            }
        });
        Remote { tx, in_flight: Default::default(), names: std::sync::Arc::new(self.process_names()) }
    }

    async fn run(&self, op: Op) -> Result<Value> {
        match op {
            Op::Call { process, method, args, timeout, trace } => {
                let p = self.process(&process)?;
                // The runtime's current call (if any): this call's span becomes the callee's parent.
                match trace.filter(|t| !t.trace_id.is_empty()) {
                    Some(t) => crate::policy::trace::scope(t, p.call_value(&method, args, timeout)).await,
                    None => p.call_value(&method, args, timeout).await,
                }
            }
            Op::Get { property } => self.shared()?.get(&property).await,
            Op::Set { property, value } => self.shared()?.set(&property, value).await.map(|_| Value::Null),
            Op::Add { property, delta } => self.shared()?.add(&property, delta).await,
            Op::Init { property, value } => self.shared()?.init(&property, value).await,
        }
    }
}

impl Remote {
    /// The names of the processes this worker was given.
    pub fn process_names(&self) -> &[String] {
        &self.names
    }

    fn send(&self, op: Op, reply: Reply) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_REMOTE_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Config(format!(
                "too many calls to given processes and shared state in flight from this worker (at most {MAX_REMOTE_IN_FLIGHT})"
            )));
        }
        let counter = self.in_flight.clone();
        let reply: Reply = Box::new(move |r| {
            counter.fetch_sub(1, Ordering::AcqRel);
            reply(r)
        });
        self.tx.send((op, reply)).map_err(|_| Error::ManagerShutDown)
    }

    /// Calls `method` of the process given under `process`; `trace` is the
    /// calling runtime's current call (its span becomes the callee's parent).
    pub fn call(&self, process: &str, method: &str, args: Vec<Value>, timeout: Option<Duration>, trace: Option<TraceContext>, reply: Reply) -> Result<()> {
        let op = Op::Call { process: process.to_string(), method: method.to_string(), args, timeout, trace };
        self.send(op, reply)
    }

    /// The property's value on the host; `initial` (the value its class declared) while it
    /// was never set (the host holds no value, `Null`). The front ends' explicit `get` is this.
    pub fn shared_get(&self, property: &str, initial: Value, reply: Reply) -> Result<()> {
        let reply: Reply = Box::new(move |r| reply(r.map(|v| if v == Value::Null { initial } else { v })));
        self.send(Op::Get { property: property.to_string() }, reply)
    }

    pub fn shared_set(&self, property: &str, value: Value, reply: Reply) -> Result<()> {
        self.send(Op::Set { property: property.to_string(), value }, reply)
    }

    /// The atomic increment of [`SharedRef::add`].
    pub fn shared_add(&self, property: &str, delta: Value, reply: Reply) -> Result<()> {
        self.send(Op::Add { property: property.to_string(), delta }, reply)
    }

    /// [`SharedRef::init`]: seeds the property if it was never set; replies with its value.
    pub fn shared_init(&self, property: &str, value: Value, reply: Reply) -> Result<()> {
        self.send(Op::Init { property: property.to_string(), value }, reply)
    }
}

#[cfg(test)]
pub(crate) type TestOps = tokio::sync::mpsc::UnboundedReceiver<(Op, Reply)>;

#[cfg(test)]
impl Remote {
    /// A remote whose operations a test takes itself ([`next_test_op`]); dropping the receiver refuses them.
    pub(crate) fn for_test() -> (Remote, TestOps) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Remote { tx, in_flight: Default::default(), names: Default::default() }, rx)
    }
}

/// The next operation sent: (`get`/`set`/`add`/`init`/`call`, its value, where the answer goes).
#[cfg(test)]
pub(crate) fn next_test_op(rx: &mut TestOps) -> Option<(&'static str, Value, Reply)> {
    let (op, reply) = rx.try_recv().ok()?;
    let (name, value) = match op {
        Op::Call { .. } => ("call", Value::Null),
        Op::Get { .. } => ("get", Value::Null),
        Op::Set { value, .. } => ("set", value),
        Op::Add { delta, .. } => ("add", delta),
        Op::Init { value, .. } => ("init", value),
    };
    Some((name, value, reply))
}
