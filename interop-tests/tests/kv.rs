//! The native KV protocol against the real `nitrofs` binary on loopback,
//! driven by the Rust client (`nitrofs-kv-client`), by the `nitrofs kv`
//! command line and, for protocol violations, by hand-built frames on a raw
//! socket. Spaces and users are made with `nitrofs admin`.

mod common;

use std::time::{Duration, Instant};

use common::kv::*;
use common::{block_on, sha256_file, sha256_hex, PatternRng, Server};
use nitrofs_kv_client::{MemoryRegion, PutMode, Status};
use nitrofs_kv_wire::{messages as m, msg, MAX_VALUE};
use nitrofs_rdma_transport::frame::{FrameHeader, FrameKind, FRAME_LEN, MAGIC};

const LIMIT: Duration = Duration::from_secs(240);
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

#[test]
fn values_of_every_size_roundtrip_and_overwrite_delete_and_exists_behave() {
    let server = Server::start();
    create_space(&server, "blocks", "64MiB", &[]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let mut rng = PatternRng::new(1);
        let sizes = [64 * KIB, MIB, 4 * MIB];
        let values: Vec<Vec<u8>> = sizes.iter().map(|&n| rng.bytes(n)).collect();
        for (i, v) in values.iter().enumerate() {
            c.put("blocks", format!("v{i}").as_bytes(), v)
                .await
                .expect("put");
        }
        for (i, v) in values.iter().enumerate() {
            let key = format!("v{i}");
            let got = c
                .get("blocks", key.as_bytes())
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("{key} was stored"));
            assert_eq!(got.len(), v.len(), "{key}: length");
            assert_eq!(sha256_hex(&got), sha256_hex(v), "{key}: content");
            assert!(c.exists("blocks", key.as_bytes()).await.expect("exists"));
        }

        // get_into: straight into a caller's region of exactly the value's size.
        let region = MemoryRegion::new(4 * MIB);
        let (region, n) = c.get_into("blocks", b"v2", region).await.expect("get_into");
        assert_eq!(n, Some(4 * MIB), "get_into reports the value length");
        assert_eq!(sha256_hex(&region[..4 * MIB]), sha256_hex(&values[2]));
        // A bigger region takes a smaller value; the length says how much.
        let (region, n) = c.get_into("blocks", b"v1", region).await.expect("get_into");
        assert_eq!(n, Some(MIB));
        assert_eq!(&region[..MIB], &values[1][..]);
        let (_, n) = c
            .get_into("blocks", b"absent", region)
            .await
            .expect("get_into of an absent key");
        assert_eq!(n, None, "absent key: no length");
        let small = MemoryRegion::new(MIB - 1);
        let r = c.get_into("blocks", b"v1", small).await;
        assert_eq!(
            server_status(r, "get_into a region one byte too small"),
            Status::BufferTooSmall
        );

        // Tiny values: one byte and none.
        c.put("blocks", b"one", b"x").await.expect("put 1 byte");
        assert_eq!(
            c.get("blocks", b"one").await.expect("get").as_deref(),
            Some(&b"x"[..])
        );
        c.put("blocks", b"zero", b"").await.expect("put 0 bytes");
        let zero = c.get("blocks", b"zero").await.expect("get");
        assert_eq!(zero.as_deref(), Some(&b""[..]), "an empty value exists");
        assert!(c.exists("blocks", b"zero").await.expect("exists"));

        // Overwrite with a value of another size: the new value wins.
        let newer = rng.bytes(64 * KIB + 3);
        c.put("blocks", b"v1", &newer).await.expect("overwrite");
        let got = c.get("blocks", b"v1").await.expect("get").expect("present");
        assert_eq!(
            sha256_hex(&got),
            sha256_hex(&newer),
            "overwrite replaced the value"
        );

        // Delete: the value is gone, a second delete finds nothing.
        assert!(c.delete("blocks", b"v0").await.expect("delete"));
        assert_eq!(c.get("blocks", b"v0").await.expect("get"), None);
        assert!(!c.exists("blocks", b"v0").await.expect("exists"));
        assert!(!c.delete("blocks", b"v0").await.expect("delete again"));

        let st = c.stat("blocks").await.expect("stat");
        assert_eq!(st.keys, 4, "v1, v2, one, zero remain: {st:?}");
        let expect_bytes = (newer.len() + 4 * MIB + 1) as u64 + 2 + 2 + 3 + 4;
        assert_eq!(
            st.bytes, expect_bytes,
            "bytes count keys and values: {st:?}"
        );
        assert_eq!(st.capacity, 64 << 20);
    });
}

