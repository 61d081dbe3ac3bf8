//! Regenerates `core/src/generated/titan_capnp.rs` from `schema/titan.capnp`.
//!
//! Only this tool needs the `capnp` compiler (Debian: `apt-get install capnproto`);
//! builds and installs use the committed output. Run from anywhere in the repo:
//! `cargo run -p schema-gen`.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("core/src/generated");
    let result = capnpc::CompilerCommand::new()
        .src_prefix(root.join("schema"))
        .file(root.join("schema/titan.capnp"))
        .output_path(&out)
        .run();
    if let Err(e) = result {
        eprintln!("schema-gen: {e} (is the capnp compiler installed? apt-get install capnproto)");
        std::process::exit(1);
    }
    println!("schema-gen: wrote {}", out.join("titan_capnp.rs").display());
}
