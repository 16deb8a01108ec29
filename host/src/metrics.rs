//! Prometheus metrics of the host, in the text exposition format (version 0.0.4), written by
//! hand: a few dozen samples do not need a metrics crate.
//!
//! Every sample of a session carries `session="NAME"`. Counters are monotonic for the
//! session's lifetime: a viewer that leaves has its counters folded into the session's
//! totals, so a scrape never sees a counter go down.

use std::collections::HashMap;
use std::fmt::Write as _;

/// Whether a metric only goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Collects samples, then renders them grouped by metric name (as the format requires).
#[derive(Debug, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: u64,
    ) {
        self.push(name, help, Kind::Counter, labels, value as f64);
    }

    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.push(name, help, Kind::Gauge, labels, value);
    }

    fn push(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.samples.push(Sample {
            name,
            help,
            kind,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            value,
        });
    }

    /// The text exposition: `# HELP` and `# TYPE` once per metric, then its samples.
    pub fn render(&self) -> String {
        let mut order: Vec<&'static str> = Vec::new();
        let mut by_name: HashMap<&'static str, Vec<&Sample>> = HashMap::new();
        for s in &self.samples {
            by_name
                .entry(s.name)
                .or_insert_with(|| {
                    order.push(s.name);
                    Vec::new()
                })
                .push(s);
        }
        let mut out = String::new();
        for name in order {
            let samples = &by_name[name];
            let kind = match samples[0].kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", samples[0].help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for s in samples {
                out.push_str(name);
                if !s.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(s.value));
            }
        }
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_grouped_escaped_samples() {
        let mut m = Metrics::new();
        m.counter("edgedesk_x_total", "X things.", &[("session", "a")], 3);
        m.gauge("edgedesk_y", "Y now.", &[], 0.25);
        m.counter(
            "edgedesk_x_total",
            "X things.",
            &[("session", "b\"\\\n")],
            4,
        );
        assert_eq!(
            m.render(),
            "# HELP edgedesk_x_total X things.\n\
             # TYPE edgedesk_x_total counter\n\
             edgedesk_x_total{session=\"a\"} 3\n\
             edgedesk_x_total{session=\"b\\\"\\\\\\n\"} 4\n\
             # HELP edgedesk_y Y now.\n\
             # TYPE edgedesk_y gauge\n\
             edgedesk_y 0.25\n"
        );
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(1e20), "100000000000000000000");
    }
}