#[test]
fn cli_puts_gets_lists_stats_and_deletes_with_documented_exit_statuses() {
    let server = Server::start();
    let line = create_space(&server, "cli", "8MiB", &[]);
    assert!(
        line.contains("capacity=8388608"),
        "capacity suffix parsed: {line}"
    );
    let list = admin_ok(&server, &["kv-space", "list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("cli "))
        .unwrap_or_else(|| panic!("space listed:\n{list}"));
    for want in [
        "capacity=8388608",
        "durability=memory",
        "ttl=none",
        "owner=0:0",
        "mode=0600",
    ] {
        assert!(row.contains(want), "{want} in {row:?}");
    }

    let line = create_space(
        &server,
        "dec",
        "10MB",
        &["--ttl", "5", "--mode", "0640", "--owner", "root"],
    );
    for want in ["capacity=10000000", "ttl=5s", "mode=0640", "owner=0:0"] {
        assert!(line.contains(want), "{want} in {line:?}");
    }
    let o = server.admin(&["kv-space", "create", "cli", "--capacity", "1MiB"]);
    assert_ne!(o.status.code(), Some(0), "a second space of the same name");
    let o = server.admin(&["kv-space", "create", "z", "--capacity", "1 furlong"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "a capacity that is not a byte count"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = PatternRng::new(2);
    let big = rng.bytes(MIB + 17);
    let small = rng.bytes(64 * KIB);
    let big_file = dir.path().join("big.in");
    std::fs::write(&big_file, &big).expect("write input");

    let o = server.kv(&[
        "put",
        "cli",
        "img/b",
        big_file.to_str().expect("utf-8 path"),
    ]);
    assert_exit(&o, 0, "kv put from a file");
    let o = server.kv_with_input(&["put", "cli", "img/a", "-"], &small);
    assert_exit(&o, 0, "kv put from stdin");
    let o = server.kv_with_input(&["put", "cli", "txt/c", "-"], b"hello");
    assert_exit(&o, 0, "kv put from stdin");

    // get to a file and to stdout (implicit and explicit `-`).
    let out_file = dir.path().join("big.out");
    let o = server.kv(&[
        "get",
        "cli",
        "img/b",
        out_file.to_str().expect("utf-8 path"),
    ]);
    assert_exit(&o, 0, "kv get to a file");
    assert_eq!(sha256_file(&out_file), (sha256_hex(&big), big.len() as u64));
    let o = server.kv(&["get", "cli", "img/a"]);
    assert_exit(&o, 0, "kv get to stdout");
    assert_eq!(o.stdout, small, "stdout carries exactly the value");
    let o = server.kv(&["get", "cli", "txt/c", "-"]);
    assert_exit(&o, 0, "kv get to -");
    assert_eq!(o.stdout, b"hello");

    // ls: KEY\tSIZE in byte order, optionally by prefix.
    let o = server.kv(&["ls", "cli"]);
    assert_exit(&o, 0, "kv ls");
    let expect_all = format!("img/a\t{}\nimg/b\t{}\ntxt/c\t5\n", small.len(), big.len());
    assert_eq!(stdout(&o), expect_all);
    let o = server.kv(&["ls", "cli", "img/"]);
    assert_exit(&o, 0, "kv ls with a prefix");
    assert_eq!(
        stdout(&o),
        format!("img/a\t{}\nimg/b\t{}\n", small.len(), big.len())
    );
    let o = server.kv(&["ls", "cli", "zzz"]);
    assert_exit(&o, 0, "kv ls with a prefix nothing has");
    assert_eq!(stdout(&o), "");

    // stat: `key: value` lines.
    let o = server.kv(&["stat", "cli"]);
    assert_exit(&o, 0, "kv stat");
    let text = stdout(&o);
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no `{name}:` line in kv stat:\n{text}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("`{name}:` is not a number ({e}):\n{text}"))
    };
    assert_eq!(field("keys"), 3);
    assert_eq!(
        field("bytes"),
        (big.len() + small.len() + 5 + 5 * 3) as u64,
        "bytes = keys + values"
    );
    assert_eq!(field("capacity"), 8 << 20);
    assert_eq!(field("evictions"), 0);
    assert!(field("hits") >= 3, "three gets hit:\n{text}");
    let _ = field("misses");

    // exists / del and the not-found exit status 2.
    let o = server.kv(&["exists", "cli", "txt/c"]);
    assert_exit(&o, 0, "kv exists of a present key");
    assert_eq!(stdout(&o).trim(), "true");
    let o = server.kv(&["del", "cli", "txt/c"]);
    assert_exit(&o, 0, "kv del");
    let o = server.kv(&["exists", "cli", "txt/c"]);
    assert_exit(&o, 2, "kv exists of a deleted key");
    assert_eq!(stdout(&o).trim(), "false");
    let o = server.kv(&["get", "cli", "txt/c"]);
    assert_exit(&o, 2, "kv get of a deleted key");
    assert!(o.stdout.is_empty(), "nothing on stdout for an absent key");
    assert!(
        stderr(&o).contains("not found"),
        "stderr says not found: {}",
        stderr(&o)
    );
    let o = server.kv(&["del", "cli", "txt/c"]);
    assert_exit(&o, 2, "kv del of an absent key");

    // Address and credentials may come from the environment instead of flags.
    let o = common::run_with_timeout(
        std::process::Command::new(common::nitrofs_bin())
            .args(["kv", "exists", "cli", "img/a"])
            .env("NITROFS_KV_ADDR", server.kv_addr().to_string())
            .env("NITROFS_ACCESS_KEY", server.root_keys().0)
            .env("NITROFS_SECRET_KEY", server.root_keys().1),
        common::COMMAND_TIMEOUT,
    );
    assert_exit(&o, 0, "kv with address and keys from the environment");
    assert_eq!(stdout(&o).trim(), "true");
    let o = common::run_with_timeout(
        std::process::Command::new(common::nitrofs_bin())
            .args(["kv", "--addr", &server.kv_addr().to_string()])
            .args(["exists", "cli", "img/a"])
            .env_remove("NITROFS_ACCESS_KEY")
            .env_remove("NITROFS_SECRET_KEY"),
        common::COMMAND_TIMEOUT,
    );
    assert_exit(&o, 1, "kv without credentials");
    assert!(stderr(&o).contains("credentials"), "{}", stderr(&o));

    // The CLI and the Rust client see the same values.
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let got = c.get("cli", b"img/b").await.expect("get").expect("present");
        assert_eq!(sha256_hex(&got), sha256_hex(&big));
        assert_eq!(c.get("cli", b"txt/c").await.expect("get"), None);
    });
}

#[test]
fn a_batch_of_large_values_keeps_each_value_apart() {
    // Large values (over 64 KiB on average) are read into a buffer each:
    // each must hold its own bytes, survive its neighbours' replacement,
    // and a tiny value among them must not be lost.
    let server = Server::start();
    create_space(&server, "big", "64MiB", &[]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let mut rng = PatternRng::new(11);
        let sizes = [2 * MIB, KIB * 300, 1, MIB + 7, 4 * MIB];
        let items: Vec<(String, Vec<u8>)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("v{i}"), rng.bytes(n)))
            .collect();
        let st = c
            .batch_put("big", &items, PutMode::Overwrite)
            .await
            .expect("batch_put");
        assert_eq!(st, vec![Status::Ok; items.len()]);
        // Replace every other value; the rest keep their bytes.
        let again: Vec<(String, Vec<u8>)> = items
            .iter()
            .step_by(2)
            .map(|(k, v)| (k.clone(), rng.bytes(v.len())))
            .collect();
        let st = c
            .batch_put("big", &again, PutMode::Overwrite)
            .await
            .expect("batch_put again");
        assert_eq!(st, vec![Status::Ok; again.len()]);
        for (k, v) in &items {
            let want = again.iter().find(|(ak, _)| ak == k).map_or(v, |(_, av)| av);
            let got = c.get("big", k.as_bytes()).await.expect("get").expect(k);
            assert_eq!(sha256_hex(&got), sha256_hex(want), "{k}");
        }
        assert_eq!(c.stat("big").await.expect("stat").keys, items.len() as u64);
    });
}

