//! A KV-cache connector's round trip, as an inference engine would do it:
//! hash the prompt's token blocks, ask which leading blocks are cached,
//! fetch those in one batch, compute and store the rest (immutable:
//! put-if-absent).
//!
//! ```sh
//! nitrofs admin kv-space create cache --capacity 1GiB
//! NITROFS_ACCESS_KEY=… NITROFS_SECRET_KEY=… \
//!     cargo run -p nitrofs-kv-client --example kvcache -- 127.0.0.1:9100 cache
//! ```

use nitrofs_kv_client::{ClientConfig, KvClient, KvError};

/// A 64 KiB "KV block" for token block `i` of a prompt (stands in for
/// the attention keys and values an engine would compute).
fn block(prompt: u64, i: usize) -> Vec<u8> {
    (0..64 * 1024)
        .map(|j| (prompt as usize ^ i ^ j) as u8)
        .collect()
}

/// Prefix keys chain the blocks: block i's key covers blocks 0..=i.
fn prefix_keys(prompt: u64, blocks: usize) -> Vec<Vec<u8>> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ prompt;
    (0..blocks)
        .map(|i| {
            h = (h ^ i as u64).wrapping_mul(0x100_0000_01b3);
            format!("prefix/{h:016x}").into_bytes()
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9100".into());
    let space = args.next().unwrap_or_else(|| "cache".into());
    let key = std::env::var("NITROFS_ACCESS_KEY").map_err(|_| "set NITROFS_ACCESS_KEY")?;
    let secret = std::env::var("NITROFS_SECRET_KEY").map_err(|_| "set NITROFS_SECRET_KEY")?;
    let kv = KvClient::connect(ClientConfig::new(&addr, &key, &secret)).await?;

    let prompt = 42;
    let keys = prefix_keys(prompt, 16);
    let cached = kv.prefix_match(&space, &keys).await?;
    println!("{cached} of {} leading blocks already cached", keys.len());
    let reused = kv.batch_get(&space, &keys[..cached]).await?;
    for (i, v) in reused.iter().enumerate() {
        if v.as_deref() != Some(&block(prompt, i)[..]) {
            return Err(KvError::Invalid(format!("block {i} changed under us")).into());
        }
    }
    let mut stored = 0;
    for (i, k) in keys.iter().enumerate().skip(cached) {
        if kv.put_if_absent(&space, k, &block(prompt, i)).await? {
            stored += 1;
        }
    }
    println!("stored {stored} new blocks; run again to see them reused");
    Ok(())
}
