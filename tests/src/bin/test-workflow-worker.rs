//! A workflow class as a child worker: `TEST_WORKFLOW=slow|pool|complex|saga`.
use titan_pm_tests::workflows;

fn main() {
    let def = match std::env::var("TEST_WORKFLOW").as_deref() {
        Ok("slow") => workflows::slow_workflow(),
        Ok("pool") => workflows::pool_workflow(),
        Ok("complex") => workflows::complex_workflow(Default::default()),
        Ok("saga") => workflows::order_saga(Default::default()),
        other => panic!("unknown TEST_WORKFLOW {other:?}"),
    };
    def.run();
}