#[test]
fn batches_keep_caller_order_and_report_per_key_outcomes() {
    let server = Server::start();
    create_space(&server, "batch", "32MiB", &[]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let mut rng = PatternRng::new(3);
        let items: Vec<(String, Vec<u8>)> = (0..64)
            .map(|i| (format!("b{i:02}"), rng.bytes(16 * KIB + i * 1000)))
            .collect();
        let st = c
            .batch_put("batch", &items, PutMode::Overwrite)
            .await
            .expect("batch_put");
        assert_eq!(st, vec![Status::Ok; 64], "every item stored");
        assert_eq!(c.stat("batch").await.expect("stat").keys, 64);

        // Present and absent keys interleaved, in an order unlike the store's.
        let wanted: Vec<String> = [
            "b63", "nope-1", "b00", "b31", "nope-2", "b07", "b07", "nope-3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got = c.batch_get("batch", &wanted).await.expect("batch_get");
        assert_eq!(got.len(), wanted.len());
        for (k, v) in wanted.iter().zip(&got) {
            let expect = items.iter().find(|(ik, _)| ik == k).map(|(_, v)| v);
            match (expect, v) {
                (Some(e), Some(v)) => assert_eq!(sha256_hex(v), sha256_hex(e), "{k}"),
                (None, None) => {}
                (e, v) => panic!(
                    "{k}: expected present={}, got present={}",
                    e.is_some(),
                    v.is_some()
                ),
            }
        }
        let ex = c
            .batch_exists("batch", &wanted)
            .await
            .expect("batch_exists");
        assert_eq!(ex, vec![true, false, true, true, false, true, true, false]);

        // Put-if-absent in a batch: existing keys answer Exists and keep their value.
        let mixed = vec![
            ("b00".to_string(), b"other".to_vec()),
            ("new".to_string(), b"fresh".to_vec()),
        ];
        let st = c
            .batch_put("batch", &mixed, PutMode::IfAbsent)
            .await
            .expect("batch_put if absent");
        assert_eq!(st, vec![Status::Exists, Status::Ok]);
        let b00 = c.get("batch", b"b00").await.expect("get").expect("b00");
        assert_eq!(&b00[..], &items[0].1[..], "IfAbsent did not replace b00");

        // Delete a mixture; only live keys report true; they are gone after.
        let del: Vec<&str> = vec!["b01", "nope-1", "b02", "b01", "new"];
        let d = c.batch_delete("batch", &del).await.expect("batch_delete");
        assert_eq!(d, vec![true, false, true, false, true]);
        let ex = c
            .batch_exists("batch", &["b01", "b02", "b03", "new"])
            .await
            .expect("batch_exists");
        assert_eq!(ex, vec![false, false, true, false]);
        assert_eq!(c.stat("batch").await.expect("stat").keys, 62);

        // An empty batch is a no-op, not an error.
        let none: Vec<&str> = Vec::new();
        assert!(c.batch_get("batch", &none).await.expect("empty").is_empty());
    });
}

#[test]
fn a_batch_get_larger_than_one_response_is_completed_by_follow_up_requests() {
    // More than the server puts in one BATCH_GET response (96 MiB): the
    // server answers NotSent for the rest and the client asks again.
    const N: usize = 25;
    const VALUE: usize = 4 * MIB;
    let server = Server::start();
    create_space(&server, "wide", "128MiB", &[]);
    let mut keys: Vec<String> = (0..N).map(|i| format!("big-{i:02}")).collect();
    keys.insert(3, "absent".to_string());
    let mut sums = Vec::new();
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        for (i, k) in keys.iter().filter(|k| *k != "absent").enumerate() {
            let v = PatternRng::new(500 + i as u64).bytes(VALUE);
            sums.push(sha256_hex(&v));
            c.put("wide", k.as_bytes(), &v).await.expect("put");
        }
        let got = c.batch_get("wide", &keys).await.expect("batch_get");
        assert_eq!(got.len(), N + 1);
        let mut want = sums.iter();
        for (k, v) in keys.iter().zip(&got) {
            if k == "absent" {
                assert!(v.is_none(), "absent key");
                continue;
            }
            let v = v
                .as_ref()
                .unwrap_or_else(|| panic!("{k} missing from the batch"));
            assert_eq!(v.len(), VALUE, "{k}");
            assert_eq!(Some(&sha256_hex(v)), want.next(), "{k} in caller order");
        }
    });

    // The same request by hand: one response carries part of the values
    // and marks the others NotSent (with their length).
    let mut raw = RawConn::connect(server.kv_addr());
    let (ak, sk) = server.root_keys();
    let version = raw.authenticate(ak, sk);
    let header = m::Keys {
        target: m::Target {
            routing_version: version,
            space: "wide",
        },
        keys: keys.iter().map(|k| k.as_bytes()).collect(),
    }
    .encode();
    let r = raw.call(msg::BATCH_GET, &header, b"");
    assert_eq!(r.status, Status::Ok as u16);
    let items = m::decode_batch_get(&r.header).expect("batch get answer");
    assert_eq!(items.len(), N + 1);
    assert_eq!(items[3].0, Status::NotFound as u16, "absent key");
    let sent: u64 = items
        .iter()
        .filter(|(st, _)| *st == Status::Ok as u16)
        .map(|(_, len)| len)
        .sum();
    assert_eq!(sent, r.payload.len() as u64, "payload = the values sent");
    let not_sent: Vec<_> = items
        .iter()
        .filter(|(st, _)| *st == Status::NotSent as u16)
        .collect();
    assert!(!not_sent.is_empty(), "100 MiB does not fit one response");
    assert!(not_sent.iter().all(|(_, len)| *len == VALUE as u64));
    assert!(r.payload.len() <= 128 * MIB, "within the frame limit");
}

#[test]
fn prefix_match_counts_the_leading_run_of_present_keys() {
    let server = Server::start();
    create_space(&server, "prefix", "16MiB", &[]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        assert_eq!(
            c.prefix_match("prefix", &keys).await.expect("match"),
            0,
            "none stored"
        );
        for i in [0, 1, 2, 3, 4, 6] {
            c.put("prefix", keys[i].as_bytes(), &[i as u8; 100])
                .await
                .expect("put");
        }
        assert_eq!(
            c.prefix_match("prefix", &keys).await.expect("match"),
            5,
            "k5 is the first gap; k6 does not count"
        );
        assert_eq!(
            c.prefix_match("prefix", &keys[1..]).await.expect("match"),
            4,
            "from k1"
        );
        assert_eq!(
            c.prefix_match("prefix", &keys[5..]).await.expect("match"),
            0,
            "starts at the gap"
        );
        for i in [5, 7, 8, 9] {
            c.put("prefix", keys[i].as_bytes(), &[i as u8; 100])
                .await
                .expect("put");
        }
        assert_eq!(
            c.prefix_match("prefix", &keys).await.expect("match"),
            10,
            "all"
        );
        assert!(c.delete("prefix", b"k0").await.expect("delete"));
        assert_eq!(
            c.prefix_match("prefix", &keys).await.expect("match"),
            0,
            "the first block missing means no reuse"
        );
    });
}

