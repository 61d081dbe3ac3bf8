//! One worker instance's view of a @SharedState property: the write rule the
//! Python and Node bridges share (they only convert values and raise errors).
//!
//! Reading returns the view at once. Writing a number over a number sends the
//! difference as an atomic `add` (so concurrent increments from every instance
//! are never lost); writing anything else is a `set` (last writer wins). The
//! view becomes the written value at once; when an `add` or the `init` (see
//! [`SharedView::load`]) replies, the view becomes the host's value plus this
//! instance's adds still in flight, unless a later `set` is in flight (it then
//! decides). The host applies one instance's operations in the order they were
//! made. An operation that fails is raised by the next read or write.
//!
//! Every method is synchronous and may be called from any thread; replies
//! arrive on the agent's thread.

use std::sync::{Arc, Mutex};

use super::capabilities::{Remote, Reply};
use crate::error::{Error, Result};
use crate::value::Value;

/// A @SharedState property's local view (see the module doc).
pub struct SharedView {
    property: String,
    initial: Value,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    value: Value,
    /// Operations sent whose answers are not folded in yet, oldest first.
    in_flight: Vec<InFlight>,
    next: u64,
    error: Option<Error>,
}

struct InFlight {
    id: u64,
    sent: Sent,
    /// The host's answer, once it came (folded by the next read or write).
    answer: Option<Result<Value>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Sent {
    Add(Value),
    Set,
    Init,
}

impl SharedView {
    pub fn new(property: impl Into<String>, initial: Value) -> Self {
        let state = State { value: initial.clone(), ..State::default() };
        SharedView { property: property.into(), initial, state: Arc::new(Mutex::new(state)) }
    }

    pub fn property(&self) -> &str {
        &self.property
    }

    /// The value the class declared (what `load` seeds the host with).
    pub fn initial(&self) -> &Value {
        &self.initial
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view; an earlier operation's failure instead (once).
    pub fn read(&self) -> Result<Value> {
        let mut s = self.lock();
        s.apply();
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(s.value.clone()),
        }
    }

    /// Writes `value`: an `add` of the difference when both it and the view are
    /// numbers (nothing when that is zero), else a `set`. The view becomes `value`.
    /// An earlier failure, or one sending this, is returned and the view is unchanged.
    pub fn write(&self, remote: &Remote, value: Value) -> Result<()> {
        let mut s = self.lock();
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        // The difference is from the view as last read (answers since are folded after).
        match difference(&value, &s.value) {
            Some(delta) if is_zero(&delta) => {}
            Some(delta) => {
                let reply = self.on_reply(&mut s, Sent::Add(delta.clone()), None);
                self.sent(&mut s, remote.shared_add(&self.property, delta, reply))?;
            }
            None => {
                let reply = self.on_reply(&mut s, Sent::Set, None);
                self.sent(&mut s, remote.shared_set(&self.property, value.clone(), reply))?;
            }
        }
        s.value = value;
        s.apply();
        Ok(())
    }

    /// At init: seeds the host's value with the initial one if no instance did yet
    /// and loads it into the view; `then` gets the view (or the failure) after.
    pub fn load(&self, remote: &Remote, then: Reply) -> Result<()> {
        let mut s = self.lock();
        let reply = self.on_reply(&mut s, Sent::Init, Some(then));
        self.sent(&mut s, remote.shared_init(&self.property, self.initial.clone(), reply))
    }

    /// Forgets the operation just registered if it could not be sent.
    fn sent(&self, s: &mut State, outcome: Result<()>) -> Result<()> {
        if outcome.is_err() {
            s.in_flight.pop();
        }
        outcome
    }

    /// Registers an operation in flight and returns where its answer goes. An
    /// `add`'s or `set`'s answer is kept with it and folded into the view by the
    /// next read or the end of the next write (on the caller's thread, so a
    /// read-modify-write like `count += 1` never sees the view move between its
    /// read and its write); the `init`'s is folded at once and handed to `then`.
    fn on_reply(&self, s: &mut State, sent: Sent, then: Option<Reply>) -> Reply {
        s.next += 1;
        let id = s.next;
        s.in_flight.push(InFlight { id, sent, answer: None });
        let state = self.state.clone();
        Box::new(move |r: Result<Value>| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(at) = s.in_flight.iter().position(|e| e.id == id) else { return };
            let Some(then) = then else {
                s.in_flight[at].answer = Some(r);
                return;
            };
            s.in_flight.remove(at);
            let outcome = r.map(|v| {
                s.fold(at, &Sent::Init, v);
                s.value.clone()
            });
            drop(s);
            then(outcome); // the loader raises a failure
        })
    }
}

