//! How much memory this process may use: the machine's, or less when a
//! cgroup on its path is limited.
//!
//! A container's or a systemd unit's limit is not always at the root of
//! the cgroup filesystem the process sees: with `--cgroupns=host`, under
//! systemd's `MemoryMax=`, or with cgroup v1 (one hierarchy per
//! controller), it sits at the process's own cgroup or one of its
//! ancestors. So the process's cgroup is taken from `/proc/self/cgroup`,
//! found under the mounts listed in `/proc/self/mountinfo`, and every
//! level from there up to the mount is read; the lowest limit wins. (On a
//! cgroup v1 host with `memory.use_hierarchy` off, a parent's limit does
//! not bind its children; taking it anyway can only make the caches
//! smaller than they might be.)

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// The memory this process may use: `MemTotal` of `/proc/meminfo`, or the
/// lowest cgroup memory limit on the process's path (v2 `memory.max`, v1
/// `memory.limit_in_bytes`) when that is lower. `None` when nothing can
/// be read.
pub fn memory_bytes() -> Option<u64> {
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let machine = read(Path::new("/proc/meminfo"))
        .as_deref()
        .and_then(mem_total);
    let cgroup = match (
        read(Path::new("/proc/self/cgroup")),
        read(Path::new("/proc/self/mountinfo")),
    ) {
        (Some(cgroups), Some(mounts)) => cgroup_memory_limit(&cgroups, &mounts, read),
        _ => None,
    };
    machine.into_iter().chain(cgroup).min()
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        _ => None,
    }
}

/// The lowest memory limit set on the cgroups of a `/proc/self/cgroup`
/// text or their ancestors, as the mounts of a `/proc/self/mountinfo`
/// text show them; `read` gives a file's text. `None` when no limit is
/// set or none can be read.
fn cgroup_memory_limit(
    proc_cgroup: &str,
    mountinfo: &str,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<u64> {
    let mounts: Vec<CgroupMount> = mountinfo.lines().filter_map(CgroupMount::parse).collect();
    let mut lowest: Option<u64> = None;
    for line in proc_cgroup.lines() {
        // hierarchy-ID:controller-list:cgroup-path
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // A cgroup outside this process's cgroup namespace reads "/../..",
        // which no mount shows (and a removed v2 cgroup "/path (deleted)",
        // whose files are gone).
        let path = Path::new(path);
        if path.components().any(|c| c == Component::ParentDir) {
            continue;
        }
        let v2 = id == "0" && controllers.is_empty();
        let v1 = controllers.split(',').any(|c| c == "memory");
        if !v1 && !v2 {
            continue;
        }
        let limit_file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        for mount in mounts.iter().filter(|m| m.v2 == v2 && (v2 || m.memory)) {
            for dir in mount.dirs_of(path) {
                let limit = read(&dir.join(limit_file)).and_then(|t| t.trim().parse::<u64>().ok());
                lowest = lowest.into_iter().chain(limit).min();
            }
        }
    }
    lowest
}

/// A cgroup filesystem mount from `/proc/self/mountinfo`.
struct CgroupMount {
    /// The cgroup the mount shows at its mount point.
    root: PathBuf,
    mount_point: PathBuf,
    /// cgroup v2 (`cgroup2`); otherwise a v1 hierarchy.
    v2: bool,
    /// A v1 hierarchy with the memory controller.
    memory: bool,
}

impl CgroupMount {
    /// One mountinfo line: `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS
    /// [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS`; `None` unless a cgroup
    /// filesystem.
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
        let fstype = fields.get(dash + 1)?;
        let super_options = fields.get(dash + 3).copied().unwrap_or("");
        let v2 = *fstype == "cgroup2";
        if !v2 && *fstype != "cgroup" {
            return None;
        }
        Some(Self {
            root: unescape(root),
            mount_point: unescape(mount_point),
            v2,
            memory: super_options.split(',').any(|o| o == "memory"),
        })
    }

    /// The directories of `cgroup` and of its ancestors that this mount
    /// shows, the deepest first; none when the mount does not show it.
    fn dirs_of(&self, cgroup: &Path) -> Vec<PathBuf> {
        let Ok(below) = cgroup.strip_prefix(&self.root) else {
            return Vec::new();
        };
        below
            .ancestors()
            .map(|rel| self.mount_point.join(rel))
            .collect()
    }
}

