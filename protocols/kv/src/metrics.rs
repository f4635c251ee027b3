//! KV service metrics: requests by message and outcome, bytes moved,
//! sessions and failed authentications. Plain atomics; the binary renders
//! them on its admin port.

use nitrofs_kv_wire::msg;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Messages counted by name, in `msg` order.
const OPS: [(u16, &str); 17] = [
    (msg::HELLO, "hello"),
    (msg::AUTH, "auth"),
    (msg::ROUTING, "routing"),
    (msg::RDMA_CONNECT, "rdma_connect"),
    (msg::PUT, "put"),
    (msg::GET, "get"),
    (msg::DELETE, "delete"),
    (msg::EXISTS, "exists"),
    (msg::GET_REMOTE, "get_remote"),
    (msg::PUT_REMOTE, "put_remote"),
    (msg::BATCH_PUT, "batch_put"),
    (msg::BATCH_GET, "batch_get"),
    (msg::BATCH_EXISTS, "batch_exists"),
    (msg::BATCH_DELETE, "batch_delete"),
    (msg::PREFIX_MATCH, "prefix_match"),
    (msg::SCAN, "scan"),
    (msg::STAT, "stat"),
];

/// Status numbers are small; one slot each, the last for unknown ones.
const STATUSES: usize = 18;

/// Counters of one KV service.
#[derive(Debug, Default)]
pub struct KvMetrics {
    requests: [Counter; OPS.len() + 1],
    statuses: [Counter; STATUSES],
    /// Connections opened.
    pub sessions: Counter,
    /// AUTH requests that failed.
    pub auth_failures: Counter,
    /// Value bytes received.
    pub bytes_in: Counter,
    /// Value bytes sent.
    pub bytes_out: Counter,
}

impl KvMetrics {
    /// Counts one answered request.
    pub fn record(&self, op: u16, status: u16) {
        let i = OPS.iter().position(|(m, _)| *m == op).unwrap_or(OPS.len());
        self.requests[i].inc();
        self.statuses[usize::from(status).min(STATUSES - 1)].inc();
    }

    /// Requests answered for message `op`.
    pub fn requests(&self, op: u16) -> u64 {
        let i = OPS.iter().position(|(m, _)| *m == op).unwrap_or(OPS.len());
        self.requests[i].get()
    }

    /// Appends the metrics in Prometheus text format to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP nitrofs_kv_requests_total KV requests answered, by message."
        );
        let _ = writeln!(out, "# TYPE nitrofs_kv_requests_total counter");
        let names = OPS.iter().map(|(_, n)| *n).chain(["unknown"]);
        for (name, c) in names.zip(&self.requests) {
            let _ = writeln!(
                out,
                "nitrofs_kv_requests_total{{op=\"{name}\"}} {}",
                c.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP nitrofs_kv_responses_total KV responses, by status number."
        );
        let _ = writeln!(out, "# TYPE nitrofs_kv_responses_total counter");
        for (i, c) in self.statuses.iter().enumerate() {
            let v = c.get();
            if v > 0 {
                let _ = writeln!(out, "nitrofs_kv_responses_total{{status=\"{i}\"}} {v}");
            }
        }
        for (name, help, c) in [
            (
                "nitrofs_kv_sessions_total",
                "KV connections opened.",
                &self.sessions,
            ),
            (
                "nitrofs_kv_auth_failures_total",
                "KV authentications refused.",
                &self.auth_failures,
            ),
            (
                "nitrofs_kv_bytes_in_total",
                "Value bytes received by the KV service.",
                &self.bytes_in,
            ),
            (
                "nitrofs_kv_bytes_out_total",
                "Value bytes sent by the KV service.",
                &self.bytes_out,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", c.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_message_and_rendered() {
        let m = KvMetrics::default();
        m.record(msg::GET, 0);
        m.record(msg::GET, 1);
        m.record(999, 11);
        m.record(msg::GET_REMOTE, 16);
        assert_eq!(m.requests(msg::GET), 2);
        assert_eq!(m.requests(msg::GET_REMOTE), 1);
        assert_eq!(m.requests(msg::PUT_REMOTE), 0);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("nitrofs_kv_requests_total{op=\"get\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("nitrofs_kv_requests_total{op=\"unknown\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("nitrofs_kv_responses_total{status=\"11\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("nitrofs_kv_responses_total{status=\"16\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("nitrofs_kv_requests_total{op=\"get_remote\"} 1"),
            "{out}"
        );
    }
}
