//! The test worker as an executable target.
fn main() {
    if std::env::var("TEST_MODE").as_deref() == Ok("die-before-register") {
        eprintln!("test-worker: dying before registration on purpose");
        std::process::exit(3);
    }
    titan_pm_tests::test_worker().run()
}
