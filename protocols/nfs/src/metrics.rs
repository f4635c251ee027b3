//! NFS server metrics: calls and time per NFSv3 procedure, refused calls.
//! Plain atomics; the binary renders them on its admin port.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of NFSv3 procedures.
const PROCS: usize = 22;

/// Counters of one NFS server.
#[derive(Debug, Default)]
pub struct NfsMetrics {
    calls: [AtomicU64; PROCS],
    micros: [AtomicU64; PROCS],
    refused: AtomicU64,
    other_calls: AtomicU64,
    replayed: AtomicU64,
    dropped_duplicates: AtomicU64,
}

impl NfsMetrics {
    /// Counts one NFSv3 call of procedure `proc_num` that took `elapsed`.
    pub(crate) fn nfs_call(&self, proc_num: u32, elapsed: Duration) {
        if let Some(i) = usize::try_from(proc_num).ok().filter(|i| *i < PROCS) {
            self.calls[i].fetch_add(1, Ordering::Relaxed);
            let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            self.micros[i].fetch_add(us, Ordering::Relaxed);
        }
    }

    /// Counts one MOUNT or PORTMAP call.
    pub(crate) fn other_call(&self) {
        self.other_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one call refused at the RPC level (bad arguments, unknown
    /// program or procedure, authentication).
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one retransmitted call answered from the reply cache.
    pub(crate) fn replayed(&self) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one retransmitted call dropped while the first still ran.
    pub(crate) fn dropped_duplicate(&self) {
        self.dropped_duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the metrics in Prometheus text format to `out`.
    pub fn render(&self, out: &mut String) {
        let names = &crate::nfs::PROC_NAMES;
        let _ = writeln!(
            out,
            "# HELP nitrofs_nfs_calls_total NFSv3 calls answered, by procedure."
        );
        let _ = writeln!(out, "# TYPE nitrofs_nfs_calls_total counter");
        for (i, name) in names.iter().enumerate().take(PROCS) {
            let n = self.calls[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "nitrofs_nfs_calls_total{{proc=\"{name}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP nitrofs_nfs_call_seconds_total Time spent answering NFSv3 calls, by procedure."
        );
        let _ = writeln!(out, "# TYPE nitrofs_nfs_call_seconds_total counter");
        for (i, name) in names.iter().enumerate().take(PROCS) {
            let s = self.micros[i].load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "nitrofs_nfs_call_seconds_total{{proc=\"{name}\"}} {s:.6}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP nitrofs_nfs_mount_portmap_calls_total MOUNT and PORTMAP calls answered."
        );
        let _ = writeln!(out, "# TYPE nitrofs_nfs_mount_portmap_calls_total counter");
        let _ = writeln!(
            out,
            "nitrofs_nfs_mount_portmap_calls_total {}",
            self.other_calls.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP nitrofs_nfs_refused_calls_total RPC calls refused (garbage arguments, unknown program or procedure, bad credentials).");
        let _ = writeln!(out, "# TYPE nitrofs_nfs_refused_calls_total counter");
        let _ = writeln!(
            out,
            "nitrofs_nfs_refused_calls_total {}",
            self.refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP nitrofs_nfs_retransmissions_total Retransmitted calls that are not idempotent, by what the reply cache did: replayed the first answer, or dropped the copy while the first still ran.");
        let _ = writeln!(out, "# TYPE nitrofs_nfs_retransmissions_total counter");
        for (outcome, n) in [
            ("replayed", &self.replayed),
            ("dropped", &self.dropped_duplicates),
        ] {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "nitrofs_nfs_retransmissions_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_procedure_and_rendered() {
        let m = NfsMetrics::default();
        m.nfs_call(1, Duration::from_micros(1500));
        m.nfs_call(1, Duration::from_micros(500));
        m.nfs_call(99, Duration::from_secs(1)); // out of range: ignored
        m.refused();
        m.replayed();
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("nitrofs_nfs_retransmissions_total{outcome=\"replayed\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("nitrofs_nfs_retransmissions_total{outcome=\"dropped\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("nitrofs_nfs_calls_total{proc=\"GETATTR\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("nitrofs_nfs_call_seconds_total{proc=\"GETATTR\"} 0.002000"),
            "{out}"
        );
        assert!(out.contains("nitrofs_nfs_refused_calls_total 1"), "{out}");
    }
}
