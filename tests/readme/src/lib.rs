//! The README's Rust code blocks, compiled so they cannot drift from the API.
//!
//! build.rs extracts every block fenced ```rust (not ```rust ignore): a block
//! with a `fn main` becomes a module of its own; any other block is the body
//! of an `async fn` of its own returning `Result<(), Box<dyn Error>>` (so `?`
//! works), given `pm: &ProcessManager` and `user_id: String`.
//! `cargo build --workspace` (scripts/test.sh) compiles them; they do not run.

include!(concat!(env!("OUT_DIR"), "/snippets.rs"));
