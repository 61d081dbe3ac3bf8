//! One function per client command: a call on the `Manager`, then a table
//! (or the report as JSON with `--json`).

use std::path::Path;

use serde_json::Value as J;
use titan_pm::titan_capnp::{event_sink, log_line, log_sink, manager};
use titan_pm::value;

use crate::client::{json, read, rpc_err};

type R = Result<(), String>;

// ---- formatting ----

pub fn num(v: &J, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(0.0)
}

pub fn text(v: &J, key: &str) -> String {
    match &v[key] {
        J::String(s) => s.clone(),
        J::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let (mut x, mut i) = (n, 0);
    while x >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{x:.0} {}", UNITS[i]) } else { format!("{x:.1} {}", UNITS[i]) }
}

pub fn duration_ms(ms: f64) -> String {
    let s = (ms / 1000.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn print_json(v: &J) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

// ---- commands ----

pub async fn list(m: &manager::Client) -> Result<J, String> {
    let reply = m.list_request().send().promise.await.map_err(rpc_err)?;
    Ok(json(read(reply.get().map_err(rpc_err)?.get_processes())?))
}

pub async fn ls(m: &manager::Client, as_json: bool) -> R {
    let rows = list(m).await?;
    if as_json {
        print_json(&rows);
        return Ok(());
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no processes");
        return Ok(());
    }
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                text(r, "processId"),
                text(r, "name"),
                text(r, "pid"),
                text(r, "state"),
                text(r, "restarts"),
                format!("{:.1}%", num(r, &["metrics", "cpu"])),
                bytes(num(r, &["metrics", "memory"])),
                duration_ms(num(r, &["uptime"])),
                text(r, "isolation"),
            ]
        })
        .collect();
    table(&["id", "name", "pid", "state", "restarts", "cpu", "memory", "uptime", "isolation"], cells);
    Ok(())
}

pub async fn info(m: &manager::Client, target: &str, as_json: bool) -> R {
    let mut req = m.info_request();
    req.get().set_target(target);
    let reply = req.send().promise.await.map_err(rpc_err)?;
    let rows = json(read(reply.get().map_err(rpc_err)?.get_info())?);
    if as_json {
        print_json(&rows);
        return Ok(());
    }
    for r in rows.as_array().cloned().unwrap_or_default() {
        let pairs = [
            ("id", text(&r, "processId")),
            ("name", text(&r, "name")),
            ("pid", text(&r, "pid")),
            ("state", text(&r, "state")),
            ("restarts", text(&r, "restarts")),
            ("isolation", text(&r, "isolation")),
            ("transport", text(&r, "transport")),
            ("pool", match (&r["pool"], &r["poolName"]) { (J::Null, _) => "-".into(), (id, name) => format!("{} ({id})", name.as_str().unwrap_or("")) }),
            ("uptime", duration_ms(num(&r, &["uptime"]))),
            ("cpu", format!("{:.1}%", num(&r, &["metrics", "cpu"]))),
            ("memory", bytes(num(&r, &["metrics", "memory"]))),
            ("requests", text(&r["metrics"], "requests")),
            ("errors", text(&r["metrics"], "errors")),
            ("in flight", text(&r["metrics"], "inFlight")),
            ("latency", format!("p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms", num(&r, &["metrics", "latency", "p50"]), num(&r, &["metrics", "latency", "p95"]), num(&r, &["metrics", "latency", "p99"]))),
        ];
        for (k, v) in pairs {
            println!("{k:<10} {v}");
        }
        println!();
    }
    Ok(())
}

