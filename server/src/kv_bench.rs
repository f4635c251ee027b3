//! `nitrofs kv bench`: load against a KV space from one process, the way an
//! inference engine's connector would drive it, reporting ops/s, GiB/s and
//! latency percentiles. Keys are `bench/<run>/<n>` so runs do not collide.

use clap::{Args, ValueEnum};
use nitrofs_kv_client::{KvClient, PutMode};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchOp {
    /// One put per operation (overwrite).
    Put,
    /// One get per operation (keys are loaded first, unmeasured).
    Get,
    /// One batch put of `--batch` values per operation.
    BatchPut,
    /// One batch get of `--batch` keys per operation.
    BatchGet,
    /// One prefix_match over `--batch` keys per operation (half of each
    /// run exists).
    PrefixMatch,
    /// 90% get, 10% put.
    Mixed,
}

/// Arguments of `nitrofs kv bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Space to load (it must exist; the bench writes `bench/…` keys).
    #[arg(long)]
    pub space: String,
    /// Workload.
    #[arg(long, value_enum, default_value = "put")]
    pub op: BenchOp,
    /// Value size (e.g. 65536, 1MiB, 4MiB).
    #[arg(long, default_value = "1MiB", value_parser = crate::admin::kv_spaces::parse_bytes)]
    pub size: u64,
    /// Operations to run.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Keys per batch operation.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Connections to the data node.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Keys the get-style workloads read from (loaded first).
    #[arg(long, default_value_t = 256)]
    pub keyspace: u64,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// The key `bench/<run in hex>/<n, 12 digits or more>`, written by hand:
/// ops make up to 64 keys each, and `format!` was ~15% of the client's CPU
/// in a prefix_match run (perf), time a real client (holding its keys)
/// would not spend.
fn key(run: u64, n: u64) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut k = Vec::with_capacity(6 + 16 + 1 + 20);
    k.extend_from_slice(b"bench/");
    let hex_digits = (64 - run.leading_zeros()).div_ceil(4).max(1);
    for i in (0..hex_digits).rev() {
        k.push(HEX[((run >> (4 * i)) & 0xf) as usize]);
    }
    k.push(b'/');
    let mut dec = [b'0'; 20];
    let (mut x, mut at) = (n, dec.len());
    loop {
        at -= 1;
        dec[at] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let width = (dec.len() - at).max(12);
    k.extend_from_slice(&dec[dec.len() - width..]);
    k
}

/// Runs the bench and prints its summary.
pub async fn run(client: &KvClient, a: &BenchArgs) -> Result<(), crate::Error> {
    if a.concurrency == 0 || a.batch == 0 || a.count == 0 || a.keyspace == 0 {
        return Err("--count, --concurrency, --batch and --keyspace must be at least 1".into());
    }
    let size = usize::try_from(a.size).map_err(|_| "--size too large")?;
    let run: u64 = rand::random::<u64>() & 0xffff_ffff;
    let mut value = vec![0u8; size];
    for (i, b) in value.iter_mut().enumerate() {
        *b = (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[0] ^ run as u8;
    }
    let value = Arc::new(value);
    let reads = matches!(
        a.op,
        BenchOp::Get | BenchOp::BatchGet | BenchOp::PrefixMatch | BenchOp::Mixed
    );
    if reads {
        // Load the key space (unmeasured); prefix-match loads the even keys only.
        let step = if a.op == BenchOp::PrefixMatch { 2 } else { 1 };
        let keys: Vec<Vec<u8>> = (0..a.keyspace).step_by(step).map(|n| key(run, n)).collect();
        for chunk in keys.chunks(64) {
            let items: Vec<(&[u8], &[u8])> = chunk
                .iter()
                .map(|k| (k.as_slice(), value.as_slice()))
                .collect();
            client
                .batch_put(&a.space, &items, PutMode::Overwrite)
                .await?;
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let progress = (!a.no_progress).then(|| spawn_progress(done.clone(), a.count));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (client, value, next, done) =
            (client.clone(), value.clone(), next.clone(), done.clone());
        let (space, op, batch, keyspace, count) =
            (a.space.clone(), a.op, a.batch as u64, a.keyspace, a.count);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let t = Instant::now();
                bytes += one_op(&client, &space, op, run, i, batch, keyspace, &value).await?;
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, nitrofs_kv_client::KvError>((lat, bytes))
        }));
    }
    let mut lat = Vec::with_capacity(a.count as usize);
    let mut bytes = 0u64;
    for t in tasks {
        let (l, b) = t.await.map_err(|e| format!("bench task failed: {e}"))??;
        lat.extend(l);
        bytes += b;
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| -> Duration {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
        lat.get(i).copied().unwrap_or_default()
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ops = lat.len() as f64;
    let per_op = match a.op {
        BenchOp::BatchGet | BenchOp::BatchPut | BenchOp::PrefixMatch => a.batch,
        _ => 1,
    };
    crate::print_lines(&[
        format!(
            "op={} size={} count={} concurrency={} batch={} connections={}",
            a.op.to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_string()),
            a.size,
            a.count,
            a.concurrency,
            a.batch,
            a.connections
        ),
        format!("elapsed: {secs:.3} s"),
        format!("ops/s: {:.1}", ops / secs),
        format!("keys/s: {:.1}", ops * per_op as f64 / secs),
        format!("GiB/s: {:.3}", bytes as f64 / secs / (1u64 << 30) as f64),
        format!("p50: {}", fmt_latency(pct(0.50))),
        format!("p99: {}", fmt_latency(pct(0.99))),
        format!("p999: {}", fmt_latency(pct(0.999))),
    ])?;
    Ok(())
}