#[test]
fn put_if_absent_keeps_the_first_value_through_client_and_cli() {
    let server = Server::start();
    create_space(&server, "immut", "8MiB", &[]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        assert!(c
            .put_if_absent("immut", b"block", b"first")
            .await
            .expect("first put_if_absent"));
        assert!(!c
            .put_if_absent("immut", b"block", b"second")
            .await
            .expect("second put_if_absent"));
        assert_eq!(
            c.get("immut", b"block").await.expect("get").as_deref(),
            Some(&b"first"[..])
        );
        // After a delete the key is absent again.
        assert!(c.delete("immut", b"block").await.expect("delete"));
        assert!(c
            .put_if_absent("immut", b"block", b"third")
            .await
            .expect("put_if_absent after delete"));
    });

    let o = server.kv_with_input(&["put", "--if-absent", "immut", "cli", "-"], b"one");
    assert_exit(&o, 0, "kv put --if-absent of a new key");
    let o = server.kv_with_input(&["put", "--if-absent", "immut", "cli", "-"], b"two");
    assert_exit(&o, 3, "kv put --if-absent of an existing key");
    assert!(
        stderr(&o).contains("exists"),
        "message on stderr: {}",
        stderr(&o)
    );
    let o = server.kv(&["get", "immut", "cli"]);
    assert_exit(&o, 0, "kv get");
    assert_eq!(o.stdout, b"one", "the first value stayed");
    let o = server.kv_with_input(&["put", "immut", "block", "-"], b"forced");
    assert_exit(&o, 0, "plain kv put overwrites");
    let o = server.kv(&["get", "immut", "block"]);
    assert_eq!(o.stdout, b"forced");
}

#[test]
fn a_full_space_evicts_and_never_holds_more_than_its_capacity() {
    const CAPACITY: u64 = 8 << 20;
    const VALUE: usize = 256 * KIB;
    let server = Server::start();
    create_space(&server, "small", "8MiB", &[]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..4u64 {
            let c = c.clone();
            tasks.spawn(async move {
                let mut rng = PatternRng::new(100 + t);
                for i in 0..16 {
                    let key = format!("ev-{t}-{i:02}");
                    c.put("small", key.as_bytes(), &rng.bytes(VALUE))
                        .await
                        .unwrap_or_else(|e| panic!("put {key}: {e}"));
                    let st = c.stat("small").await.expect("stat");
                    assert!(
                        st.bytes <= CAPACITY,
                        "after {key}: {} bytes held in a {CAPACITY}-byte space",
                        st.bytes
                    );
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("put task");
        }
        let st = c.stat("small").await.expect("stat");
        assert!(st.bytes <= CAPACITY, "{st:?}");
        assert!(st.keys <= CAPACITY / VALUE as u64, "{st:?}");
        assert!(
            st.evictions >= 64 - CAPACITY / VALUE as u64,
            "16 MiB into 8 MiB evicts at least 32 values: {st:?}"
        );
        assert_eq!(st.puts, 64, "{st:?}");
        let listed = c.scan_all("small", b"").await.expect("scan");
        assert_eq!(listed.len() as u64, st.keys, "scan agrees with stat");

        // The most recent values survive: put 8 more one after another.
        let mut rng = PatternRng::new(200);
        let last: Vec<Vec<u8>> = (0..8).map(|_| rng.bytes(VALUE)).collect();
        for (i, v) in last.iter().enumerate() {
            c.put("small", format!("last-{i}").as_bytes(), v)
                .await
                .expect("put");
        }
        for (i, v) in last.iter().enumerate() {
            let got = c
                .get("small", format!("last-{i}").as_bytes())
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("last-{i} was evicted right after its put"));
            assert_eq!(sha256_hex(&got), sha256_hex(v), "last-{i}");
        }
        let st = c.stat("small").await.expect("stat");
        assert!(st.bytes <= CAPACITY, "{st:?}");

        // A value larger than the whole space is refused, not half-stored.
        let r = c.put("small", b"huge", &vec![7u8; 9 << 20]).await;
        assert_eq!(server_status(r, "put 9 MiB into 8 MiB"), Status::NoSpace);
        assert_eq!(c.get("small", b"huge").await.expect("get"), None);
    });
}

#[test]
fn values_expire_after_the_space_ttl() {
    let server = Server::start();
    let line = create_space(&server, "ttl", "8MiB", &["--ttl", "1"]);
    assert!(line.contains("ttl=1s"), "{line}");
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        assert_eq!(c.stat("ttl").await.expect("stat").ttl_secs, 1);
        let start = Instant::now();
        c.put("ttl", b"short", b"lived").await.expect("put");
        let got = c.get("ttl", b"short").await.expect("get");
        if start.elapsed() < Duration::from_millis(900) {
            assert_eq!(
                got.as_deref(),
                Some(&b"lived"[..]),
                "present right after put"
            );
        } else {
            eprintln!("machine too slow to observe the value before its TTL");
        }

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if c.get("ttl", b"short").await.expect("get").is_none() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still readable 10 s after a 1 s TTL"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let expired_at = start.elapsed();
        assert!(
            expired_at >= Duration::from_millis(900),
            "expired after {expired_at:?}, before its 1 s TTL"
        );
        // Never again, by any read path, and the counters show the expiry.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert_eq!(c.get("ttl", b"short").await.expect("get"), None);
            assert!(!c.exists("ttl", b"short").await.expect("exists"));
            let b = c.batch_get("ttl", &[b"short"]).await.expect("batch_get");
            assert_eq!(b, vec![None]);
            assert_eq!(c.prefix_match("ttl", &[b"short"]).await.expect("pm"), 0);
            let st = c.stat("ttl").await.expect("stat");
            if st.keys == 0 && st.bytes == 0 && st.expirations >= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the expired value is still counted: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(c.scan_all("ttl", b"").await.expect("scan").is_empty());
        // An expired key is absent for put-if-absent too.
        assert!(c
            .put_if_absent("ttl", b"short", b"again")
            .await
            .expect("put_if_absent"));
    });
}

#[test]
fn disk_spaces_survive_kill_9_and_memory_spaces_come_back_empty() {
    let mut server = Server::start();
    create_space(&server, "durable", "64MiB", &["--durability", "disk"]);
    create_space(&server, "volatile", "64MiB", &["--durability", "memory"]);
    let mut rng = PatternRng::new(4);
    let values: Vec<(String, Vec<u8>)> = [64 * KIB, MIB, 4 * MIB, 1]
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("d{i}"), rng.bytes(n)))
        .collect();
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        for (k, v) in &values {
            c.put("durable", k.as_bytes(), v)
                .await
                .expect("put durable");
            c.put("volatile", k.as_bytes(), v)
                .await
                .expect("put volatile");
        }
        // An overwrite and a delete, both acknowledged, must survive too.
        c.put("durable", b"d0", b"overwritten")
            .await
            .expect("overwrite");
        assert!(c.delete("durable", b"d1").await.expect("delete"));
        assert!(c.stat("durable").await.expect("stat").durable);
    });

    server.kill9();
    server.restart();

    let list = admin_ok(&server, &["kv-space", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("durable ") && l.contains("durability=disk")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("volatile ") && l.contains("durability=memory")),
        "{list}"
    );
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        assert_eq!(
            c.get("durable", b"d0").await.expect("get").as_deref(),
            Some(&b"overwritten"[..]),
            "the acknowledged overwrite survived"
        );
        assert_eq!(
            c.get("durable", b"d1").await.expect("get"),
            None,
            "the acknowledged delete survived"
        );
        for (k, v) in &values[2..] {
            let got = c
                .get("durable", k.as_bytes())
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("{k} lost by kill -9"));
            assert_eq!(sha256_hex(&got), sha256_hex(v), "{k} after restart");
        }
        let st = c.stat("durable").await.expect("stat");
        assert_eq!(st.keys, 3, "{st:?}");
        let want_bytes = values[2..]
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum::<u64>()
            + 2
            + 11;
        assert_eq!(st.bytes, want_bytes, "byte accounting rebuilt: {st:?}");

        let st = c.stat("volatile").await.expect("memory space still exists");
        assert_eq!((st.keys, st.bytes), (0, 0), "{st:?}");
        for (k, _) in &values {
            assert_eq!(c.get("volatile", k.as_bytes()).await.expect("get"), None);
        }
        c.put("volatile", b"again", b"works").await.expect("put");
        assert!(c.exists("volatile", b"again").await.expect("exists"));
    });
}