/// A mountinfo field with its octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const GIB: u64 = 1 << 30;

    /// `cgroup_memory_limit` over files given as (path, text).
    fn limit(proc_cgroup: &str, mountinfo: &str, files: &[(&str, &str)]) -> Option<u64> {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        cgroup_memory_limit(proc_cgroup, mountinfo, |p| files.get(p).cloned())
    }

    /// As a systemd host shows it, with an optional field before the `-`.
    const V2_MOUNT: &str = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime \
                            shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

    #[test]
    fn meminfo_gives_the_machine_total() {
        let meminfo = "MemTotal:       24682468 kB\nMemFree:        20283000 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_682_468 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total("MemTotal: 12 pages\n"), None);
    }

    #[test]
    fn a_private_cgroup_namespace_reads_the_mount_root() {
        let files = [("/sys/fs/cgroup/memory.max", "4294967296\n")];
        assert_eq!(limit("0::/\n", V2_MOUNT, &files), Some(4 * GIB));
        let unlimited = [("/sys/fs/cgroup/memory.max", "max\n")];
        assert_eq!(limit("0::/\n", V2_MOUNT, &unlimited), None);
    }

    #[test]
    fn a_limit_on_an_ancestor_cgroup_is_found() {
        // systemd's MemoryMax= on the slice, or a host cgroup namespace:
        // the process sits below the limited cgroup.
        let files = [
            ("/sys/fs/cgroup/memory.max", "max\n"),
            ("/sys/fs/cgroup/system.slice/memory.max", "8589934592\n"),
            (
                "/sys/fs/cgroup/system.slice/nitrofs.service/memory.max",
                "max\n",
            ),
        ];
        let cgroup = "0::/system.slice/nitrofs.service\n";
        assert_eq!(limit(cgroup, V2_MOUNT, &files), Some(8 * GIB));
        let both = [
            ("/sys/fs/cgroup/system.slice/memory.max", "8589934592\n"),
            (
                "/sys/fs/cgroup/system.slice/nitrofs.service/memory.max",
                "2147483648\n",
            ),
        ];
        assert_eq!(limit(cgroup, V2_MOUNT, &both), Some(2 * GIB), "lowest wins");
    }

    #[test]
    fn cgroup_v1_memory_hierarchy_is_read() {
        // This is how a hybrid host looks (one of our CI machines): the
        // memory controller on v1, an empty v2 hierarchy beside it.
        let mounts = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                      32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let cgroup = "4:memory:/process_api/d45c\n1:cpu:/\n0::/\n";
        let files = [
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "/sys/fs/cgroup/memory/process_api/d45c/memory.limit_in_bytes",
                "536870912\n",
            ),
            // The cpu hierarchy is not read for memory limits.
            ("/sys/fs/cgroup/cpu/memory.limit_in_bytes", "1\n"),
        ];
        assert_eq!(limit(cgroup, mounts, &files), Some(512 << 20));
    }

    #[test]
    fn a_mount_of_a_subtree_is_matched_by_its_root() {
        // Docker with cgroup v1 and no cgroup namespace: the container's
        // own cgroup is mounted at /sys/fs/cgroup/memory.
        let mounts = "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n";
        let files = [("/sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824")];
        assert_eq!(limit("9:memory:/docker/abc\n", mounts, &files), Some(GIB));
        assert_eq!(
            limit("9:memory:/elsewhere\n", mounts, &files),
            None,
            "a cgroup the mount does not show is not read"
        );
    }

    #[test]
    fn cgroups_no_mount_shows_are_not_read() {
        let files = [
            ("/sys/fs/cgroup/memory.max", "1048576\n"),
            ("/sys/fs/memory.max", "1048576\n"),
        ];
        assert_eq!(
            limit("0::/../..\n", V2_MOUNT, &files),
            None,
            "outside the namespace"
        );
    }

    #[test]
    fn escaped_mount_points_and_junk_lines_are_handled() {
        let mounts = "1 2 0:1 / /sys/fs/my\\040cgroup rw - cgroup2 none rw\nnonsense\n";
        let files = [("/sys/fs/my cgroup/memory.max", "1048576\n")];
        assert_eq!(limit("0::/\n", mounts, &files), Some(1 << 20));
        assert_eq!(limit("garbage\n0::/\n", "", &files), None, "no mounts");
        assert_eq!(unescape("a\\134b\\0"), Path::new("a\\b\\0"));
    }

    #[test]
    fn this_machine_has_some_memory() {
        let here = memory_bytes().expect("this Linux machine has /proc/meminfo");
        assert!(here >= 64 << 20, "{here}");
    }
}
