//! The core's reports (process info, health, metrics, events, pool metrics and
//! events) as Python dicts: core builds each report's one `Value` shape in the
//! Python dialect (`process_id`, seconds for durations); this file only converts.

use pyo3::prelude::*;
use titan_pm::options::Dialect;
use titan_pm::reports::Report;

use crate::convert;

/// Any core report as its Python dict (or list).
pub fn to_py<'py>(py: Python<'py>, report: &impl Report) -> PyResult<Bound<'py, PyAny>> {
    convert::to_py(py, &report.report(Dialect::Python))
}
