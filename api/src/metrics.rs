//! Request counters and latency, rendered as Prometheus text.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crate::app::AppState;

#[derive(Default)]
pub struct Metrics {
    /// Responses by status class 1xx..5xx.
    by_class: [AtomicU64; 5],
    latency_micros_sum: AtomicU64,
    /// UI (LiveView) sessions whose socket is open.
    ui_sessions: Arc<AtomicI64>,
}

/// Counts one live UI session until dropped.
pub struct LiveSession(Arc<AtomicI64>);

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A UI session started; it counts as live until the returned guard is dropped.
    pub fn ui_session(&self) -> LiveSession {
        self.ui_sessions.fetch_add(1, Ordering::Relaxed);
        LiveSession(self.ui_sessions.clone())
    }

    /// UI sessions whose socket is open.
    pub fn live_ui_sessions(&self) -> i64 {
        self.ui_sessions.load(Ordering::Relaxed)
    }

    pub fn record(&self, status: u16, micros: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.latency_micros_sum.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP cinelog_http_requests_total HTTP responses by status class."
        );
        let _ = writeln!(out, "# TYPE cinelog_http_requests_total counter");
        let mut total = 0;
        for (i, n) in self.by_class.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            total += n;
            let _ = writeln!(
                out,
                "cinelog_http_requests_total{{status=\"{}xx\"}} {n}",
                i + 1
            );
        }
        let _ = writeln!(
            out,
            "# HELP cinelog_http_request_duration_seconds Time spent answering HTTP requests."
        );
        let _ = writeln!(out, "# TYPE cinelog_http_request_duration_seconds summary");
        let _ = writeln!(
            out,
            "cinelog_http_request_duration_seconds_sum {}",
            self.latency_micros_sum.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "cinelog_http_request_duration_seconds_count {total}");
        let _ = writeln!(
            out,
            "# HELP cinelog_ui_sessions_live UI sessions whose socket is open."
        );
        let _ = writeln!(out, "# TYPE cinelog_ui_sessions_live gauge");
        let _ = writeln!(out, "cinelog_ui_sessions_live {}", self.live_ui_sessions());
        out
    }
}

pub async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics.record(
        response.status().as_u16(),
        started.elapsed().as_micros() as u64,
    );
    response
}

/// A gauge per projection: its name, help text, and how to read it off a status.
type ProjectionGauge = (
    &'static str,
    &'static str,
    fn(&cinelog_projections::ProjectionStatus) -> String,
);

/// Each projection's position and lag, in the Prometheus text format.
pub fn projection_gauges(statuses: &[cinelog_projections::ProjectionStatus]) -> String {
    use std::fmt::Write;
    let gauges: [ProjectionGauge; 3] = [
        (
            "cinelog_projection_position",
            "Global position of the last event a projection applied.",
            |p| p.position.to_string(),
        ),
        (
            "cinelog_projection_lag_events",
            "Events in the log a projection has not applied yet.",
            |p| p.lag_events.to_string(),
        ),
        (
            "cinelog_projection_lag_seconds",
            "Age of the oldest event a projection has not applied yet.",
            |p| p.lag_seconds.to_string(),
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for p in statuses {
            let _ = writeln!(out, "{name}{{projection=\"{}\"}} {}", p.name, value(p));
        }
    }
    out
}