#[test]
fn wrong_credentials_and_missing_permissions_are_refused() {
    let server = Server::start();
    let (alice_ak, alice_sk) = add_user(&server, "alice", 1000, 1000);
    create_space(&server, "private", "8MiB", &[]);
    create_space(&server, "shared", "8MiB", &["--mode", "0644"]);
    create_space(
        &server,
        "alices",
        "8MiB",
        &["--owner", "alice", "--mode", "0600"],
    );
    block_on(LIMIT, async {
        let (root_ak, root_sk) = server.root_keys();
        let r = client_as(&server, root_ak, "not-the-right-secret-at-all").await;
        assert_eq!(
            server_status(r, "connect with a wrong secret"),
            Status::Unauthenticated
        );
        let r = client_as(&server, "NOSUCHACCESSKEY00000", root_sk).await;
        assert_eq!(
            server_status(r, "connect with an unknown access key"),
            Status::Unauthenticated
        );
        let r = client_as(&server, &alice_ak, root_sk).await;
        assert_eq!(
            server_status(r, "alice's key with root's secret"),
            Status::Unauthenticated
        );

        let root = root_client(&server).await;
        root.put("private", b"k", b"root's").await.expect("put");
        root.put("shared", b"k", b"readable").await.expect("put");
        let alice = client_as(&server, &alice_ak, &alice_sk)
            .await
            .expect("alice connects");

        // 0600 owned by root: alice may do nothing.
        let r = alice.put("private", b"k", b"alice's").await;
        assert_eq!(server_status(r, "alice put private"), Status::AccessDenied);
        let r = alice.get("private", b"k").await;
        assert_eq!(server_status(r, "alice get private"), Status::AccessDenied);
        let r = alice.delete("private", b"k").await;
        assert_eq!(
            server_status(r, "alice delete private"),
            Status::AccessDenied
        );
        let r = alice.batch_get("private", &[b"k"]).await;
        assert_eq!(
            server_status(r, "alice batch_get private"),
            Status::AccessDenied
        );
        let r = alice
            .batch_put("private", &[(b"k", b"x")], PutMode::Overwrite)
            .await;
        assert_eq!(
            server_status(r, "alice batch_put private"),
            Status::AccessDenied
        );
        assert_eq!(
            root.get("private", b"k")
                .await
                .expect("root get")
                .as_deref(),
            Some(&b"root's"[..]),
            "the value is unchanged"
        );

        let r = alice.stat("private").await;
        assert_eq!(server_status(r, "alice stat private"), Status::AccessDenied);
        let r = alice.scan_all("private", b"").await;
        assert_eq!(server_status(r, "alice scan private"), Status::AccessDenied);
        let r = alice.prefix_match("private", &[b"k"]).await;
        assert_eq!(
            server_status(r, "alice prefix_match private"),
            Status::AccessDenied
        );

        // 0644: others read but do not write.
        assert_eq!(
            alice
                .get("shared", b"k")
                .await
                .expect("alice get shared")
                .as_deref(),
            Some(&b"readable"[..])
        );
        assert!(alice.exists("shared", b"k").await.expect("exists"));
        let r = alice.put("shared", b"k", b"overwritten").await;
        assert_eq!(server_status(r, "alice put shared"), Status::AccessDenied);
        let r = alice.put("shared", b"new", b"x").await;
        assert_eq!(server_status(r, "alice put new key"), Status::AccessDenied);
        let r = alice.delete("shared", b"k").await;
        assert_eq!(
            server_status(r, "alice delete shared"),
            Status::AccessDenied
        );
        assert_eq!(
            root.get("shared", b"k").await.expect("get").as_deref(),
            Some(&b"readable"[..])
        );
        assert_eq!(root.get("shared", b"new").await.expect("get"), None);

        // Alice's own 0600 space: she reads and writes, root may too.
        alice.put("alices", b"mine", b"v").await.expect("owner put");
        assert!(alice.exists("alices", b"mine").await.expect("owner exists"));
        assert!(root.exists("alices", b"mine").await.expect("root exists"));
    });

    // The CLI: wrong secret fails, denied access fails without touching the value.
    let (root_ak, _) = server.root_keys();
    let o = server.kv_as((root_ak, "wrong-secret-wrong-secret"), &["stat", "private"]);
    assert_exit(&o, 1, "kv with a wrong secret");
    assert!(stderr(&o).contains("not authenticated"), "{}", stderr(&o));
    let o = server.kv_as((&alice_ak, &alice_sk), &["get", "private", "k"]);
    assert_exit(&o, 1, "kv get as alice in a 0600 space");
    assert!(stderr(&o).contains("access denied"), "{}", stderr(&o));
    let o = server.kv_as((&alice_ak, &alice_sk), &["get", "shared", "k"]);
    assert_exit(&o, 0, "kv get as alice in a 0644 space");
    assert_eq!(o.stdout, b"readable");
}

