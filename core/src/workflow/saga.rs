//! Saga compensation: what runs when a stage fails for good. First the failed
//! stage's own compensation (it may have partly happened: null result and the
//! error), then those of the stages cancelled mid-flight (null result, a
//! `CancelledError`), then those of the completed stages in reverse order of
//! completion, each with its stage's result. One at a time, each journaled
//! before it runs and when it ends; a failing one is retried with the
//! workflow's backoff, then recorded as failed, and the next one runs. A run
//! resumed while compensating skips the compensations that already ended.

use super::execution::{context, emit, retryable, Run};
use super::journal::Entry;
use super::{error_to_value, CompensationOutcome, WorkflowEventKind};
use crate::error::{Error, Result};
use crate::value::Value;

pub(crate) async fn compensate(run: &Run, failed: &str, error: &Error, cancelled: &[String]) -> Result<Vec<CompensationOutcome>> {
    let mut todo: Vec<(String, Value, Value)> = vec![(failed.to_string(), Value::Null, error_to_value(error))];
    for c in cancelled {
        todo.push((c.clone(), Value::Null, error_to_value(&Error::Cancelled)));
    }
    for s in run.progress.order.iter().rev() {
        todo.push((s.clone(), run.progress.results[s].clone(), Value::Null));
    }
    let wf = &run.wf;
    let mut outcomes = Vec::new();
    for (stage, result, stage_error) in todo {
        let Some(method) = wf.def.stage(&stage).and_then(|s| s.compensation.clone()) else { continue };
        if let Some(done) = run.progress.compensated.get(&stage) {
            outcomes.push(done.clone());
            continue;
        }
        let mut attempt = run.progress.compensation_attempts.get(&stage).copied().unwrap_or(0) + 1;
        let mut failures = 0;
        let outcome = loop {
            let started = Entry::CompensationStarted { stage: stage.clone(), attempt };
            wf.journal.append(&run.run_id, &run.owner, started).await?;
            emit(wf, &run.run_id, WorkflowEventKind::CompensationStarted { stage: stage.clone(), method: method.clone(), attempt });
            let ctx = context(wf, &run.run_id, &stage, attempt, format!("{}/{stage}/compensate", run.run_id));
            let args = vec![result.clone(), stage_error.clone(), ctx];
            match wf.runner.call_stage(&method, args, None).await {
                Ok(_) => {
                    wf.journal.append(&run.run_id, &run.owner, Entry::CompensationCompleted { stage: stage.clone(), attempt }).await?;
                    break CompensationOutcome { stage: stage.clone(), method: method.clone(), attempts: attempt, error: None };
                }
                Err(e) => {
                    failures += 1;
                    if failures > wf.options.compensation_retries || !retryable(&e) {
                        let entry = Entry::CompensationFailed { stage: stage.clone(), attempt, error: error_to_value(&e) };
                        wf.journal.append(&run.run_id, &run.owner, entry).await?;
                        let message = outcome_message(&error_to_value(&e));
                        break CompensationOutcome { stage: stage.clone(), method: method.clone(), attempts: attempt, error: Some(message) };
                    }
                    wf.pm.clock().sleep(wf.options.backoff.jittered(failures, wf.options.jitter, fastrand::f64())).await;
                    attempt += 1;
                }
            }
        };
        emit(wf, &run.run_id, WorkflowEventKind::CompensationCompleted { stage: stage.clone(), method: method.clone(), error: outcome.error.clone() });
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// `Class: message` of a stored error, as a compensation's outcome names it.
pub(crate) fn outcome_message(error: &Value) -> String {
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    let class = error.get("remoteType").or(error.get("class")).and_then(Value::as_str).unwrap_or("Error");
    format!("{class}: {message}")
}
