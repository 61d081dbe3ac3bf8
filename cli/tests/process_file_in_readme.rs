//! The process file the README's "Operating" section shows is read by core
//! as written (every option known, names as shown), so the guide stays true.

#[test]
fn the_readme_process_file_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("### The process file").nth(1).expect("the README has the process file section");
    let block = section.split("```toml").nth(1).and_then(|b| b.split("```").next()).expect("a toml block");
    let toml: toml::Value = toml::from_str(block).expect("valid TOML");
    let v = titan_pm::value::to_value(&serde_json::to_value(toml).unwrap()).unwrap();
    let file = titan_pm::control::file::parse(&v).expect("core reads it");
    let names: Vec<&str> = file.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["api", "calc", "orders", "app"]);
    assert_eq!(file.manager.timeout, std::time::Duration::from_secs(5));
    assert_eq!(file.manager.restart.max_restarts, 5);
}