#[test]
fn a_space_acl_entry_lets_one_identity_get_but_not_put_and_others_are_denied() {
    let mut server = Server::start();
    let (a_ak, a_sk) = add_user(&server, "reader", 1001, 1001);
    let (b_ak, b_sk) = add_user(&server, "outsider", 1002, 1002);
    create_space(&server, "acl", "8MiB", &[]); // root's, 0600
    let out = admin_ok(
        &server,
        &["kv-space", "acl", "set", "acl", "u:1001:rw-,m::r--"],
    );
    for want in [
        "# space: acl",
        "user::rw-",
        "user:1001:rw-\t#effective:r--",
        "group::---",
        "mask::r--",
        "other::---",
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} in:\n{out}");
    }
    assert_eq!(admin_ok(&server, &["kv-space", "acl", "get", "acl"]), out);
    let list = admin_ok(&server, &["kv-space", "list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("acl "))
        .unwrap_or_else(|| panic!("space listed:\n{list}"));
    assert!(
        row.contains("mode=0640"),
        "the mask is the group bits: {row}"
    );
    assert!(
        row.contains("acl=u::rw-,u:1001:rw-,g::---,m::r--,o::---"),
        "{row}"
    );
    for (spec, why) in [
        ("u:1001:r-x", "x has no meaning"),
        ("d:u:1001:r--", "no default ACL"),
        ("u:bob:r--", "not a number"),
    ] {
        let o = server.admin(&["kv-space", "acl", "set", "acl", spec]);
        assert_ne!(o.status.code(), Some(0), "{spec} is refused");
        assert!(stderr(&o).contains(why), "{spec}: {}", stderr(&o));
    }
    let o = server.admin(&["kv-space", "acl", "get", "nope"]);
    assert_ne!(o.status.code(), Some(0), "unknown space");

    let check = |server: &Server| {
        block_on(LIMIT, async {
            let root = root_client(server).await;
            root.put("acl", b"k", b"root's").await.expect("root put");
            let a = client_as(server, &a_ak, &a_sk).await.expect("A connects");
            assert_eq!(
                a.get("acl", b"k").await.expect("A get").as_deref(),
                Some(&b"root's"[..]),
                "u:1001 reads"
            );
            assert!(a.exists("acl", b"k").await.expect("A exists"));
            let r = a.put("acl", b"k", b"A's").await;
            assert_eq!(
                server_status(r, "A put: the mask takes w away"),
                Status::AccessDenied
            );
            let r = a.delete("acl", b"k").await;
            assert_eq!(server_status(r, "A delete"), Status::AccessDenied);
            let b = client_as(server, &b_ak, &b_sk).await.expect("B connects");
            let r = b.get("acl", b"k").await;
            assert_eq!(server_status(r, "B get"), Status::AccessDenied);
            let r = b.put("acl", b"k", b"B's").await;
            assert_eq!(server_status(r, "B put"), Status::AccessDenied);
            assert_eq!(
                root.get("acl", b"k").await.expect("get").as_deref(),
                Some(&b"root's"[..]),
                "the value is unchanged"
            );
        });
    };
    check(&server);
    // The ACL is in the catalog: a restart keeps it.
    server.restart();
    check(&server);
    let o = server.kv_as((&a_ak, &a_sk), &["get", "acl", "k"]);
    assert_exit(&o, 0, "kv get as A");
    assert_eq!(o.stdout, b"root's");
    let o = server.kv_as((&b_ak, &b_sk), &["get", "acl", "k"]);
    assert_exit(&o, 1, "kv get as B");
    assert!(stderr(&o).contains("access denied"), "{}", stderr(&o));
}

/// Sends `bytes` on a fresh raw connection and requires the server to close it.
fn assert_closed_after(server: &Server, what: &str, bytes: &[u8], within: Duration) -> Duration {
    let mut raw = RawConn::connect(server.kv_addr());
    // The server may close before everything is written; that is fine.
    let _ = raw.send_raw(bytes);
    raw.wait_closed(within)
        .unwrap_or_else(|| panic!("{what}: connection still open after {within:?}"))
}

#[test]
fn malformed_frames_close_only_their_own_connection() {
    let server = Server::start_with_config("[kv]\nframe_timeout_secs = 1\n");
    create_space(&server, "m", "8MiB", &[]);

    // The hand-built header is the transport's own encoding.
    let ours = frame_header(1, msg::PUT, 77, 5, 9);
    let theirs = FrameHeader {
        kind: FrameKind::Request,
        msg: msg::PUT,
        status: 0,
        req_id: 77,
        header_len: 5,
        payload_len: 9,
    }
    .encode();
    assert_eq!(ours.len(), FRAME_LEN);
    assert_eq!(&ours[..4], &MAGIC);
    assert_eq!(ours, theirs.to_vec());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let c = rt.block_on(async {
        let c = root_client(&server).await;
        c.put("m", b"before", b"1").await.expect("put before");
        c
    });
    let healthy = |step: &str| {
        rt.block_on(async {
            let key = format!("after-{step}");
            tokio::time::timeout(Duration::from_secs(30), async {
                c.put("m", key.as_bytes(), step.as_bytes())
                    .await
                    .unwrap_or_else(|e| panic!("put after {step}: {e}"));
                assert_eq!(
                    c.get("m", key.as_bytes()).await.expect("get").as_deref(),
                    Some(step.as_bytes())
                );
            })
            .await
            .unwrap_or_else(|_| panic!("client stuck after {step}"));
        })
    };

    let bounded = Duration::from_secs(10);
    let mut garbage = PatternRng::new(9).bytes(4096);
    garbage[..4].copy_from_slice(b"GET "); // not our magic, whatever follows
    assert_closed_after(&server, "garbage", &garbage, bounded);
    healthy("garbage");

    let mut bad_magic = frame_header(1, msg::STAT, 1, 0, 0);
    bad_magic[..4].copy_from_slice(b"NTF2");
    assert_closed_after(&server, "bad magic", &bad_magic, bounded);
    healthy("bad-magic");

    let mut bad_version = frame_header(1, msg::STAT, 1, 0, 0);
    bad_version[4] = 2;
    assert_closed_after(&server, "bad version", &bad_version, bounded);
    healthy("bad-version");

    let response_kind = frame_header(2, msg::STAT, 1, 0, 0);
    assert_closed_after(
        &server,
        "a response frame from a client",
        &response_kind,
        bounded,
    );
    healthy("response-kind");

    let huge_payload = frame_header(1, msg::PUT, 1, 0, u32::MAX);
    assert_closed_after(&server, "payload_len u32::MAX", &huge_payload, bounded);
    healthy("huge-payload");

    let huge_header = frame_header(1, msg::PUT, 1, (1 << 20) + 1, 0);
    assert_closed_after(&server, "header_len over 1 MiB", &huge_header, bounded);
    healthy("huge-header");

    // A frame that announces 100 header bytes and then stalls: closed by the
    // 1 s frame timeout (not earlier, not never).
    let stall = frame_header(1, msg::PUT, 1, 100, 0);
    let took = assert_closed_after(&server, "stalled frame", &stall, bounded);
    assert!(
        took >= Duration::from_millis(900),
        "closed after {took:?}, before the 1 s frame timeout"
    );
    healthy("stall");
    // Half a fixed header, then silence: same.
    let took = assert_closed_after(&server, "half a frame header", &stall[..10], bounded);
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    healthy("half-header");

    // Well-formed but unauthenticated: refused, nothing stored.
    let mut raw = RawConn::connect(server.kv_addr());
    let put = m::Put {
        target: m::Target {
            routing_version: 1,
            space: "m",
        },
        key: b"sneaky",
        mode: m::PutMode::Overwrite,
    }
    .encode();
    let r = raw.call(msg::PUT, &put, b"smuggled value");
    assert_eq!(
        r.status,
        Status::Unauthenticated as u16,
        "unauthenticated PUT"
    );
    assert!(r.payload.is_empty());
    let r = raw.call(999, &[], &[]);
    assert_eq!(
        r.status,
        Status::Unauthenticated as u16,
        "before AUTH every data message is refused"
    );
    rt.block_on(async {
        assert_eq!(c.get("m", b"sneaky").await.expect("get"), None);
    });

    // After authenticating by hand: an unknown message id answers
    // UnknownMessage and the connection stays usable.
    let (ak, sk) = server.root_keys();
    let version = raw.authenticate(ak, sk);
    // The frame timeout is for frames under way, not for quiet connections.
    assert_eq!(
        raw.wait_closed(Duration::from_millis(1500)),
        None,
        "an idle connection outlives the 1 s frame timeout"
    );
    let r = raw.call(999, b"whatever", b"");
    assert_eq!(
        r.status,
        Status::UnknownMessage as u16,
        "unknown message id"
    );
    let stale = m::Put {
        target: m::Target {
            routing_version: version + 1,
            space: "m",
        },
        key: b"raw",
        mode: m::PutMode::Overwrite,
    }
    .encode();
    let r = raw.call(msg::PUT, &stale, b"wrong routing");
    assert_eq!(
        r.status,
        Status::StaleRouting as u16,
        "another routing version than the server's {version}"
    );
    let put = m::Put {
        target: m::Target {
            routing_version: version,
            space: "m",
        },
        key: b"raw",
        mode: m::PutMode::Overwrite,
    }
    .encode();
    let r = raw.call(msg::PUT, &put, b"by hand");
    assert_eq!(r.status, Status::Ok as u16, "PUT on the same connection");
    let get = m::KeyOp {
        target: m::Target {
            routing_version: version,
            space: "m",
        },
        key: b"raw",
        max_len: u64::MAX,
    }
    .encode();
    let r = raw.call(msg::GET, &get, b"");
    assert_eq!(r.status, Status::Ok as u16);
    assert_eq!(r.payload, b"by hand");
    // A header that does not decode: BadRequest, connection still usable.
    let r = raw.call(msg::GET, b"\x01\x02", b"");
    assert_eq!(r.status, Status::BadRequest as u16, "undecodable header");
    let r = raw.call(msg::GET, &get, b"");
    assert_eq!(r.status, Status::Ok as u16, "usable after BadRequest");

    healthy("end");
    rt.block_on(async {
        assert_eq!(
            c.get("m", b"before").await.expect("get").as_deref(),
            Some(&b"1"[..])
        );
    });
}

#[test]
fn concurrent_clients_each_read_back_their_own_values() {
    const CLIENTS: u64 = 8;
    const OPS: u64 = 50;
    let server = Server::start();
    create_space(&server, "conc", "64MiB", &[]);
    block_on(LIMIT, async {
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..CLIENTS {
            let c = root_client(&server).await;
            tasks.spawn(async move {
                let mut rng = PatternRng::new(1000 + t);
                for i in 0..OPS {
                    let key = format!("c{t}-{i:02}");
                    let v = rng.bytes(1024 + (i as usize * 1237) % (60 * KIB));
                    c.put("conc", key.as_bytes(), &v).await.expect("put");
                    let got = c.get("conc", key.as_bytes()).await.expect("get");
                    assert_eq!(
                        got.as_deref().map(sha256_hex),
                        Some(sha256_hex(&v)),
                        "{key} read back by its writer"
                    );
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("client task");
        }
        // One more client sees every value, unmixed.
        let c = root_client(&server).await;
        for t in 0..CLIENTS {
            let mut rng = PatternRng::new(1000 + t);
            let keys: Vec<String> = (0..OPS).map(|i| format!("c{t}-{i:02}")).collect();
            let got = c.batch_get("conc", &keys).await.expect("batch_get");
            for (i, v) in got.iter().enumerate() {
                let want = rng.bytes(1024 + (i * 1237) % (60 * KIB));
                assert_eq!(
                    v.as_deref().map(sha256_hex),
                    Some(sha256_hex(&want)),
                    "{}",
                    keys[i]
                );
            }
        }
        let st = c.stat("conc").await.expect("stat");
        assert_eq!(st.keys, CLIENTS * OPS);
        assert_eq!(st.evictions, 0);
    });
}

#[test]
fn unknown_spaces_oversized_values_and_bad_keys_get_their_status() {
    let server = Server::start();
    create_space(&server, "limits", "128MiB", &[]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let r = c.put("nosuch", b"k", b"v").await;
        assert_eq!(server_status(r, "put"), Status::NoSuchSpace);
        let r = c.get("nosuch", b"k").await;
        assert_eq!(server_status(r, "get"), Status::NoSuchSpace);
        let r = c.stat("nosuch").await;
        assert_eq!(server_status(r, "stat"), Status::NoSuchSpace);
        let r = c.batch_get("nosuch", &[b"k"]).await;
        assert_eq!(server_status(r, "batch_get"), Status::NoSuchSpace);

        let too_big = vec![0x5au8; MAX_VALUE as usize + 1];
        let r = c.put("limits", b"big", &too_big).await;
        assert_eq!(server_status(r, "put 64 MiB + 1"), Status::TooLarge);
        drop(too_big);
        assert_eq!(c.get("limits", b"big").await.expect("get"), None);

        let r = c.put("limits", b"", b"v").await;
        assert_eq!(server_status(r, "empty key"), Status::KeyTooLong);
        // A key over the 1024-byte limit is refused and not stored, with the
        // KeyTooLong that `Status` documents (the wire decoder rejects it
        // before the store sees it), for reads and writes alike.
        let long = vec![b'k'; 1025];
        let r = c.put("limits", &long, b"v").await;
        assert_eq!(server_status(r, "put 1025-byte key"), Status::KeyTooLong);
        let r = c.get("limits", &long).await;
        assert_eq!(server_status(r, "get 1025-byte key"), Status::KeyTooLong);
        let max = vec![b'k'; 1024];
        c.put("limits", &max, b"v").await.expect("1024-byte key");
        assert!(c.exists("limits", &max).await.expect("exists"));

        let st = c.stat("limits").await.expect("stat");
        assert_eq!(st.keys, 1, "only the 1024-byte key was stored: {st:?}");
    });
    let o = server.kv(&["get", "nosuch", "k"]);
    assert_exit(&o, 1, "kv get in an unknown space");
    assert!(stderr(&o).contains("no such KV space"), "{}", stderr(&o));
}

#[test]
fn cli_bench_reports_throughput_and_latency_percentiles() {
    let server = Server::start();
    create_space(&server, "bench", "32MiB", &[]);
    let runs: [&[&str]; 2] = [
        &[
            "--op",
            "put",
            "--size",
            "64KiB",
            "--count",
            "100",
            "--concurrency",
            "4",
        ],
        &[
            "--op",
            "batch-get",
            "--size",
            "16KiB",
            "--count",
            "20",
            "--batch",
            "8",
            "--keyspace",
            "32",
            "--concurrency",
            "2",
        ],
    ];
    for extra in runs {
        let mut args = vec!["bench", "--space", "bench", "--no-progress"];
        args.extend_from_slice(extra);
        let o = server.kv(&args);
        assert_exit(&o, 0, &format!("kv {}", args.join(" ")));
        let text = stdout(&o);
        let value = |name: &str| -> f64 {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no `{name}:` line in the summary:\n{text}"));
            line.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("`{name}:` is not a number:\n{text}"))
        };
        assert!(value("ops/s") > 0.0, "{text}");
        assert!(value("GiB/s") > 0.0, "{text}");
        let (p50, p99, p999) = (value("p50"), value("p99"), value("p999"));
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999,
            "percentiles ordered:\n{text}"
        );
    }
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let st = c.stat("bench").await.expect("stat");
        assert!(st.puts >= 100 + 32, "the bench really wrote: {st:?}");
        assert!(st.hits >= 20 * 8, "the batch gets really read: {st:?}");
        let keys = c.scan_all("bench", b"bench/").await.expect("scan");
        assert!(!keys.is_empty(), "bench keys are under bench/");
    });
}

