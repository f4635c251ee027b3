//! Owners of the device-level verbs objects (device list, context, PD, CQ)
//! and [`VerbsContext`], which bundles them with the registration cache.

use super::ffi;
use super::region::RegionCache;
use super::{VerbsError, VerbsUnavailable};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The port every queue pair uses.
pub(super) const PORT: u8 = 1;
/// The GID table entry sent to peers (RoCE deployments may want another).
pub(super) const GID_INDEX: u8 = 0;
/// Completion queue entries; also the bound on work requests in flight
/// over all queue pairs of a context.
const CQ_DEPTH: usize = 4096;
/// Idle registered bytes a context keeps for reuse.
const CACHED_BYTES: usize = 512 * 1024 * 1024;

/// The list from `ibv_get_device_list`, freed on drop.
pub(super) struct DeviceList {
    list: *mut *mut ffi::ibv_device,
    len: usize,
}

/// One device of a live [`DeviceList`].
pub(super) struct Device<'l> {
    raw: *mut ffi::ibv_device,
    _list: PhantomData<&'l DeviceList>,
}

impl DeviceList {
    pub(super) fn get() -> io::Result<Self> {
        let mut n: std::os::raw::c_int = 0;
        // SAFETY: `n` is a valid out-pointer; the call returns an array of
        // `n` device pointers that we own until ibv_free_device_list, or
        // NULL with errno set.
        let list = unsafe { ffi::ibv_get_device_list(&mut n) };
        if list.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            list,
            len: usize::try_from(n).unwrap_or(0),
        })
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = Device<'_>> + '_ {
        (0..self.len).map(move |i| Device {
            // SAFETY: `i < len`, the length libibverbs reported for `list`,
            // which stays allocated while `self` lives.
            raw: unsafe { *self.list.add(i) },
            _list: PhantomData,
        })
    }
}

impl Drop for DeviceList {
    fn drop(&mut self) {
        // SAFETY: `list` came from ibv_get_device_list and is freed once.
        // Contexts opened from its devices stay valid after this.
        unsafe { ffi::ibv_free_device_list(self.list) };
    }
}

