//! The bridge's one async helper: run a core future without a runtime of our
//! own. The future is first polled on the calling JS thread (which sends the
//! job to the core's engine) and then on whichever thread wakes it (the engine
//! thread, as it finishes the job). Its last step hands the result to a JS
//! thread through a threadsafe function, so a call costs exactly two thread
//! hops: JS → engine → JS.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;

use futures::task::{waker_ref, ArcWake};

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Task {
    future: Mutex<Option<Boxed>>,
    notified: AtomicBool,
}

impl ArcWake for Task {
    fn wake_by_ref(task: &Arc<Self>) {
        task.run();
    }
}

impl Task {
    /// Polls the future on this thread unless another thread is polling it
    /// (that thread then sees `notified` and polls again).
    fn run(self: &Arc<Self>) {
        self.notified.store(true, Ordering::SeqCst);
        while self.notified.load(Ordering::SeqCst) {
            let Ok(mut slot) = self.future.try_lock() else { return };
            if !self.notified.swap(false, Ordering::SeqCst) {
                continue;
            }
            let Some(future) = slot.as_mut() else { return };
            let waker = waker_ref(self);
            if future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                *slot = None;
                return;
            }
        }
    }
}

/// Runs `future` to completion on the threads that wake it.
pub fn spawn(future: impl Future<Output = ()> + Send + 'static) {
    let task = Arc::new(Task { future: Mutex::new(Some(Box::pin(future))), notified: AtomicBool::new(false) });
    task.run();
}
