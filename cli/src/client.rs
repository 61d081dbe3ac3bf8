//! The CLI's end of the control socket: connects, bootstraps `Manager`, and
//! turns report `Value`s into JSON for printing.

use std::path::{Path, PathBuf};

use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::RpcSystem;
use titan_pm::titan_capnp::manager;
use titan_pm::transport::vat_network;
use titan_pm::value::{self, Value};

/// The socket to use: `--socket`, else the default (`TITAN_PM_SOCKET`, else the user's own; core decides).
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(titan_pm::control::default_socket)
}

/// Connects to the manager at `path` (on the current `LocalSet`).
pub async fn connect(path: &Path) -> Result<manager::Client, String> {
    let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
            "no manager is serving {} (start one with `titan-pm start FILE`, or pass --socket / TITAN_PM_SOCKET)",
            path.display()
        ),
        _ => format!("cannot connect to {}: {e}", path.display()),
    })?;
    let mut rpc = RpcSystem::new(Box::new(vat_network(stream, Side::Client)), None);
    let client: manager::Client = rpc.bootstrap(Side::Server);
    tokio::task::spawn_local(rpc);
    Ok(client)
}

/// An RPC error as the manager worded it.
pub fn rpc_err(e: capnp::Error) -> String {
    let text = e.extra.trim().to_string();
    let text = text.strip_prefix("remote exception: ").unwrap_or(&text).to_string();
    if text.is_empty() { format!("{:?}", e.kind) } else { text }
}

pub fn read(r: capnp::Result<titan_pm::titan_capnp::value::Reader<'_>>) -> Result<Value, String> {
    value::read(r.map_err(rpc_err)?, "reply").map_err(|e| e.to_string())
}

pub fn json(v: Value) -> serde_json::Value {
    value::from_value(v).unwrap_or(serde_json::Value::Null)
}