impl State {
    /// Folds the answers that came, oldest operation first.
    fn apply(&mut self) {
        while let Some(at) = self.in_flight.iter().position(|e| e.answer.is_some()) {
            let e = self.in_flight.remove(at);
            match e.answer {
                Some(Err(err)) => self.error = Some(err),
                Some(Ok(v)) => self.fold(at, &e.sent, v),
                None => {}
            }
        }
    }

    /// The view after the host answered `v` to the operation that was at `at`:
    /// `v` plus this instance's adds sent after it, unless a later set decides.
    fn fold(&mut self, at: usize, sent: &Sent, v: Value) {
        let later = &self.in_flight[at..];
        if *sent == Sent::Set || !later.iter().all(|e| matches!(e.sent, Sent::Add(_))) {
            return;
        }
        let pending = later.iter().fold(Value::Int(0), |sum, e| match &e.sent {
            Sent::Add(d) => sum_of(&sum, d).unwrap_or(sum),
            _ => sum,
        });
        match if is_zero(&pending) { None } else { sum_of(&v, &pending) } {
            Some(n) => self.value = n,
            None if v != Value::Null => self.value = v,
            None => {}
        }
    }
}

fn is_zero(v: &Value) -> bool {
    matches!(v, Value::Int(0)) || matches!(v, Value::Float(f) if *f == 0.0)
}

/// A number's value; NaN and the infinities are not numbers here (written, they are a `set`).
fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

/// `a - b` for two numbers (an int while both are ints and it fits).
fn difference(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.checked_sub(*y).map(Value::Int).unwrap_or(Value::Float(*x as f64 - *y as f64))),
        _ => Some(Value::Float(as_f64(a)? - as_f64(b)?)),
    }
}

