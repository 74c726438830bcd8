//! Durable file system writes: a file appears whole under its final name or not at all, and
//! survives a crash once the call returns (spec 2.3, 6.4, 8.5).
//!
//! As Litestream does, a file is written to `<name>.tmp` in the same directory, synced, renamed
//! over the final name, and the directory is synced so the rename itself is on disk. Errors are
//! `io::Error`s that name the path (through fs-err). Which files to write, and their modes, are
//! the callers' choice.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Mode of files Litestream creates when it knows no database file mode.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// Mode of directories Litestream creates when it knows no database directory mode.
pub const DEFAULT_DIR_MODE: u32 = 0o700;

/// The temporary name `write_file` uses for `path`: `<path>.tmp`, as Litestream names it.
pub fn temp_path(path: impl AsRef<Path>) -> PathBuf {
    let mut name = OsString::from(path.as_ref().as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes a file durably with mode [`DEFAULT_FILE_MODE`]: see [`write_file_with_mode`].
///
/// # Errors
/// As [`write_file_with_mode`].
pub fn write_file<T>(
    path: impl AsRef<Path>,
    fill: impl FnOnce(&mut fs_err::File) -> io::Result<T>,
) -> io::Result<T> {
    write_file_with_mode(path, DEFAULT_FILE_MODE, fill)
}

/// Writes a file durably: `fill` writes the content into `<path>.tmp` (created with `mode`,
/// less the umask, on Unix; truncated if it exists), which is synced, renamed to `path`, and
/// the directory synced. On failure the temporary file is removed and `path` is untouched.
///
/// # Errors
/// The first error of `fill`, creating, syncing or renaming the file, or syncing the directory.
pub fn write_file_with_mode<T>(
    path: impl AsRef<Path>,
    mode: u32,
    fill: impl FnOnce(&mut fs_err::File) -> io::Result<T>,
) -> io::Result<T> {
    let path = path.as_ref();
    let tmp = temp_path(path);
    let mut options = fs_err::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    set_mode(&mut options, mode);
    let mut file = options.open(&tmp)?;
    let res = fill(&mut file).and_then(|value| file.sync_all().map(|()| value));
    drop(file);
    match res {
        Ok(value) => {
            rename_durable(&tmp, path)?;
            Ok(value)
        }
        Err(err) => {
            // The write already failed and that error is what the caller needs; a temporary
            // file we cannot remove is only clutter, which listings ignore (`.tmp`).
            let _ = fs_err::remove_file(&tmp);
            Err(err)
        }
    }
}

/// Renames `from` to `to` (replacing `to`), then syncs the directory of `to`, and that of
/// `from` when it differs, so the rename survives a crash.
///
/// # Errors
/// When the rename or a directory sync fails.
pub fn rename_durable(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    fs_err::rename(from, to)?;
    let to_dir = parent_dir(to);
    fsync_dir(to_dir)?;
    let from_dir = parent_dir(from);
    if from_dir != to_dir {
        fsync_dir(from_dir)?;
    }
    Ok(())
}

/// Syncs a directory, making the creation, removal and renaming of its entries durable. A no-op
/// where directories cannot be opened (not Unix).
///
/// # Errors
/// When the directory cannot be opened or synced.
pub fn fsync_dir(path: impl AsRef<Path>) -> io::Result<()> {
    if cfg!(unix) {
        fs_err::File::open(path.as_ref())?.sync_all()?;
    }
    Ok(())
}

/// Creates `path` and its missing parents with [`DEFAULT_DIR_MODE`]: see
/// [`create_dir_all_durable_with_mode`].
///
/// # Errors
/// As [`create_dir_all_durable_with_mode`].
pub fn create_dir_all_durable(path: impl AsRef<Path>) -> io::Result<()> {
    create_dir_all_durable_with_mode(path, DEFAULT_DIR_MODE)
}

/// Creates `path` and its missing parents (each with `mode`, less the umask, on Unix), syncing
/// the parent of each directory created so the new entries survive a crash. Existing
/// directories are left as they are.
///
/// # Errors
/// When a directory cannot be created or synced, or a path component is not a directory.
pub fn create_dir_all_durable_with_mode(path: impl AsRef<Path>, mode: u32) -> io::Result<()> {
    let path = path.as_ref();
    let mut missing = Vec::new();
    let mut current = path;
    loop {
        match fs_err::metadata(current) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    PathError::new("not a directory", current),
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => missing.push(current),
            Err(err) => return Err(err),
        }
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        let mut builder = std::fs::DirBuilder::new();
        set_dir_mode(&mut builder, mode);
        match builder.create(dir) {
            Ok(()) => {}
            // Someone else created it meanwhile: fine, it exists.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => continue,
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    PathError::with_source("cannot create directory", dir, err),
                ));
            }
        }
        fsync_dir(parent_dir(dir))?;
    }
    Ok(())
}

