//! Rust code generated from `schema/titan.capnp` by `cargo run -p schema-gen`. Do not edit.
#![allow(clippy::all, unused, missing_docs)]
#[rustfmt::skip]
pub mod titan_capnp;
