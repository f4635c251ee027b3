//! Which data node serves a key. The client computes it from its cached
//! table (zero metadata calls); a node that sees a request routed with an
//! older table version answers `StaleRouting` and the client refreshes.

use crate::codec::{Dec, DecodeError, Enc};

/// One data node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node id, unique in the cluster.
    pub id: u32,
    /// Where its KV service listens (`host:port`).
    pub addr: String,
}

/// The routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Bumped on every change; requests carry the version they used.
    pub version: u64,
    /// Every data node.
    pub nodes: Vec<Node>,
    /// Chains by position: each entry is the node id of the chain's head
    /// (where writes enter and reads go today).
    pub chains: Vec<u32>,
}

/// Stable 64-bit FNV-1a over the space name, a separator and the key. Never
/// change it: clients of every version must agree on placement.
pub fn key_hash(space: &str, key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in space.as_bytes().iter().chain(&[0xffu8]).chain(key) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

impl Routing {
    /// A one-node, one-chain table.
    pub fn single(version: u64, addr: String) -> Self {
        Self {
            version,
            nodes: vec![Node { id: 1, addr }],
            chains: vec![1],
        }
    }

    /// The node serving `key` of `space`.
    pub fn node_for(&self, space: &str, key: &[u8]) -> Option<&Node> {
        let chain = match self.chains.len() {
            0 => return None,
            // Every key is on the one chain: no need to hash it.
            1 => 0,
            n => (key_hash(space, key) % n as u64) as usize,
        };
        let id = self.chains[chain];
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Appends the table to a header.
    pub fn encode(&self, e: &mut Enc) {
        e.u64(self.version).u32(self.nodes.len() as u32);
        for n in &self.nodes {
            e.u32(n.id).str(&n.addr);
        }
        e.u32(self.chains.len() as u32);
        for c in &self.chains {
            e.u32(*c);
        }
    }

    /// Reads a table.
    pub fn decode(d: &mut Dec<'_>) -> Result<Self, DecodeError> {
        let version = d.u64()?;
        let n = d.count("nodes", 65_536, 8)?;
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            let id = d.u32()?;
            let addr = d.str("node address", 256)?.to_string();
            nodes.push(Node { id, addr });
        }
        let c = d.count("chains", 1 << 20, 4)?;
        let mut chains = Vec::with_capacity(c);
        for _ in 0..c {
            let id = d.u32()?;
            if !nodes.iter().any(|n| n.id == id) {
                return Err(DecodeError::Invalid("chain names an unknown node"));
            }
            chains.push(id);
        }
        Ok(Self {
            version,
            nodes,
            chains,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_across_releases() {
        // Pinned values: changing the hash would move every key.
        assert_eq!(key_hash("", b""), 0xaf64_724c_8602_eb6e);
        assert_eq!(key_hash("cache", b"k1"), 0xd322_f25a_f5ff_b5aa);
        assert_ne!(key_hash("a", b"b"), key_hash("ab", b""));
    }

    #[test]
    fn keys_spread_over_chains_and_the_table_roundtrips() {
        let r = Routing {
            version: 9,
            nodes: vec![
                Node {
                    id: 1,
                    addr: "a:1".into(),
                },
                Node {
                    id: 2,
                    addr: "b:2".into(),
                },
            ],
            chains: vec![1, 2, 1, 2],
        };
        let mut hits = [0usize; 3];
        for i in 0..1000u32 {
            let n = r.node_for("s", &i.to_le_bytes()).map(|n| n.id).unwrap_or(0);
            hits[n as usize] += 1;
        }
        assert_eq!(hits[0], 0);
        assert!(hits[1] > 300 && hits[2] > 300, "{hits:?}");
        let mut e = Enc::new();
        r.encode(&mut e);
        let b = e.finish();
        let mut d = Dec::new(&b);
        assert_eq!(Routing::decode(&mut d), Ok(r));
        assert_eq!(d.end(), Ok(()));
    }

    #[test]
    fn a_chain_naming_an_unknown_node_is_rejected() {
        let r = Routing {
            version: 1,
            nodes: vec![Node {
                id: 1,
                addr: "a".into(),
            }],
            chains: vec![2],
        };
        let mut e = Enc::new();
        r.encode(&mut e);
        let b = e.finish();
        assert!(Routing::decode(&mut Dec::new(&b)).is_err());
    }
}
