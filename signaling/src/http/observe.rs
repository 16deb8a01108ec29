//! The control plane's own observability: requests refused by status, the merge of the hosts'
//! Prometheus texts into one valid exposition, and readiness.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// The statuses counted in `edgedesk_requests_rejected_total{status=…}`.
pub const COUNTED: [u16; 10] = [400, 401, 403, 404, 409, 413, 415, 422, 429, 503];

/// Refused requests by status.
#[derive(Debug, Default)]
pub struct Rejections {
    counts: [AtomicU64; COUNTED.len()],
}

impl Rejections {
    pub fn record(&self, status: u16) {
        if let Some(i) = COUNTED.iter().position(|&s| s == status) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, status: u16) -> u64 {
        COUNTED
            .iter()
            .position(|&s| s == status)
            .map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }
}

/// Middleware: counts every refused WHEP and API request by status.
pub(super) async fn count_rejections(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let res = next.run(req).await;
    state.rejections.record(res.status().as_u16());
    res
}

/// Merges Prometheus texts (one per host) into one exposition: each family's `# HELP` and
/// `# TYPE` once, then all its samples, families in order of first appearance.
pub fn merge_expositions(texts: &[String]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for text in texts {
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let entry = families.entry(name.clone()).or_insert_with(|| {
                    order.push(name.clone());
                    (Vec::new(), Vec::new())
                });
                if !entry.0.iter().any(|h| h == line) {
                    entry.0.push(line.to_owned());
                }
                current = name;
            } else if !line.trim().is_empty() {
                let name = line.split(['{', ' ']).next().unwrap_or_default().to_owned();
                let family = if name.starts_with(&current) && !current.is_empty() {
                    current.clone()
                } else {
                    name
                };
                families
                    .entry(family.clone())
                    .or_insert_with(|| {
                        order.push(family.clone());
                        (Vec::new(), Vec::new())
                    })
                    .1
                    .push(line.to_owned());
            }
        }
    }
    let mut out = String::new();
    for name in order {
        if let Some((head, samples)) = families.get(&name) {
            for l in head.iter().chain(samples) {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// The control plane's own families: sessions by state, refused requests by status.
pub fn control_plane_metrics(state: &AppState) -> String {
    let mut out = String::new();
    if let Some(op) = state.operator.as_deref() {
        let mut by_state: BTreeMap<&'static str, u64> =
            [("starting", 0), ("running", 0), ("failed", 0), ("ended", 0)].into();
        for s in op.manager().list() {
            let key = match s.state {
                crate::sessions::SessionState::Starting => "starting",
                crate::sessions::SessionState::Running { .. } => "running",
                crate::sessions::SessionState::Failed { .. } => "failed",
                crate::sessions::SessionState::Ended => "ended",
            };
            *by_state.entry(key).or_default() += 1;
        }
        out.push_str(
            "# HELP edgedesk_sessions_by_state Sessions this control plane knows, by state.\n",
        );
        out.push_str("# TYPE edgedesk_sessions_by_state gauge\n");
        for (k, v) in by_state {
            out.push_str(&format!(
                "edgedesk_sessions_by_state{{state=\"{k}\"}} {v}\n"
            ));
        }
        let e = op.manager().host_events();
        out.push_str(
            "# HELP edgedesk_host_events_total Session host processes: crashed (exited unasked), taken_back (reconnected to a restarted control plane), not_back (did not).\n",
        );
        out.push_str("# TYPE edgedesk_host_events_total counter\n");
        for (k, v) in [
            ("crashed", e.crashed),
            ("taken_back", e.taken_back),
            ("not_back", e.not_back),
        ] {
            out.push_str(&format!(
                "edgedesk_host_events_total{{event=\"{k}\"}} {v}\n"
            ));
        }
    }
    out.push_str(
        "# HELP edgedesk_requests_rejected_total WHEP and API requests refused, by HTTP status.\n",
    );
    out.push_str("# TYPE edgedesk_requests_rejected_total counter\n");
    for s in COUNTED {
        out.push_str(&format!(
            "edgedesk_requests_rejected_total{{status=\"{s}\"}} {}\n",
            state.rejections.get(s)
        ));
    }
    out
}

/// What `/readyz` checks: a check that says why this node cannot start a session now.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expositions_merge_into_one_family_each() {
        let a = "# HELP x_total X.\n# TYPE x_total counter\nx_total{session=\"a\"} 1\n# HELP y Y.\n# TYPE y gauge\ny{session=\"a\"} 2\n".to_owned();
        let b = "# HELP x_total X.\n# TYPE x_total counter\nx_total{session=\"b\"} 3\n".to_owned();
        assert_eq!(
            merge_expositions(&[a, b]),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{session=\"a\"} 1\nx_total{session=\"b\"} 3\n# HELP y Y.\n# TYPE y gauge\ny{session=\"a\"} 2\n"
        );
    }

    #[test]
    fn rejections_count_known_statuses_only() {
        let r = Rejections::default();
        r.record(401);
        r.record(401);
        r.record(200);
        r.record(503);
        assert_eq!(
            (r.get(401), r.get(503), r.get(200), r.get(404)),
            (2, 1, 0, 0)
        );
    }
}