#[test]
fn a_deleted_space_and_its_values_stay_gone_across_recreate_and_restart() {
    let mut server = Server::start();
    create_space(&server, "gone", "16MiB", &["--durability", "disk"]);
    create_space(&server, "kept", "16MiB", &["--durability", "disk"]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        c.put("gone", b"old", b"from the first space")
            .await
            .expect("put");
        c.put("kept", b"k", b"stays").await.expect("put");
    });
    let out = admin_ok(&server, &["kv-space", "delete", "gone"]);
    assert!(out.contains("gone"), "{out}");
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let r = c.get("gone", b"old").await;
        assert_eq!(
            server_status(r, "get in a deleted space"),
            Status::NoSuchSpace
        );
    });
    let o = server.admin(&["kv-space", "delete", "gone"]);
    assert_ne!(o.status.code(), Some(0), "deleting twice fails");
    create_space(&server, "gone", "16MiB", &["--durability", "disk"]);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        assert_eq!(
            c.get("gone", b"old").await.expect("get"),
            None,
            "recreated empty"
        );
        c.put("gone", b"new", b"second space").await.expect("put");
    });

    server.kill9();
    server.restart();

    let list = admin_ok(&server, &["kv-space", "list"]);
    assert_eq!(
        list.lines().filter(|l| l.starts_with("gone ")).count(),
        1,
        "{list}"
    );
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        assert_eq!(
            c.get("gone", b"old").await.expect("get"),
            None,
            "a value of the deleted space came back"
        );
        assert_eq!(
            c.get("gone", b"new").await.expect("get").as_deref(),
            Some(&b"second space"[..])
        );
        assert_eq!(c.stat("gone").await.expect("stat").keys, 1);
        assert_eq!(
            c.get("kept", b"k").await.expect("get").as_deref(),
            Some(&b"stays"[..])
        );
    });
}

