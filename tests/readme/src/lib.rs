//! The README's Rust code blocks, compiled so they cannot drift from the API.
//!
//! build.rs extracts every block fenced ```rust (not ```rust ignore): a block
//! with a `fn main` becomes a module of its own; the other blocks are steps of
//! one host example and go, in README order, into one `async fn steps` (so a
//! later block may use what an earlier one defined; `user_id: String` is given).
//! `cargo build --workspace` (scripts/test.sh) compiles them; they do not run.

include!(concat!(env!("OUT_DIR"), "/snippets.rs"));