impl Device<'_> {
    pub(super) fn name(&self) -> String {
        // SAFETY: `raw` is a device of a live list.
        let p = unsafe { ffi::ibv_get_device_name(self.raw) };
        if p.is_null() {
            return "?".into();
        }
        // SAFETY: libibverbs returns a NUL-terminated name owned by the
        // device, valid while the list lives; we copy it out at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// An opened device (`ibv_context`) with the attributes queue pairs need.
pub(super) struct DeviceHandle {
    pub(super) raw: *mut ffi::ibv_context,
    pub(super) name: String,
    pub(super) lid: u16,
    pub(super) active_mtu: u8,
    pub(super) ethernet: bool,
    pub(super) gid: [u8; 16],
    /// RDMA READs one QP may have outstanding as initiator and as target.
    pub(super) max_rd_atomic: u8,
}

// SAFETY: libibverbs objects may be used from any thread (rdma-core's verbs
// are thread-safe); the handle only holds the pointer and plain data.
unsafe impl Send for DeviceHandle {}
// SAFETY: as above; no method mutates through `&self` outside libibverbs.
unsafe impl Sync for DeviceHandle {}

impl DeviceHandle {
    /// Opens `dev` and checks that its port is active.
    pub(super) fn open(dev: &Device<'_>) -> io::Result<Self> {
        // SAFETY: `dev.raw` is a device of a live list.
        let raw = unsafe { ffi::ibv_open_device(dev.raw) };
        if raw.is_null() {
            return Err(io::Error::other("ibv_open_device failed"));
        }
        // From here on, dropping `h` closes the device.
        let mut h = DeviceHandle {
            raw,
            name: dev.name(),
            lid: 0,
            active_mtu: 0,
            ethernet: false,
            gid: [0; 16],
            max_rd_atomic: 1,
        };
        let mut port = ffi::ibv_port_attr::default();
        // SAFETY: `raw` is open; the exported ibv_query_port fills the
        // older, shorter layout of ibv_port_attr, which `port` covers.
        let rc = unsafe {
            ffi::ibv_query_port(raw, PORT, (&mut port as *mut ffi::ibv_port_attr).cast())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if port.state != ffi::ibv_port_state::IBV_PORT_ACTIVE {
            return Err(io::Error::other(format!("port {PORT} is not active")));
        }
        let mut gid = ffi::ibv_gid::default();
        // SAFETY: `raw` is open and `gid` is a valid out-pointer.
        let rc = unsafe { ffi::ibv_query_gid(raw, PORT, i32::from(GID_INDEX), &mut gid) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut dev_attr = ffi::ibv_device_attr::default();
        // SAFETY: `raw` is open and `dev_attr` is a valid out-pointer.
        let rc = unsafe { ffi::ibv_query_device(raw, &mut dev_attr) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        h.lid = port.lid;
        h.active_mtu = u8::try_from(port.active_mtu).unwrap_or(1);
        h.ethernet = u32::from(port.link_layer) == ffi::IBV_LINK_LAYER_ETHERNET;
        // SAFETY: every bit pattern of the 16-byte union is a valid `raw`.
        h.gid = unsafe { gid.raw };
        let rd = dev_attr
            .max_qp_rd_atom
            .min(dev_attr.max_qp_init_rd_atom)
            .clamp(1, 16);
        h.max_rd_atomic = u8::try_from(rd).unwrap_or(1);
        Ok(h)
    }
}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` was opened by us; its PD and CQ owners hold an Arc to
        // this handle, so nothing created from it is still alive.
        let rc = unsafe { ffi::ibv_close_device(self.raw) };
        if rc != 0 {
            tracing::warn!(device = %self.name, "ibv_close_device failed: {rc}");
        }
    }
}

/// A protection domain.
pub(super) struct PdHandle {
    pub(super) raw: *mut ffi::ibv_pd,
    pub(super) dev: Arc<DeviceHandle>,
}

// SAFETY: see DeviceHandle; libibverbs PDs are usable from any thread.
unsafe impl Send for PdHandle {}
// SAFETY: as above.
unsafe impl Sync for PdHandle {}

impl PdHandle {
    fn alloc(dev: Arc<DeviceHandle>) -> io::Result<Self> {
        // SAFETY: `dev.raw` is an open context.
        let raw = unsafe { ffi::ibv_alloc_pd(dev.raw) };
        if raw.is_null() {
            return Err(io::Error::other("ibv_alloc_pd failed"));
        }
        Ok(Self { raw, dev })
    }
}

impl Drop for PdHandle {
    fn drop(&mut self) {
        // SAFETY: MR and QP owners hold an Arc to this PD, so none is left.
        let rc = unsafe { ffi::ibv_dealloc_pd(self.raw) };
        if rc != 0 {
            tracing::warn!("ibv_dealloc_pd failed: {rc}");
        }
    }
}

/// A completion queue.
pub(super) struct CqHandle {
    pub(super) raw: *mut ffi::ibv_cq,
    _dev: Arc<DeviceHandle>,
}

// SAFETY: see DeviceHandle; polling a CQ from several threads is allowed.
unsafe impl Send for CqHandle {}
// SAFETY: as above.
unsafe impl Sync for CqHandle {}

impl CqHandle {
    fn create(dev: Arc<DeviceHandle>, depth: usize) -> io::Result<Self> {
        let cqe = i32::try_from(depth).map_err(|_| io::Error::other("CQ too deep"))?;
        // SAFETY: `dev.raw` is open; no user context, no completion channel.
        let raw = unsafe {
            ffi::ibv_create_cq(dev.raw, cqe, std::ptr::null_mut(), std::ptr::null_mut(), 0)
        };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { raw, _dev: dev })
    }

    /// Pops up to `wcs.len()` completions; returns how many.
    fn poll(&self, wcs: &mut [ffi::ibv_wc]) -> io::Result<usize> {
        let n = i32::try_from(wcs.len()).unwrap_or(i32::MAX);
        // SAFETY: `raw` is a live CQ, so its context pointer is valid and
        // its ops table is filled in by the provider (this is what the
        // inline ibv_poll_cq of verbs.h does).
        let poll = unsafe { (*(*self.raw).context).ops.poll_cq };
        let Some(poll) = poll else {
            return Err(io::Error::other("provider has no poll_cq"));
        };
        // SAFETY: `wcs` has room for `n` completions of the C layout.
        let got = unsafe { poll(self.raw, n, wcs.as_mut_ptr()) };
        usize::try_from(got).map_err(|_| io::Error::other("ibv_poll_cq failed"))
    }
}

impl Drop for CqHandle {
    fn drop(&mut self) {
        // SAFETY: QP owners hold an Arc to this CQ, so no QP still uses it.
        let rc = unsafe { ffi::ibv_destroy_cq(self.raw) };
        if rc != 0 {
            tracing::warn!("ibv_destroy_cq failed: {rc}");
        }
    }
}

/// What a finished work request reported.
pub(super) type WcOutcome = Result<(), VerbsError>;

/// The shared CQ and the completions popped by one waiter for another.
pub(super) struct Completions {
    pub(super) cq: Arc<CqHandle>,
    state: Mutex<CompletionState>,
    next_wr_id: AtomicU64,
    /// Bounds work requests in flight so the CQ cannot overrun.
    pub(super) slots: tokio::sync::Semaphore,
}

#[derive(Default)]
struct CompletionState {
    done: HashMap<u64, WcOutcome>,
    /// Work requests nobody waits for any more; their completion is dropped.
    abandoned: HashSet<u64>,
}

impl Completions {
    pub(super) fn next_wr_id(&self) -> u64 {
        self.next_wr_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The outcome of `wr_id` if it has completed, polling the CQ once.
    pub(super) fn try_take(&self, wr_id: u64) -> Result<Option<WcOutcome>, VerbsError> {
        let mut st = self.state.lock();
        if let Some(r) = st.done.remove(&wr_id) {
            return Ok(Some(r));
        }
        let mut wcs = [ffi::ibv_wc::default(); 16];
        let n = self.cq.poll(&mut wcs)?;
        for wc in wcs.iter().take(n) {
            let id = wc.wr_id();
            if st.abandoned.remove(&id) {
                continue;
            }
            st.done.insert(id, outcome(wc));
        }
        Ok(st.done.remove(&wr_id))
    }

    /// Waits for `wr_id` without yielding to the runtime (used on drop),
    /// for at most `grace`. Whether it completed.
    pub(super) fn wait_blocking(&self, wr_id: u64, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            match self.try_take(wr_id) {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => std::thread::yield_now(),
                _ => return false,
            }
        }
    }

    /// Forgets `wr_id`: its completion, whenever it comes, is dropped.
    pub(super) fn abandon(&self, wr_id: u64) {
        let mut st = self.state.lock();
        if st.done.remove(&wr_id).is_none() {
            st.abandoned.insert(wr_id);
        }
    }
}

fn outcome(wc: &ffi::ibv_wc) -> WcOutcome {
    match wc.error() {
        None => Ok(()),
        Some((status, vendor_err)) => {
            // SAFETY: ibv_wc_status_str returns a static NUL-terminated
            // string for any status value.
            let text = unsafe { ffi::ibv_wc_status_str(status) };
            let status_text = if text.is_null() {
                "unknown".to_string()
            } else {
                // SAFETY: non-null, static and NUL-terminated (see above).
                unsafe { CStr::from_ptr(text) }
                    .to_string_lossy()
                    .into_owned()
            };
            Err(VerbsError::Completion {
                status,
                status_text,
                vendor_err,
            })
        }
    }
}

/// An opened RDMA device with its protection domain, completion queue and
/// registration cache. Shared (`Arc`) by its queue pairs and regions.
pub struct VerbsContext {
    pub(super) pd: Arc<PdHandle>,
    pub(super) completions: Completions,
    pub(super) cache: RegionCache,
}

impl std::fmt::Debug for VerbsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerbsContext")
            .field("device", &self.pd.dev.name)
            .finish()
    }
}

impl VerbsContext {
    /// Opens the first device whose port is active.
    pub fn open_first() -> Result<Arc<Self>, VerbsUnavailable> {
        let list = DeviceList::get().map_err(VerbsUnavailable::Os)?;
        let mut last = None;
        for dev in list.iter() {
            match Self::open(&dev) {
                Ok(ctx) => return Ok(Arc::new(ctx)),
                Err(reason) => {
                    last = Some(VerbsUnavailable::OpenFailed {
                        device: dev.name(),
                        reason,
                    })
                }
            }
        }
        Err(last.unwrap_or(VerbsUnavailable::NoDevices))
    }

    fn open(dev: &Device<'_>) -> io::Result<Self> {
        let handle = Arc::new(DeviceHandle::open(dev)?);
        let pd = Arc::new(PdHandle::alloc(handle.clone())?);
        let cq = Arc::new(CqHandle::create(handle, CQ_DEPTH)?);
        Ok(Self {
            pd,
            completions: Completions {
                cq,
                state: Mutex::new(CompletionState::default()),
                next_wr_id: AtomicU64::new(1),
                slots: tokio::sync::Semaphore::new(CQ_DEPTH),
            },
            cache: RegionCache::new(CACHED_BYTES),
        })
    }

    /// The device's name (e.g. `mlx5_0`).
    pub fn device_name(&self) -> &str {
        &self.pd.dev.name
    }
}