#[test]
fn ttl_keeps_counting_across_a_restart_of_a_disk_space() {
    let mut server = Server::start();
    create_space(
        &server,
        "ttldisk",
        "8MiB",
        &["--durability", "disk", "--ttl", "2"],
    );
    let start = Instant::now();
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        c.put("ttldisk", b"k", b"short").await.expect("put");
    });
    server.kill9();
    server.restart();
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while c.get("ttldisk", b"k").await.expect("get").is_some() {
            assert!(
                Instant::now() < deadline,
                "a 2 s TTL value still readable {:?} after its put (restart reset it?)",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(1900));
    });
}

#[test]
fn a_full_disk_space_evicts_under_concurrent_puts_without_exceeding_capacity() {
    // In-flight puts (4 x 256 KiB) stay well under the capacity, so every
    // put must succeed by evicting older values.
    const CAPACITY: u64 = 2 << 20;
    const VALUE: usize = 256 * KIB;
    let mut server = Server::start();
    create_space(&server, "d", "2MiB", &["--durability", "disk"]);
    let last = PatternRng::new(77).bytes(VALUE);
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..4u64 {
            let c = c.clone();
            tasks.spawn(async move {
                let mut rng = PatternRng::new(300 + t);
                for i in 0..8 {
                    let key = format!("d-{t}-{i}");
                    c.put("d", key.as_bytes(), &rng.bytes(VALUE))
                        .await
                        .unwrap_or_else(|e| panic!("put {key}: {e}"));
                    let st = c.stat("d").await.expect("stat");
                    assert!(st.bytes <= CAPACITY, "after {key}: {st:?}");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("put task");
        }
        c.put("d", b"last", &last).await.expect("put last");
        let st = c.stat("d").await.expect("stat");
        assert!(st.bytes <= CAPACITY, "{st:?}");
        assert!(st.evictions >= 33 - CAPACITY / VALUE as u64, "{st:?}");
        assert_eq!(st.puts, 33, "{st:?}");
    });
    // What survives a crash is a consistent subset that still fits.
    server.kill9();
    server.restart();
    block_on(LIMIT, async {
        let c = root_client(&server).await;
        let got = c
            .get("d", b"last")
            .await
            .expect("get")
            .expect("last survived");
        assert_eq!(sha256_hex(&got), sha256_hex(&last));
        let st = c.stat("d").await.expect("stat");
        assert!(st.bytes <= CAPACITY, "{st:?}");
        let listed = c.scan_all("d", b"").await.expect("scan");
        assert_eq!(listed.len() as u64, st.keys, "{st:?}");
        for (k, len) in &listed {
            let v = c
                .get("d", k)
                .await
                .expect("get")
                .expect("listed key readable");
            assert_eq!(v.len() as u64, *len);
        }
    });
}

#[test]
fn a_client_recovers_after_the_server_closes_its_idle_connections() {
    let server = Server::start_with_config("[kv]\nidle_timeout_secs = 1\n");
    create_space(&server, "idle", "8MiB", &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let c = rt.block_on(async {
        let c = root_client(&server).await;
        c.put("idle", b"k", b"before").await.expect("put");
        c
    });
    // A raw connection opened after the client's last request is closed
    // by the idle timeout; by then the client's connections were idle
    // longer, and the server closed them too.
    let mut raw = RawConn::connect(server.kv_addr());
    let took = raw
        .wait_closed(Duration::from_secs(10))
        .expect("an idle connection is closed after idle_timeout_secs");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    rt.block_on(async {
        let got = tokio::time::timeout(Duration::from_secs(30), c.get("idle", b"k"))
            .await
            .expect("client not stuck")
            .expect("the client reconnects after its connection was closed");
        assert_eq!(got.as_deref(), Some(&b"before"[..]));
        c.put("idle", b"k2", b"after")
            .await
            .expect("put after idle close");
    });
}
