//! Extracts the README's ```rust blocks into `$OUT_DIR/snippets.rs` (see
//! src/lib.rs for how each block is wrapped). A block fenced ```rust ignore
//! is skipped.
use std::{env, fs, path::PathBuf};

fn main() {
    let readme = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = fs::read_to_string(&readme).expect("README.md");
    let mut out = String::new();
    let mut body: Option<(usize, Vec<&str>)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut body {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let words: Vec<&str> = info.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
                    if words.first() == Some(&"rust") && !words.contains(&"ignore") {
                        body = Some((n + 1, Vec::new()));
                    }
                }
            }
            Some((start, lines)) => {
                if trimmed.starts_with("```") {
                    let (start, lines) = (*start, std::mem::take(lines));
                    body = None;
                    let code = lines.join("\n");
                    if code.contains("fn main") {
                        // A whole program: a module of its own.
                        out.push_str(&format!("/// README.md line {start}\n#[allow(dead_code)]\nmod block_{start} {{\n{code}\n}}\n"));
                    } else {
                        // A fragment of a host: the body of an async function of its own.
                        out.push_str(&format!(
                            "/// README.md line {start}\n#[allow(unused_variables, unused_imports, unreachable_code, dead_code, clippy::all)]\n\
                             async fn block_{start}(pm: &titan_pm::ProcessManager, user_id: String) -> Result<(), Box<dyn std::error::Error>> {{\n\
                             {code}\n    Ok(())\n}}\n"
                        ));
                    }
                } else {
                    lines.push(line);
                }
            }
        }
    }
    fs::write(PathBuf::from(env::var("OUT_DIR").unwrap()).join("snippets.rs"), out).unwrap();
}
