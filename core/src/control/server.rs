//! The `Manager` capability: one per accepted connection, on the control
//! thread; every operation is a call into the [`ProcessManager`] (no second
//! engine). Reports are the API's own report `Value`s in the TypeScript
//! spelling; errors are RPC exceptions carrying the core's error text.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use capnp::capability::Rc as CapRc;
use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::RpcSystem;
use futures::future::{AbortHandle, Abortable};
use tokio::sync::{broadcast, watch, Mutex, Notify};

use super::file::Deployment;
use super::targets::{self, Resolved};
use crate::host::{LogLine, OutputStream, ProcessManager};
use crate::options::Dialect;
use crate::reports::Report;
use crate::titan_capnp::{event_sink, log_sink, manager, subscription};
use crate::transport::vat_network;
use crate::value::{self, Value};

const JS: Dialect = Dialect::Js;

/// Accepts connections until `stop`; `done` turns true after a client's `shutdown` finished.
pub(super) async fn run(pm: ProcessManager, listener: std::os::unix::net::UnixListener, done: watch::Sender<bool>, stop: Arc<Notify>) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(target: "titan_pm", "control socket: {e}");
            return;
        }
    };
    let shared = Rc::new(Shared { pm, done, deployment: Mutex::new(Deployment::default()), connections: RefCell::new(0) });
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.notified() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        if !super::socket::same_user(&stream) {
            tracing::warn!(target: "titan_pm", "control socket: refused a connection from another user");
            continue;
        }
        if *shared.connections.borrow() >= super::socket::MAX_CONNECTIONS {
            continue; // dropped: the client sees the connection close
        }
        *shared.connections.borrow_mut() += 1;
        let client: manager::Client = capnp_rpc::new_client(ManagerServer { shared: shared.clone() });
        let rpc = RpcSystem::new(Box::new(vat_network(stream, Side::Server)), Some(client.client));
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            let _ = rpc.await;
            *shared.connections.borrow_mut() -= 1;
        });
    }
}

struct Shared {
    pm: ProcessManager,
    done: watch::Sender<bool>,
    /// The entries applied from process files; one `apply` at a time.
    deployment: Mutex<Deployment>,
    connections: RefCell<usize>,
}

struct ManagerServer {
    shared: Rc<Shared>,
}

/// A pool member is not stopped alone (its pool would keep counting it): says what to do instead.
async fn refuse_pool_members(pm: &ProcessManager, ids: &[u64], what: &str) -> capnp::Result<()> {
    for pool in pm.pools().await {
        if let Some(id) = ids.iter().find(|id| pool.members.contains(id)) {
            return Err(capnp::Error::failed(format!(
                "process {id} is a member of pool {:?}: {what} the pool, `titan-pm scale {} N` or `titan-pm restart {id}`",
                pool.name, pool.name
            )));
        }
    }
    Ok(())
}

fn err(e: crate::Error) -> capnp::Error {
    capnp::Error::failed(e.to_string())
}

fn text(r: capnp::Result<capnp::text::Reader<'_>>) -> capnp::Result<String> {
    Ok(r?.to_str().map_err(|e| capnp::Error::failed(e.to_string()))?.to_string())
}

