//! What a run reports while it goes: `workflow:started`, `stage:started`,
//! `stage:completed`, `stage:failed`, `stage:retrying`, `compensation:started`,
//! `compensation:completed`, `workflow:completed`, `workflow:failed`. Each event
//! has a [`name`](WorkflowEvent::name) and its fields as a map in the caller's
//! dialect ([`crate::reports::Report`]).

use std::time::Duration;

use crate::dialect::Dialect;
use crate::reports::Report;
use crate::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowEvent {
    pub workflow: String,
    pub run_id: String,
    pub kind: WorkflowEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowEventKind {
    /// `resumed`: the run was unfinished in the journal (its host died) and goes on here.
    Started { resumed: bool },
    StageStarted { stage: String, attempt: u32 },
    StageCompleted { stage: String, attempt: u32, duration: Duration },
    /// One attempt failed (a retry may follow).
    StageFailed { stage: String, attempt: u32, error: String },
    StageRetrying { stage: String, attempt: u32, delay: Duration },
    CompensationStarted { stage: String, method: String, attempt: u32 },
    /// `error` is set when the compensation failed after its retries.
    CompensationCompleted { stage: String, method: String, error: Option<String> },
    Completed,
    Failed { stage: String, error: String },
}

impl WorkflowEvent {
    pub fn name(&self) -> &'static str {
        match self.kind {
            WorkflowEventKind::Started { .. } => "workflow:started",
            WorkflowEventKind::StageStarted { .. } => "stage:started",
            WorkflowEventKind::StageCompleted { .. } => "stage:completed",
            WorkflowEventKind::StageFailed { .. } => "stage:failed",
            WorkflowEventKind::StageRetrying { .. } => "stage:retrying",
            WorkflowEventKind::CompensationStarted { .. } => "compensation:started",
            WorkflowEventKind::CompensationCompleted { .. } => "compensation:completed",
            WorkflowEventKind::Completed => "workflow:completed",
            WorkflowEventKind::Failed { .. } => "workflow:failed",
        }
    }

    /// The stage the event is about, if any.
    pub fn stage(&self) -> Option<&str> {
        match &self.kind {
            WorkflowEventKind::StageStarted { stage, .. }
            | WorkflowEventKind::StageCompleted { stage, .. }
            | WorkflowEventKind::StageFailed { stage, .. }
            | WorkflowEventKind::StageRetrying { stage, .. }
            | WorkflowEventKind::CompensationStarted { stage, .. }
            | WorkflowEventKind::CompensationCompleted { stage, .. }
            | WorkflowEventKind::Failed { stage, .. } => Some(stage),
            WorkflowEventKind::Started { .. } | WorkflowEventKind::Completed => None,
        }
    }
}

impl Report for WorkflowEvent {
    fn report(&self, dialect: Dialect) -> Value {
        let d = |t: &Duration| match dialect {
            Dialect::Js => Value::Int(t.as_millis() as i64),
            _ => Value::Float(t.as_secs_f64()),
        };
        let text = |s: &str| Value::Text(s.to_string());
        let mut f: Vec<(&str, Value)> = vec![("type", text(self.name())), ("workflow", text(&self.workflow)), ("runId", text(&self.run_id))];
        match &self.kind {
            WorkflowEventKind::Started { resumed } => f.push(("resumed", Value::Bool(*resumed))),
            WorkflowEventKind::StageStarted { stage, attempt } => f.extend([("stage", text(stage)), ("attempt", Value::Int(*attempt as i64))]),
            WorkflowEventKind::StageCompleted { stage, attempt, duration } => {
                f.extend([("stage", text(stage)), ("attempt", Value::Int(*attempt as i64)), ("duration", d(duration))])
            }
            WorkflowEventKind::StageFailed { stage, attempt, error } => {
                f.extend([("stage", text(stage)), ("attempt", Value::Int(*attempt as i64)), ("error", text(error))])
            }
            WorkflowEventKind::StageRetrying { stage, attempt, delay } => {
                f.extend([("stage", text(stage)), ("attempt", Value::Int(*attempt as i64)), ("delay", d(delay))])
            }
            WorkflowEventKind::CompensationStarted { stage, method, attempt } => {
                f.extend([("stage", text(stage)), ("method", text(method)), ("attempt", Value::Int(*attempt as i64))])
            }
            WorkflowEventKind::CompensationCompleted { stage, method, error } => f.extend([
                ("stage", text(stage)),
                ("method", text(method)),
                ("error", error.as_deref().map(text).unwrap_or(Value::Null)),
            ]),
            WorkflowEventKind::Completed => {}
            WorkflowEventKind::Failed { stage, error } => f.extend([("stage", text(stage)), ("error", text(error))]),
        }
        Value::Map(f.into_iter().map(|(k, v)| (dialect.name(k).into_owned(), v)).collect())
    }
}