fn print_line(l: log_line::Reader<'_>, as_json: bool) {
    let line = l.get_line().ok().and_then(|t| t.to_str().ok()).unwrap_or("");
    let name = l.get_name().ok().and_then(|t| t.to_str().ok()).unwrap_or("");
    if as_json {
        let v = serde_json::json!({ "processId": l.get_process_id(), "name": name, "pid": l.get_pid(),
            "stream": if l.get_stderr() { "stderr" } else { "stdout" }, "line": line, "timestamp": l.get_timestamp_ms() });
        println!("{v}");
    } else if l.get_stderr() {
        eprintln!("[{name}:{}] {line}", l.get_pid());
    } else {
        println!("[{name}:{}] {line}", l.get_pid());
    }
}

struct Printer {
    json: bool,
}

impl log_sink::Server for Printer {
    async fn line(self: capnp::capability::Rc<Self>, params: log_sink::LineParams, _: log_sink::LineResults) -> capnp::Result<()> {
        print_line(params.get()?.get_line()?, self.json);
        Ok(())
    }
}

pub async fn logs(m: &manager::Client, target: &str, lines: u32, follow: bool, as_json: bool) -> R {
    let mut req = m.logs_request();
    {
        let mut p = req.get();
        p.set_target(target);
        p.set_lines(lines);
        p.set_follow(follow);
        p.set_sink(capnp_rpc::new_client(Printer { json: as_json }));
    }
    let reply = req.send().promise.await.map_err(rpc_err)?;
    let r = reply.get().map_err(rpc_err)?;
    for l in r.get_lines().map_err(rpc_err)? {
        print_line(l, as_json);
    }
    if follow {
        let _subscription = r.get_subscription().map_err(rpc_err)?;
        // Lines arrive through the sink until interrupted or the manager goes away.
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(())
}

macro_rules! target_op {
    ($name:ident, $req:ident, $done:literal) => {
        pub async fn $name(m: &manager::Client, target: &str) -> R {
            let mut req = m.$req();
            req.get().set_target(target);
            req.send().promise.await.map_err(rpc_err)?;
            println!($done, target);
            Ok(())
        }
    };
}

target_op!(restart, restart_request, "restarted {}");
target_op!(kill, kill_request, "killed {}");
target_op!(stop, stop_request, "stopped {}");

pub async fn shutdown(m: &manager::Client) -> R {
    match m.shutdown_request().send().promise.await {
        Ok(_) => {}
        // The manager exited right after stopping everything: that is the point.
        Err(e) if e.kind == capnp::ErrorKind::Disconnected => {}
        Err(e) => return Err(rpc_err(e)),
    }
    println!("manager stopped");
    Ok(())
}

pub async fn scale(m: &manager::Client, pool: &str, size: u32) -> R {
    let mut req = m.scale_request();
    req.get().set_pool(pool);
    req.get().set_size(size);
    req.send().promise.await.map_err(rpc_err)?;
    println!("scaled {pool} to {size}");
    Ok(())
}

pub async fn health(m: &manager::Client, target: &str, as_json: bool) -> R {
    let mut req = m.health_request();
    req.get().set_target(target);
    let reply = req.send().promise.await.map_err(rpc_err)?;
    let rows = json(read(reply.get().map_err(rpc_err)?.get_reports())?);
    if as_json {
        print_json(&rows);
        return Ok(());
    }
    let cells = rows
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let checks: Vec<String> = r["health"]["checks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|c| format!("{}={} {}", text(c, "name"), text(c, "status"), text(c, "message")).trim_end().to_string())
                .collect();
            vec![text(r, "processId"), text(r, "name"), text(&r["health"], "status"), checks.join("; ")]
        })
        .collect();
    table(&["id", "name", "status", "checks"], cells);
    Ok(())
}

pub async fn metrics_value(m: &manager::Client, target: &str) -> Result<titan_pm::Value, String> {
    let mut req = m.metrics_request();
    req.get().set_target(target);
    let reply = req.send().promise.await.map_err(rpc_err)?;
    read(reply.get().map_err(rpc_err)?.get_metrics())
}