/// `a + b` for two numbers (an int while both are ints and it fits).
fn sum_of(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.checked_add(*y).map(Value::Int).unwrap_or(Value::Float(*x as f64 + *y as f64))),
        _ => Some(Value::Float(as_f64(a)? + as_f64(b)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A host's shared state as the agent would serve it, answered when the test says.
    struct Host {
        value: Mutex<Value>,
        ops: Mutex<super::super::capabilities::TestOps>,
        waiting: Mutex<Vec<(String, Value, Reply)>>,
        seen: AtomicUsize,
    }

    impl Host {
        fn new() -> (Arc<Host>, Remote) {
            let (remote, ops) = Remote::for_test();
            let host = Host { value: Mutex::new(Value::Null), ops: Mutex::new(ops), waiting: Mutex::default(), seen: AtomicUsize::new(0) };
            (Arc::new(host), remote)
        }

        /// Takes what was sent since the last look.
        fn pump(&self) {
            let mut ops = self.ops.lock().unwrap();
            while let Some((op, value, reply)) = super::super::capabilities::next_test_op(&mut ops) {
                self.seen.fetch_add(1, Ordering::SeqCst);
                self.waiting.lock().unwrap().push((op.to_string(), value, reply));
            }
        }

        fn sent(&self) -> Vec<(String, Value)> {
            self.pump();
            self.waiting.lock().unwrap().iter().map(|(o, v, _)| (o.clone(), v.clone())).collect()
        }

        /// Answers the oldest operation as the host would.
        fn answer(&self) {
            self.pump();
            let (op, v, reply) = self.waiting.lock().unwrap().remove(0);
            let mut value = self.value.lock().unwrap();
            let out = match op.as_str() {
                "add" => {
                    *value = sum_of(&if *value == Value::Null { Value::Int(0) } else { value.clone() }, &v).unwrap();
                    value.clone()
                }
                "set" => {
                    *value = v;
                    Value::Null
                }
                "init" => {
                    if *value == Value::Null {
                        *value = v;
                    }
                    value.clone()
                }
                other => panic!("{other}"),
            };
            drop(value);
            reply(Ok(out));
        }
    }

    #[test]
    fn numeric_writes_send_differences_and_replies_fold_in_the_adds_in_flight() {
        let (host, remote) = Host::new();
        *host.value.lock().unwrap() = Value::Int(100); // other instances added before
        let view = SharedView::new("count", Value::Int(0));
        let loaded = Arc::new(Mutex::new(None));
        let l = loaded.clone();
        view.load(&remote, Box::new(move |r| *l.lock().unwrap() = Some(r.unwrap()))).unwrap();
        host.answer();
        assert_eq!(*loaded.lock().unwrap(), Some(Value::Int(100)));
        assert_eq!(view.read().unwrap(), Value::Int(100));

        // Two increments in flight: the view counts both at once.
        view.write(&remote, Value::Int(101)).unwrap();
        view.write(&remote, Value::Int(102)).unwrap();
        assert_eq!(view.read().unwrap(), Value::Int(102));
        assert_eq!(host.sent(), vec![("add".into(), Value::Int(1)), ("add".into(), Value::Int(1))]);
        // Another instance adds 10 meanwhile; the first reply (111) plus the add still in flight.
        *host.value.lock().unwrap() = Value::Int(110);
        host.answer();
        assert_eq!(view.read().unwrap(), Value::Int(112));
        host.answer();
        assert_eq!(view.read().unwrap(), Value::Int(112));

        // Writing the same number sends nothing; a float difference is a float add.
        host.pump();
        let before = host.seen.load(Ordering::SeqCst);
        view.write(&remote, Value::Int(112)).unwrap();
        host.pump();
        assert_eq!(host.seen.load(Ordering::SeqCst), before);
        view.write(&remote, Value::Float(112.5)).unwrap();
        assert_eq!(host.sent(), vec![("add".into(), Value::Float(0.5))]);
        host.answer();
        assert_eq!(view.read().unwrap(), Value::Float(112.5));
    }

    #[test]
    fn an_answer_between_a_read_and_its_write_does_not_change_the_difference() {
        let (host, remote) = Host::new();
        let view = SharedView::new("count", Value::Int(0));
        view.write(&remote, Value::Int(1)).unwrap();
        *host.value.lock().unwrap() = Value::Int(50); // other instances added 50
        let seen = view.read().unwrap(); // `count += 1`: the read...
        host.answer(); // ...the first add's answer (51) arrives on the agent's thread...
        view.write(&remote, Value::Int(seen.as_i64().unwrap() + 1)).unwrap(); // ...and the write
        assert_eq!(host.sent(), vec![("add".into(), Value::Int(1))], "one increment is an add of 1");
        assert_eq!(view.read().unwrap(), Value::Int(52), "the host's 51 plus the add in flight");
        host.answer();
        assert_eq!(view.read().unwrap(), Value::Int(52));
        assert_eq!(*host.value.lock().unwrap(), Value::Int(52));
    }

    #[test]
    fn a_non_number_is_a_set_and_a_later_set_decides_the_view() {
        let (host, remote) = Host::new();
        let view = SharedView::new("state", Value::Int(1));
        view.write(&remote, Value::Int(5)).unwrap(); // add 4
        view.write(&remote, Value::Text("done".into())).unwrap(); // set
        assert_eq!(host.sent(), vec![("add".into(), Value::Int(4)), ("set".into(), Value::Text("done".into()))]);
        host.answer(); // the add's reply (4) must not replace the later set's value
        assert_eq!(view.read().unwrap(), Value::Text("done".into()));
        host.answer();
        assert_eq!(view.read().unwrap(), Value::Text("done".into()));
        // A number over a text is a set, too.
        view.write(&remote, Value::Int(3)).unwrap();
        assert_eq!(host.sent(), vec![("set".into(), Value::Int(3))]);
    }

    #[test]
    fn an_explicit_get_of_a_property_never_set_is_its_initial_value() {
        let (remote, mut ops) = Remote::for_test();
        let got = Arc::new(Mutex::new(Vec::new()));
        for host_holds in [Value::Null, Value::Int(7)] {
            let g = got.clone();
            remote.shared_get("count", Value::Int(5), Box::new(move |r| g.lock().unwrap().push(r.unwrap()))).unwrap();
            let (op, _, reply) = super::super::capabilities::next_test_op(&mut ops).unwrap();
            assert_eq!(op, "get");
            reply(Ok(host_holds));
        }
        assert_eq!(*got.lock().unwrap(), vec![Value::Int(5), Value::Int(7)], "never set: the initial value; set: the host's");
    }

    #[test]
    fn a_failure_is_raised_once_by_the_next_read_or_write() {
        let (host, remote) = Host::new();
        let view = SharedView::new("count", Value::Int(0));
        view.write(&remote, Value::Int(1)).unwrap();
        host.pump();
        let (_, _, reply) = host.waiting.lock().unwrap().remove(0);
        reply(Err(Error::ManagerShutDown));
        assert!(matches!(view.read(), Err(Error::ManagerShutDown)));
        assert_eq!(view.read().unwrap(), Value::Int(1));
        // An operation that cannot be sent leaves the view as it was.
        let (refusing, ops) = Remote::for_test();
        drop(ops);
        let view = SharedView::new("count", Value::Int(0));
        assert!(view.write(&refusing, Value::Int(7)).is_err());
        assert_eq!(view.read().unwrap(), Value::Int(0));
    }
}