fn fmt_latency(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// One measured operation; returns the value bytes it moved.
#[allow(clippy::too_many_arguments)]
async fn one_op(
    client: &KvClient,
    space: &str,
    op: BenchOp,
    run: u64,
    i: u64,
    batch: u64,
    keyspace: u64,
    value: &[u8],
) -> Result<u64, nitrofs_kv_client::KvError> {
    let size = value.len() as u64;
    match op {
        BenchOp::Put => {
            client.put(space, &key(run, keyspace + i), value).await?;
            Ok(size)
        }
        BenchOp::Get => {
            let v = client.get(space, &key(run, i % keyspace)).await?;
            Ok(v.map_or(0, |v| v.len() as u64))
        }
        BenchOp::Mixed if i.is_multiple_of(10) => {
            client.put(space, &key(run, i % keyspace), value).await?;
            Ok(size)
        }
        BenchOp::Mixed => {
            let v = client.get(space, &key(run, i % keyspace)).await?;
            Ok(v.map_or(0, |v| v.len() as u64))
        }
        BenchOp::BatchPut => {
            let keys: Vec<Vec<u8>> = (0..batch)
                .map(|b| key(run, keyspace + i * batch + b))
                .collect();
            let items: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), value)).collect();
            client.batch_put(space, &items, PutMode::Overwrite).await?;
            Ok(size * batch)
        }
        BenchOp::BatchGet => {
            let keys: Vec<Vec<u8>> = (0..batch)
                .map(|b| key(run, (i * batch + b) % keyspace))
                .collect();
            let vals = client.batch_get(space, &keys).await?;
            Ok(vals.iter().flatten().map(|v| v.len() as u64).sum())
        }
        BenchOp::PrefixMatch => {
            let base = (i * 2) % keyspace;
            let keys: Vec<Vec<u8>> = (0..batch).map(|b| key(run, base + b)).collect();
            client.prefix_match(space, &keys).await?;
            Ok(0)
        }
    }
}

/// Redraws a progress bar on stderr (a terminal) or prints every 10%.
fn spawn_progress(done: Arc<AtomicU64>, total: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let mut last_decile = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let d = done.load(Ordering::Relaxed).min(total);
            let frac = d as f64 / total as f64;
            if tty {
                let filled = (frac * 40.0) as usize;
                eprint!(
                    "\r[{}{}] {d}/{total}",
                    "#".repeat(filled),
                    " ".repeat(40 - filled)
                );
                let _ = std::io::stderr().flush();
            } else if (frac * 10.0) as u64 > last_decile {
                last_decile = (frac * 10.0) as u64;
                eprintln!("progress: {d}/{total}");
            }
            if d >= total {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_what_format_would_write() {
        for run in [0u64, 1, 0xf, 0x10, 0xdead_beef, 0xffff_ffff, u64::MAX] {
            for n in [0u64, 7, 999_999_999_999, 1_000_000_000_000, u64::MAX] {
                assert_eq!(
                    super::key(run, n),
                    format!("bench/{run:x}/{n:012}").into_bytes(),
                    "run {run:x} n {n}"
                );
            }
        }
    }
}