pub async fn metrics(m: &manager::Client, target: &str, prometheus: bool, as_json: bool) -> R {
    let v = metrics_value(m, target).await?;
    if prometheus {
        print!("{}", titan_pm::control::prometheus::render(&v));
        return Ok(());
    }
    let v = json(v);
    if as_json {
        print_json(&v);
        return Ok(());
    }
    let lat = |r: &J, q: &str| format!("{:.2}", num(r, &["metrics", "latency", q]));
    let procs = v["processes"].as_array().cloned().unwrap_or_default();
    let cells = procs
        .iter()
        .map(|r| {
            vec![
                text(r, "processId"),
                text(r, "name"),
                format!("{:.1}%", num(r, &["metrics", "cpu"])),
                bytes(num(r, &["metrics", "memory"])),
                text(&r["metrics"], "requests"),
                text(&r["metrics"], "errors"),
                text(&r["metrics"], "inFlight"),
                lat(r, "p50"),
                lat(r, "p99"),
            ]
        })
        .collect();
    table(&["id", "name", "cpu", "memory", "requests", "errors", "in flight", "p50 ms", "p99 ms"], cells);
    let pools = v["pools"].as_array().cloned().unwrap_or_default();
    if !pools.is_empty() {
        println!();
        let cells = pools
            .iter()
            .map(|r| {
                vec![
                    format!("pool:{}", text(r, "poolId")),
                    text(r, "name"),
                    text(&r["metrics"], "size"),
                    text(&r["metrics"], "busy"),
                    text(&r["metrics"], "queueLength"),
                    text(&r["metrics"], "requests"),
                    text(&r["metrics"], "errors"),
                    lat(r, "p50"),
                    lat(r, "p99"),
                ]
            })
            .collect();
        table(&["pool", "name", "size", "busy", "queued", "requests", "errors", "p50 ms", "p99 ms"], cells);
    }
    Ok(())
}

pub async fn pools(m: &manager::Client, as_json: bool) -> R {
    let reply = m.pools_request().send().promise.await.map_err(rpc_err)?;
    let rows = json(read(reply.get().map_err(rpc_err)?.get_pools())?);
    if as_json {
        print_json(&rows);
        return Ok(());
    }
    let cells = rows
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let members: Vec<String> = r["members"].as_array().cloned().unwrap_or_default().iter().map(|m| m.to_string()).collect();
            vec![format!("pool:{}", text(r, "poolId")), text(r, "name"), text(r, "size"), text(r, "state"), members.join(","), text(r, "target")]
        })
        .collect();
    table(&["pool", "name", "size", "state", "members", "script"], cells);
    Ok(())
}

struct EventPrinter;

impl event_sink::Server for EventPrinter {
    async fn event(self: capnp::capability::Rc<Self>, params: event_sink::EventParams, _: event_sink::EventResults) -> capnp::Result<()> {
        let v = value::read(params.get()?.get_event()?, "event").map_err(|e| capnp::Error::failed(e.to_string()))?;
        println!("{}", json(v));
        Ok(())
    }
}

