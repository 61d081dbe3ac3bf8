//! Where stages run: a [`StageRunner`] calls a stage's method by name with
//! values and can describe the class. A [`ProcessHandle`] runs stages in the
//! process it names (in this process for isolation `none`, in a thread or a
//! child worker otherwise); a [`PoolHandle`] runs each attempt on the pool
//! member its strategy picks. Dropping a call's future cancels the call, in the
//! worker too: that is how a run cancels its other stages when one fails.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::Result;
use crate::host::{CallOptions, ProcessHandle};
use crate::pool::PoolHandle;
use crate::protocol::Description;
use crate::value::Value;

/// Runs a workflow's stage methods.
pub trait StageRunner: Send + Sync + 'static {
    /// Calls `method` with `args`; `timeout` bounds this one attempt (the call
    /// is cancelled in the worker when it passes). Dropping the future cancels the call.
    fn call_stage(&self, method: &str, args: Vec<Value>, timeout: Option<Duration>) -> BoxFuture<'static, Result<Value>>;
    /// The class's description (its methods and its stage graph).
    fn describe(&self) -> BoxFuture<'static, Result<Description>>;
}

impl StageRunner for ProcessHandle {
    fn call_stage(&self, method: &str, args: Vec<Value>, timeout: Option<Duration>) -> BoxFuture<'static, Result<Value>> {
        let h = self.with_options(CallOptions { timeout, ..Default::default() });
        let method = method.to_string();
        Box::pin(async move { h.call_value(&method, args).await })
    }

    fn describe(&self) -> BoxFuture<'static, Result<Description>> {
        let h = self.clone();
        Box::pin(async move { h.describe().await })
    }
}

impl StageRunner for PoolHandle {
    fn call_stage(&self, method: &str, args: Vec<Value>, timeout: Option<Duration>) -> BoxFuture<'static, Result<Value>> {
        let h = self.with_options(CallOptions { timeout, ..Default::default() });
        let method = method.to_string();
        Box::pin(async move { h.call_value(&method, args).await })
    }

    fn describe(&self) -> BoxFuture<'static, Result<Description>> {
        let h = self.clone();
        Box::pin(async move { h.describe().await })
    }
}
