//! Durability helpers, used everywhere data must survive a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Fsyncs a directory so that entries created or removed in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, fsyncing each parent whose entry
/// list changed, so the new path survives power loss.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_all_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    fsync_dir(parent.unwrap_or(Path::new(".")))
}

/// Replaces `path` with `contents` atomically: write a temporary file,
/// fsync it, rename it over `path`, fsync the directory. `mode` sets the
/// permission bits of the new file (e.g. 0o600 for secrets).
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_directories_are_created_under_the_working_directory() {
        let rel = format!("target/nitrofs-crashsafe-rel-{}/x", std::process::id());
        create_dir_all_durable(Path::new(&rel)).expect("relative mkdir");
        assert!(Path::new(&rel).is_dir());
        fs::remove_dir_all(Path::new(&rel).parent().expect("parent")).expect("cleanup");
    }

    #[test]
    fn atomic_write_replaces_content_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nitrofs-crashsafe-{}", std::process::id()));
        create_dir_all_durable(&dir.join("a/b")).expect("mkdir");
        let p = dir.join("a/b/secret");
        write_file_atomic(&p, b"one", 0o600).expect("write");
        write_file_atomic(&p, b"two", 0o600).expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let mode = fs::metadata(&p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
