//! The test worker as an executable target.
fn main() {
    if std::env::var("TEST_MODE").as_deref() == Ok("die-before-register") {
        eprintln!("test-worker: dying before registration on purpose");
        std::process::exit(3);
    }
    if std::env::var("TEST_DIE_IF_EXISTS").is_ok_and(|f| std::path::Path::new(&f).exists()) {
        eprintln!("test-worker: refusing to start on purpose");
        std::process::exit(4);
    }
    titan_pm_tests::test_worker().run()
}