pub async fn events(m: &manager::Client) -> R {
    let mut req = m.events_request();
    req.get().set_sink(capnp_rpc::new_client(EventPrinter));
    let reply = req.send().promise.await.map_err(rpc_err)?;
    let _subscription = reply.get().map_err(rpc_err)?.get_subscription().map_err(rpc_err)?;
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

pub async fn reload(m: &manager::Client, file: &Path, all: bool, as_json: bool) -> R {
    let v = crate::daemon::read_file(file)?;
    let mut req = m.apply_request();
    value::write(&v, req.get().init_file());
    req.get().set_reload_all(all);
    let reply = req.send().promise.await.map_err(rpc_err)?;
    let summary = json(read(reply.get().map_err(rpc_err)?.get_summary())?);
    print_summary(&summary, as_json);
    Ok(())
}

pub fn print_summary(summary: &J, as_json: bool) {
    if as_json {
        print_json(summary);
        return;
    }
    for key in ["started", "reloaded", "stopped", "unchanged"] {
        let names: Vec<String> = summary[key].as_array().cloned().unwrap_or_default().iter().filter_map(|n| n.as_str().map(String::from)).collect();
        if !names.is_empty() {
            println!("{key}: {}", names.join(", "));
        }
    }
    for w in summary["warnings"].as_array().cloned().unwrap_or_default() {
        eprintln!("warning: {}", w.as_str().unwrap_or(""));
    }
}

/// A command-line argument as a value: JSON, or else (a bare word) a string: `titan-pm call api greet world`.
fn arg_value(a: &str, what: &str) -> Result<titan_pm::Value, String> {
    let j: J = serde_json::from_str(a).unwrap_or_else(|_| J::String(a.to_string()));
    value::to_value(&j).map_err(|e| format!("{what}: {e}"))
}

pub async fn call(m: &manager::Client, target: &str, method: &str, args: &[String], timeout_ms: u64) -> R {
    let values = args.iter().enumerate().map(|(i, a)| arg_value(a, &format!("args[{i}]"))).collect::<Result<Vec<_>, _>>()?;
    let mut req = m.call_request();
    {
        let mut p = req.get();
        p.set_target(target);
        p.set_method(method);
        p.set_timeout_ms(timeout_ms);
        value::write_list(&values, p.init_args(values.len() as u32));
    }
    let reply = req.send().promise.await.map_err(rpc_err)?;
    println!("{}", json(read(reply.get().map_err(rpc_err)?.get_result())?));
    Ok(())
}

pub async fn run_workflow(m: &manager::Client, name: &str, input: Option<&str>, run_id: &str) -> R {
    let input = match input {
        Some(a) => arg_value(a, "input")?,
        None => titan_pm::Value::Null,
    };
    let mut req = m.run_workflow_request();
    {
        let mut p = req.get();
        p.set_name(name);
        p.set_run_id(run_id);
        value::write(&input, p.init_input());
    }
    let reply = req.send().promise.await.map_err(rpc_err)?;
    println!("{}", json(read(reply.get().map_err(rpc_err)?.get_result())?));
    Ok(())
}

pub async fn workflows(m: &manager::Client, runs: u32, as_json: bool) -> R {
    let mut req = m.workflows_request();
    req.get().set_limit(runs);
    let reply = req.send().promise.await.map_err(rpc_err)?;
    let r = reply.get().map_err(rpc_err)?;
    let (declared, runs) = (json(read(r.get_workflows())?), json(read(r.get_runs())?));
    if as_json {
        print_json(&serde_json::json!({ "workflows": declared, "runs": runs }));
        return Ok(());
    }
    let declared = declared.as_array().cloned().unwrap_or_default();
    if declared.is_empty() {
        println!("no workflows (declare one with [[workflow]] in the process file)");
    } else {
        let cells = declared
            .iter()
            .map(|w| {
                let stages: Vec<String> = w["stages"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        let deps: Vec<String> = s["dependsOn"].as_array().cloned().unwrap_or_default().iter().filter_map(|d| d.as_str().map(String::from)).collect();
                        if deps.is_empty() { text(s, "name") } else { format!("{}<-{}", text(s, "name"), deps.join("+")) }
                    })
                    .collect();
                vec![text(w, "name"), text(w, "processId"), stages.join(" ")]
            })
            .collect();
        table(&["workflow", "process", "stages"], cells);
    }
    let runs = runs.as_array().cloned().unwrap_or_default();
    if !runs.is_empty() {
        println!();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as f64).unwrap_or(0.0);
        let cells = runs
            .iter()
            .map(|r| vec![text(r, "runId"), text(r, "workflow"), text(r, "state"), format!("{} ago", duration_ms(now - num(r, &["updated"])))])
            .collect();
        table(&["run", "workflow", "state", "updated"], cells);
    }
    Ok(())
}
