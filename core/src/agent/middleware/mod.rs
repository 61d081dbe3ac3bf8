//! Method policies that need the worker's own code run here: a chain of layers
//! between the agent's call entry and the handler, built once per method from
//! the policies the method describes (validators, key functions, conditions).
//! Policies that need no worker code (rate limits, caches, breakers) run on the
//! host, in `policy/`, and never reach the worker.
//!
//! Each layer is one file with one [`Layer`] impl; [`Chain::for_method`] picks
//! the layers a method's description asks for. Every policy a Rust `WorkerDef`
//! can declare is data and runs on the host (`host/policies.rs`), so every chain
//! here is empty and a call goes straight to the handler. The worker-side parts
//! of Python and TS workers (validator objects and functions, cache key
//! functions and conditions) are objects of those languages, so they run in
//! their runtimes (`python/titan_pm/_layers.py`, `node/src/worker/layers.ts`),
//! behind this agent's handler; a refusal there comes back as
//! [`ErrorInfo::validation`](crate::protocol::ErrorInfo::validation), which the
//! host turns into the same `ValidationError` its JSON Schema check gives.
//!
//! ```
//! use titan_pm::agent::middleware::Chain;
//! assert!(Chain::for_method("add").is_empty());
//! ```

use std::rc::Rc;

use futures::future::LocalBoxFuture;

use super::{CallContext, Handler};
use crate::protocol::ErrorInfo;
use crate::value::Value;

/// What a layer calls to go on: the rest of the chain, then the handler.
pub type Next<'a> = &'a dyn Fn(Vec<Value>, CallContext) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>>;

/// One policy applied around a method call in the worker.
pub trait Layer {
    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext, next: Next<'_>) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>>;
}

/// The layers of one method, outermost first.
#[derive(Clone, Default)]
pub struct Chain {
    layers: Vec<Rc<dyn Layer>>,
}

impl Chain {
    /// The chain for `method` (empty until methods describe policies).
    pub fn for_method(_method: &str) -> Chain {
        Chain::default()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Runs the call through every layer, then the handler.
    pub fn call(&self, handler: &Rc<dyn Handler>, method: &str, args: Vec<Value>, ctx: CallContext) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>> {
        self.call_from(0, handler, method, args, ctx)
    }

    fn call_from(&self, i: usize, handler: &Rc<dyn Handler>, method: &str, args: Vec<Value>, ctx: CallContext) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>> {
        match self.layers.get(i) {
            None => handler.call(method, args, ctx),
            Some(layer) => {
                let next = |args, ctx| self.call_from(i + 1, handler, method, args, ctx);
                layer.call(method, args, ctx, &next)
            }
        }
    }
}
