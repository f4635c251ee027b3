//! S3-FIFO through the public API: scan resistance.

use super::Fixture;
use crate::store::{Durability, PutMode};
use bytes::Bytes;
use std::collections::VecDeque;

/// A plain LRU of entry counts, to show what S3-FIFO protects against.
struct Lru {
    cap: usize,
    order: VecDeque<String>,
}

impl Lru {
    fn access(&mut self, key: &str) {
        if let Some(at) = self.order.iter().position(|k| k == key) {
            self.order.remove(at);
        }
        self.order.push_back(key.to_string());
        if self.order.len() > self.cap {
            self.order.pop_front();
        }
    }
}

#[test]
fn a_hot_set_survives_a_one_pass_scan_that_flushes_an_lru() {
    const ENTRY: u64 = 100; // 4-byte keys + 96-byte values
    const SLOTS: u64 = 100;
    let f = Fixture::new();
    let s = f.space("s", ENTRY * SLOTS, Durability::Memory);
    let value = Bytes::from(vec![0u8; 96]);
    let mut lru = Lru {
        cap: SLOTS as usize,
        order: VecDeque::new(),
    };
    let hot: Vec<String> = (0..20).map(|i| format!("h{i:03}")).collect();
    for k in &hot {
        s.put(k.as_bytes(), value.clone(), PutMode::Overwrite)
            .expect("put");
        lru.access(k);
    }
    for _ in 0..3 {
        for k in &hot {
            assert!(s.get(k.as_bytes()).expect("get").is_some());
            lru.access(k);
        }
    }
    // One pass over 1000 cold keys, each used once.
    for i in 0..1000 {
        let k = format!("c{i:03}");
        s.put(k.as_bytes(), value.clone(), PutMode::Overwrite)
            .expect("put");
        lru.access(&k);
    }
    let survivors = hot.iter().filter(|k| s.exists(k.as_bytes())).count();
    assert_eq!(survivors, hot.len(), "S3-FIFO keeps the whole hot set");
    let lru_survivors = hot.iter().filter(|k| lru.order.contains(k)).count();
    assert_eq!(lru_survivors, 0, "an LRU of the same size keeps none of it");
    let st = s.stats();
    assert!(st.bytes <= st.capacity);
    assert_eq!(st.evictions, 20 + 1000 - SLOTS);
    s.check_invariants();
}