pub(crate) fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// One `ls` row: the info report plus `metrics`, `uptime` (ms), `pool` and `poolName`.
async fn rows(pm: &ProcessManager, only: Option<&[u64]>) -> crate::Result<Vec<Value>> {
    let pools = pm.pools().await;
    let only = only.map(|ids| ids.to_vec());
    let rows = pm
        .exec(move |engine| async move {
            Ok(engine
                .processes()
                .iter()
                .filter(|p| only.as_ref().is_none_or(|ids| ids.contains(&p.id)))
                .map(|p| (p.info(), p.metrics(), p.uptime()))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(rows
        .into_iter()
        .map(|(info, metrics, uptime)| {
            let pool = pools.iter().find(|pool| pool.members.contains(&info.process_id));
            let Value::Map(mut m) = info.report(JS) else { unreachable!("a report is a map") };
            m.push(("metrics".into(), metrics.report(JS)));
            m.push(("uptime".into(), Value::Int(uptime.as_millis() as i64)));
            m.push(("pool".into(), pool.map(|p| Value::Int(p.pool_id as i64)).unwrap_or(Value::Null)));
            m.push(("poolName".into(), pool.map(|p| Value::Text(p.name.clone())).unwrap_or(Value::Null)));
            Value::Map(m)
        })
        .collect())
}

pub(crate) fn pool_report(p: &crate::pool::PoolInfo) -> Value {
    map(vec![
        ("poolId", Value::Int(p.pool_id as i64)),
        ("name", Value::Text(p.name.clone())),
        ("target", Value::Text(p.target.clone())),
        ("size", Value::Int(p.size as i64)),
        ("members", Value::List(p.members.iter().map(|id| Value::Int(*id as i64)).collect())),
        ("state", Value::Text(p.state.into())),
    ])
}

fn write_line(l: &LogLine, mut b: crate::titan_capnp::log_line::Builder<'_>) {
    b.set_process_id(l.process_id);
    b.set_name(&l.name);
    b.set_pid(l.pid);
    b.set_stderr(l.stream == OutputStream::Stderr);
    b.set_line(&l.line);
    b.set_timestamp_ms(l.timestamp_ms);
}

/// Ends a stream when the client drops it.
struct Subscription(AbortHandle);

impl subscription::Server for Subscription {}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl manager::Server for ManagerServer {
    async fn list(self: CapRc<Self>, _: manager::ListParams, mut results: manager::ListResults) -> capnp::Result<()> {
        let rows = rows(&self.shared.pm, None).await.map_err(err)?;
        value::write(&Value::List(rows), results.get().init_processes());
        Ok(())
    }

    async fn info(self: CapRc<Self>, params: manager::InfoParams, mut results: manager::InfoResults) -> capnp::Result<()> {
        let target = text(params.get()?.get_target())?;
        if target.is_empty() {
            return Err(capnp::Error::failed("info needs a process id or name".into()));
        }
        let ids = targets::processes(&self.shared.pm, &target).await.map_err(err)?;
        let rows = rows(&self.shared.pm, Some(&ids)).await.map_err(err)?;
        value::write(&Value::List(rows), results.get().init_info());
        Ok(())
    }

    async fn health(self: CapRc<Self>, params: manager::HealthParams, mut results: manager::HealthResults) -> capnp::Result<()> {
        let target = text(params.get()?.get_target())?;
        let pm = &self.shared.pm;
        let ids = targets::processes(pm, &target).await.map_err(err)?;
        let mut out = Vec::new();
        for id in ids {
            let Ok(info) = pm.get_process(id).await else { continue }; // gone meanwhile
            let health = pm.get_health(id).await.map_err(err)?;
            out.push(map(vec![("processId", Value::Int(id as i64)), ("name", Value::Text(info.name)), ("health", health.report(JS))]));
        }
        value::write(&Value::List(out), results.get().init_reports());
        Ok(())
    }

    async fn metrics(self: CapRc<Self>, params: manager::MetricsParams, mut results: manager::MetricsResults) -> capnp::Result<()> {
        let target = text(params.get()?.get_target())?;
        let pm = &self.shared.pm;
        let (ids, pools) = match targets::resolve(pm, &target).await.map_err(err)? {
            Resolved::Processes(ids) if target.is_empty() => (ids, pm.pools().await),
            Resolved::Processes(ids) => (ids, vec![]),
            Resolved::Pool(p) => (p.members.clone(), vec![p]),
        };
        let processes = rows(pm, Some(&ids))
            .await
            .map_err(err)?
            .into_iter()
            .map(|r| map(vec![("processId", r.get("processId").cloned().unwrap_or_default()), ("name", r.get("name").cloned().unwrap_or_default()), ("metrics", r.get("metrics").cloned().unwrap_or_default())]))
            .collect();
        let mut pool_rows = Vec::new();
        for p in pools {
            let Ok(handle) = pm.pool_handle(p.pool_id) else { continue };
            let Ok(m) = handle.metrics().await else { continue };
            pool_rows.push(map(vec![("poolId", Value::Int(p.pool_id as i64)), ("name", Value::Text(p.name.clone())), ("metrics", m.report(JS))]));
        }
        let v = map(vec![("processes", Value::List(processes)), ("pools", Value::List(pool_rows))]);
        value::write(&v, results.get().init_metrics());
        Ok(())
    }

    async fn kill(self: CapRc<Self>, params: manager::KillParams, _: manager::KillResults) -> capnp::Result<()> {
        let target = text(params.get()?.get_target())?;
        let pm = &self.shared.pm;
        match targets::resolve(pm, &target).await.map_err(err)? {
            Resolved::Pool(p) => pm.pool_handle(p.pool_id).map_err(err)?.destroy().await.map_err(err)?,
            Resolved::Processes(ids) => {
                refuse_pool_members(pm, &ids, "kill").await?;
                for id in ids {
                    pm.kill(id).await.map_err(err)?;
                }
            }
        }
        self.shared.deployment.lock().await.forget_target(&target);
        Ok(())
    }

    async fn restart(self: CapRc<Self>, params: manager::RestartParams, _: manager::RestartResults) -> capnp::Result<()> {
        let target = text(params.get()?.get_target())?;
        let pm = &self.shared.pm;
        match targets::resolve(pm, &target).await.map_err(err)? {
            Resolved::Pool(p) => pm.pool_handle(p.pool_id).map_err(err)?.reload().await.map_err(err)?,
            Resolved::Processes(ids) => {
                // One at a time: a rolling restart.
                for id in ids {
                    pm.restart(id).await.map_err(err)?;
                }
            }
        }
        Ok(())
    }

    async fn stop(self: CapRc<Self>, params: manager::StopParams, _: manager::StopResults) -> capnp::Result<()> {
        let target = text(params.get()?.get_target())?;
        if target.is_empty() {
            return Err(capnp::Error::failed("stop needs a process or pool (titan-pm stop with no target shuts the manager down)".into()));
        }
        let pm = &self.shared.pm;
        match targets::resolve(pm, &target).await.map_err(err)? {
            Resolved::Pool(p) => pm.pool_handle(p.pool_id).map_err(err)?.destroy().await.map_err(err)?,
            Resolved::Processes(ids) => {
                refuse_pool_members(pm, &ids, "stop").await?;
                for id in ids {
                    pm.stop(id).await.map_err(err)?;
                }
            }
        }
        self.shared.deployment.lock().await.forget_target(&target);
        Ok(())
    }

    async fn scale(self: CapRc<Self>, params: manager::ScaleParams, _: manager::ScaleResults) -> capnp::Result<()> {
        let p = params.get()?;
        let (target, size) = (text(p.get_pool())?, p.get_size());
        let pool = targets::pool(&self.shared.pm, &target).await.map_err(err)?;
        self.shared.pm.pool_handle(pool.pool_id).map_err(err)?.scale(size as usize).await.map_err(err)
    }

    async fn pools(self: CapRc<Self>, _: manager::PoolsParams, mut results: manager::PoolsResults) -> capnp::Result<()> {
        let pools = self.shared.pm.pools().await;
        value::write(&Value::List(pools.iter().map(pool_report).collect()), results.get().init_pools());
        Ok(())
    }

    async fn logs(self: CapRc<Self>, params: manager::LogsParams, mut results: manager::LogsResults) -> capnp::Result<()> {
        let p = params.get()?;
        let (target, lines, follow) = (text(p.get_target())?, p.get_lines() as usize, p.get_follow());
        let pm = &self.shared.pm;
        let ids = if target.is_empty() { None } else { Some(targets::processes(pm, &target).await.map_err(err)?) };
        // Subscribe before reading the tail so no line falls between the two.
        let live = if follow { Some(pm.follow_logs().await.map_err(err)?) } else { None };
        let mut tail = Vec::new();
        match &ids {
            None => tail = pm.logs(None, lines).await.map_err(err)?,
            Some(ids) => {
                for id in ids {
                    tail.extend(pm.logs(Some(*id), lines).await.map_err(err)?);
                }
                tail.sort_by_key(|l| l.timestamp_ms);
                if lines > 0 && tail.len() > lines {
                    tail.drain(..tail.len() - lines);
                }
            }
        }
        let last = tail.last().map(|l| (l.process_id, l.timestamp_ms));
        let mut out = results.get().init_lines(tail.len() as u32);
        for (i, l) in tail.iter().enumerate() {
            write_line(l, out.reborrow().get(i as u32));
        }
        if let Some(mut live) = live {
            let sink: log_sink::Client = p.get_sink()?;
            let by_name = !target.is_empty() && target.parse::<u64>().is_err() && !target.starts_with("pool:");
            let pm = pm.clone();
            let (abort, registration) = AbortHandle::new_pair();
            tokio::task::spawn_local(Abortable::new(
                async move {
                    let mut ids = ids;
                    loop {
                        let line = match live.recv().await {
                            Ok(l) => l,
                            Err(broadcast::error::RecvError::Lagged(n)) => LogLine {
                                process_id: 0,
                                name: "titan-pm".into(),
                                pid: 0,
                                stream: OutputStream::Stderr,
                                line: format!("[{n} lines skipped: the reader fell behind]"),
                                timestamp_ms: 0,
                            },
                            Err(broadcast::error::RecvError::Closed) => return,
                        };
                        if last.is_some_and(|(_, ts)| line.timestamp_ms < ts) {
                            continue; // already in the tail
                        }
                        if let Some(wanted) = &mut ids {
                            if !wanted.contains(&line.process_id) && line.process_id != 0 {
                                // A name follows new members too (a pool's replacements after a reload).
                                if !by_name {
                                    continue;
                                }
                                match targets::processes(&pm, &target).await {
                                    Ok(now) if now.contains(&line.process_id) => *wanted = now,
                                    _ => continue,
                                }
                            }
                        }
                        let mut req = sink.line_request();
                        write_line(&line, req.get().init_line());
                        if req.send().promise.await.is_err() {
                            return; // the client went away
                        }
                    }
                },
                registration,
            ));
            results.get().set_subscription(capnp_rpc::new_client(Subscription(abort)));
        }
        Ok(())
    }

    async fn events(self: CapRc<Self>, params: manager::EventsParams, mut results: manager::EventsResults) -> capnp::Result<()> {
        let sink: event_sink::Client = params.get()?.get_sink()?;
        // Process events, and the events of every pool live now (with `poolId`), into one bounded queue.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(256);
        let lagged = |n: u64| map(vec![("type", Value::Text("lagged".into())), ("skipped", Value::Int(n as i64))]);
        let (abort, registration) = AbortHandle::new_pair();
        let mut sources: Vec<futures::future::LocalBoxFuture<'static, ()>> = Vec::new();
        let mut events = self.shared.pm.events();
        let to = tx.clone();
        sources.push(Box::pin(async move {
            loop {
                let v = match events.recv().await {
                    Ok(e) => e.report(JS),
                    Err(broadcast::error::RecvError::Lagged(n)) => lagged(n),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if to.send(v).await.is_err() {
                    return;
                }
            }
        }));
        for pool in self.shared.pm.pools().await {
            let Ok(handle) = self.shared.pm.pool_handle(pool.pool_id) else { continue };
            let mut events = handle.events();
            let to = tx.clone();
            sources.push(Box::pin(async move {
                loop {
                    let v = match events.recv().await {
                        Ok(e) => match e.report(JS) {
                            Value::Map(mut m) => {
                                m.push(("poolId".into(), Value::Int(pool.pool_id as i64)));
                                Value::Map(m)
                            }
                            other => other,
                        },
                        Err(broadcast::error::RecvError::Lagged(n)) => lagged(n),
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if to.send(v).await.is_err() {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        tokio::task::spawn_local(Abortable::new(
            async move {
                let feed = futures::future::join_all(sources);
                let send = async move {
                    while let Some(v) = rx.recv().await {
                        let mut req = sink.event_request();
                        value::write(&v, req.get().init_event());
                        if req.send().promise.await.is_err() {
                            return; // the client went away
                        }
                    }
                };
                futures::pin_mut!(feed, send);
                futures::future::select(feed, send).await;
            },
            registration,
        ));
        results.get().set_subscription(capnp_rpc::new_client(Subscription(abort)));
        Ok(())
    }

    async fn shutdown(self: CapRc<Self>, _: manager::ShutdownParams, _: manager::ShutdownResults) -> capnp::Result<()> {
        self.shared.pm.shutdown().await;
        // The owner exits once `done` is set: let this reply reach the client first.
        let shared = self.shared.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let _ = shared.done.send(true);
        });
        Ok(())
    }

    async fn call(self: CapRc<Self>, params: manager::CallParams, mut results: manager::CallResults) -> capnp::Result<()> {
        let p = params.get()?;
        let (target, method) = (text(p.get_target())?, text(p.get_method())?);
        let args = value::read_list(p.get_args()?, "args").map_err(err)?;
        let timeout = Some(p.get_timeout_ms()).filter(|ms| *ms > 0).map(std::time::Duration::from_millis);
        let options = crate::host::CallOptions { timeout, ..Default::default() };
        let pm = &self.shared.pm;
        let result = match targets::resolve(pm, &target).await.map_err(err)? {
            Resolved::Pool(pool) => pm.pool_handle(pool.pool_id).map_err(err)?.with_options(options).call_value(&method, args).await,
            Resolved::Processes(ids) => match ids.first() {
                Some(id) if !target.is_empty() => pm.call_value(*id, &method, args, options).await,
                _ => return Err(capnp::Error::failed("call needs a process or pool".into())),
            },
        };
        value::write(&result.map_err(err)?, results.get().init_result());
        Ok(())
    }

    async fn run_workflow(self: CapRc<Self>, params: manager::RunWorkflowParams, mut results: manager::RunWorkflowResults) -> capnp::Result<()> {
        let p = params.get()?;
        let name = text(p.get_name())?;
        let input = value::read(p.get_input()?, "input").map_err(err)?;
        let run_id = text(p.get_run_id())?;
        // The deployment is not held while the run goes (apply and other runs go on).
        let workflow = self.shared.deployment.lock().await.workflow(&name).map_err(err)?;
        let result = workflow.run(input, Some(run_id.as_str()).filter(|id| !id.is_empty())).await.map_err(err)?;
        value::write(&result, results.get().init_result());
        Ok(())
    }

    async fn workflows(self: CapRc<Self>, params: manager::WorkflowsParams, mut results: manager::WorkflowsResults) -> capnp::Result<()> {
        let limit = params.get()?.get_limit() as usize;
        let declared = self.shared.deployment.lock().await.workflows();
        let rows = declared
            .iter()
            .map(|(name, process_id, w)| {
                let stages = w
                    .definition()
                    .stages()
                    .iter()
                    .map(|s| {
                        let deps = s.depends_on.iter().map(|d| Value::Text(d.clone())).collect();
                        map(vec![("name", Value::Text(s.name.clone())), ("dependsOn", Value::List(deps))])
                    })
                    .collect();
                map(vec![
                    ("name", Value::Text(name.clone())),
                    ("workflow", Value::Text(w.name().to_string())),
                    ("processId", Value::Int(*process_id as i64)),
                    ("stages", Value::List(stages)),
                ])
            })
            .collect();
        let runs = if limit == 0 { Vec::new() } else { self.shared.pm.workflow_runs(limit).await.map_err(err)? };
        let mut r = results.get();
        value::write(&Value::List(rows), r.reborrow().init_workflows());
        value::write(&runs.report(JS), r.init_runs());
        Ok(())
    }

    async fn apply(self: CapRc<Self>, params: manager::ApplyParams, mut results: manager::ApplyResults) -> capnp::Result<()> {
        let p = params.get()?;
        let file = value::read(p.get_file()?, "file").map_err(err)?;
        let all = p.get_reload_all();
        let mut deployment = self.shared.deployment.lock().await;
        let summary = deployment.apply(&self.shared.pm, &file, all).await.map_err(err)?;
        value::write(&summary, results.get().init_summary());
        Ok(())
    }
}
