//! Metrics of the `nitrofs` binary, exported as Prometheus text on the
//! admin port (`GET /metrics`).
//!
//! Counters are plain atomics owned here; values that live in the core
//! (volume count, chunk size, boot count) are read when a scrape arrives
//! and handed in as a [`Snapshot`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counters of one server process.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Admin requests answered, by status class 2xx, 3xx, 4xx, 5xx.
    admin_responses: [AtomicU64; 4],
}

/// Core values read at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Number of volumes.
    pub volumes: usize,
    /// Chunk size new files get.
    pub chunk_size: u32,
    /// How many times the store has been opened.
    pub boot_count: u64,
}

const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Starts the uptime clock.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            admin_responses: Default::default(),
        }
    }

    /// Counts one admin response with this HTTP status code.
    pub fn admin_response(&self, status: u16) {
        let class = match status {
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => 0,
        };
        self.admin_responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric in the Prometheus text exposition format 0.0.4.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        let one = |value: String| vec![(String::new(), value)];
        let build = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
        family(
            &mut out,
            "nitrofs_build_info",
            "gauge",
            "Build information; the value is always 1.",
            &[(build, "1".to_string())],
        );
        family(
            &mut out,
            "nitrofs_uptime_seconds",
            "gauge",
            "Seconds since this server process started.",
            &one(format!("{:.3}", self.started.elapsed().as_secs_f64())),
        );
        family(
            &mut out,
            "nitrofs_volumes",
            "gauge",
            "Number of volumes (NFS exports).",
            &one(snap.volumes.to_string()),
        );
        family(
            &mut out,
            "nitrofs_chunk_size_bytes",
            "gauge",
            "Chunk size given to newly created files.",
            &one(snap.chunk_size.to_string()),
        );
        family(
            &mut out,
            "nitrofs_boot_count",
            "gauge",
            "How many times the data directory has been opened.",
            &one(snap.boot_count.to_string()),
        );
        let responses: Vec<(String, String)> = CLASSES
            .iter()
            .zip(&self.admin_responses)
            .map(|(class, n)| {
                let count = n.load(Ordering::Relaxed);
                (format!("code=\"{class}\""), count.to_string())
            })
            .collect();
        family(
            &mut out,
            "nitrofs_admin_responses_total",
            "counter",
            "Admin API responses sent, by status class.",
            &responses,
        );
        out
    }
}

/// Writes one metric family: HELP, TYPE and one sample per label set
/// (an empty label set writes the bare name).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_exposes_volumes_build_info_and_uptime() {
        let m = Metrics::new();
        m.admin_response(200);
        m.admin_response(201);
        m.admin_response(404);
        let text = m.render(&Snapshot {
            volumes: 3,
            chunk_size: 4 << 20,
            boot_count: 7,
        });
        assert!(text.contains("# TYPE nitrofs_volumes gauge\nnitrofs_volumes 3\n"));
        assert!(text.contains(&format!(
            "nitrofs_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains("\nnitrofs_uptime_seconds "));
        assert!(text.contains("nitrofs_admin_responses_total{code=\"2xx\"} 2\n"));
        assert!(text.contains("nitrofs_admin_responses_total{code=\"4xx\"} 1\n"));
        assert!(text.contains("nitrofs_boot_count 7\n"));
        // Every sample line belongs to a family announced by HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }
}