/// The directory holding `path`: its parent, or `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn set_mode(options: &mut fs_err::OpenOptions, mode: u32) {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    options.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_options: &mut fs_err::OpenOptions, _mode: u32) {}

#[cfg(unix)]
fn set_dir_mode(builder: &mut std::fs::DirBuilder, mode: u32) {
    use std::os::unix::fs::DirBuilderExt as _;
    builder.mode(mode);
}

#[cfg(not(unix))]
fn set_dir_mode(_builder: &mut std::fs::DirBuilder, _mode: u32) {}

/// An I/O failure naming its path, as fs-err's errors do, for calls fs-err does not wrap.
#[derive(Debug)]
struct PathError {
    what: &'static str,
    path: PathBuf,
    source: Option<io::Error>,
}

impl PathError {
    fn new(what: &'static str, path: &Path) -> Self {
        Self {
            what,
            path: path.to_owned(),
            source: None,
        }
    }

    fn with_source(what: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            what,
            path: path.to_owned(),
            source: Some(source),
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.what, self.path.display())
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|err| -> &(dyn std::error::Error + 'static) { err })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn write_file_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        write_file(&path, |file| file.write_all(b"old")).unwrap();
        let len = write_file(&path, |file| file.write_all(b"new content").map(|()| 11)).unwrap();
        assert_eq!(len, 11);
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        assert!(!temp_path(&path).exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["db.sqlite"]);
    }

    #[cfg(unix)]
    #[test]
    fn write_file_uses_private_mode_by_default() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write_file(&path, |file| file.write_all(b"x")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let shared = dir.path().join("shared");
        write_file_with_mode(&shared, 0o640, |file| file.write_all(b"x")).unwrap();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
        // Group read survives only if the umask allows it; others never get anything.
        assert_eq!(mode & 0o707, 0o600);
    }

    #[test]
    fn write_file_fill_error_keeps_old_file_and_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write_file(&path, |file| file.write_all(b"kept")).unwrap();
        let err = write_file(&path, |file| {
            file.write_all(b"half")?;
            Err::<(), _>(io::Error::other("source went away"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "source went away");
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn write_file_missing_directory_names_temp_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("db");
        let err = write_file(&path, |file| file.write_all(b"x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("db.tmp"), "{err}");
    }

    #[test]
    fn rename_durable_moves_across_directories() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a").join("x");
        let to = dir.path().join("b").join("y");
        create_dir_all_durable(from.parent().unwrap()).unwrap();
        create_dir_all_durable(to.parent().unwrap()).unwrap();
        std::fs::write(&from, b"payload").unwrap();
        rename_durable(&from, &to).unwrap();
        assert!(!from.exists());
        assert_eq!(std::fs::read(&to).unwrap(), b"payload");
        assert!(rename_durable(&from, &to).is_err());
    }

    #[test]
    fn create_dir_all_durable_creates_nested_and_accepts_existing() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir
            .path()
            .join("generations")
            .join("0123456789abcdef")
            .join("wal");
        create_dir_all_durable(&nested).unwrap();
        assert!(nested.is_dir());
        create_dir_all_durable(&nested).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&nested).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn create_dir_all_durable_through_a_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = create_dir_all_durable(file.join("sub")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        let err = create_dir_all_durable(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        assert_eq!(
            err.to_string(),
            format!("not a directory {}", file.display())
        );
    }

    #[test]
    fn fsync_dir_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(fsync_dir(dir.path()).is_ok());
        assert!(fsync_dir(dir.path().join("nope")).is_err());
    }

    #[test]
    fn temp_path_appends_tmp_suffix() {
        assert_eq!(temp_path("/data/app.db"), PathBuf::from("/data/app.db.tmp"));
        assert_eq!(temp_path("generation"), PathBuf::from("generation.tmp"));
    }

    #[test]
    fn parent_dir_of_bare_name_is_current_dir() {
        assert_eq!(parent_dir(Path::new("app.db")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/data/app.db")), Path::new("/data"));
    }
}
