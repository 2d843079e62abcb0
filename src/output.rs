//! Output files, all or nothing.
//!
//! ```text
//!  command start ── check_outputs: every directory exists, no two outputs on one path
//!  ... every check and the computation ...
//!  Outputs::stage(path, bytes) ── a temporary file beside each target (mode 0666 & !umask)
//!  Outputs::commit ── rename every staged file into place; dropped uncommitted: nothing stays
//! ```
//!
//! A failure anywhere before the commit leaves no file. Special files that already exist
//! (`/dev/stdout`, a FIFO, a terminal) are not regular files to replace: they are written
//! directly, at commit time. Files get the permissions of any newly created file (0644 under
//! umask 022), not the 0600 of a temporary file.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{describe_io, CliError};

/// Outputs being written: staged temporary files, renamed into place together by
/// [`Outputs::commit`]; dropped without a commit, they are deleted.
#[derive(Default)]
pub struct Outputs {
    staged: Vec<Staged>,
}

enum Staged {
    /// A regular file: its finished temporary file.
    File { path: PathBuf, tmp: tempfile::NamedTempFile },
    /// A special file (device, FIFO): its bytes, written directly at commit.
    Special { path: PathBuf, bytes: Vec<u8> },
}

/// An existing path that is not a regular file or a directory (after following symlinks):
/// `/dev/stdout`, `/dev/null`, a FIFO.
fn is_special(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Check that an output can be created: its directory exists (bad input otherwise, exit 2).
pub fn check_output_dir(path: &Path) -> Result<(), CliError> {
    if is_special(path) {
        return Ok(());
    }
    let dir = dir_of(path);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(CliError::file(path, format!("{} is not a directory", dir.display()))),
        Err(_) => {
            return Err(CliError::file(path, format!("the directory {} does not exist", dir.display())))
        }
    }
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(CliError::file(path, "is a directory, not a file"));
    }
    Ok(())
}

/// Where a path points, for comparing two outputs: its directory resolved, plus its name.
fn identity(path: &Path) -> PathBuf {
    let dir = fs::canonicalize(dir_of(path)).unwrap_or_else(|_| dir_of(path).to_path_buf());
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Check every output of a command before it starts: each directory exists and no two outputs
/// share a path (`flag` names each, e.g. `--report`). Unset outputs are skipped.
pub fn check_outputs(outputs: &[(&str, Option<&Path>)]) -> Result<(), CliError> {
    let given: Vec<(&str, &Path)> = outputs.iter().filter_map(|&(f, p)| p.map(|p| (f, p))).collect();
    for (_, p) in &given {
        check_output_dir(p)?;
    }
    for (i, (fa, a)) in given.iter().enumerate() {
        for (fb, b) in &given[i + 1..] {
            if !is_special(a) && identity(a) == identity(b) {
                return Err(CliError::input(
                    *fb,
                    format!("{} is also the {fa} output: give each output its own file", b.display()),
                ));
            }
        }
    }
    Ok(())
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Outputs::default()
    }

    /// Write `path`'s bytes into a temporary file beside it (or keep them, for a special file).
    pub fn stage(
        &mut self,
        path: &Path,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), CliError> {
        let fail = |what: &str, e: &std::io::Error| {
            CliError::file(path, format!("cannot {what}: {}", describe_io(e)))
        };
        if is_special(path) {
            let mut bytes = Vec::new();
            fill(&mut bytes).map_err(|e| fail("write the output", &e))?;
            self.staged.push(Staged::Special { path: path.to_path_buf(), bytes });
            return Ok(());
        }
        check_output_dir(path)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".protobrain-")
            .suffix(".tmp")
            // like any new file: the kernel applies the umask (0644 under 022)
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(dir_of(path))
            .map_err(|e| fail("create the output file", &e))?;
        {
            let mut out = BufWriter::new(tmp.as_file_mut());
            fill(&mut out).map_err(|e| fail("write the output file", &e))?;
            out.flush().map_err(|e| fail("write the output file", &e))?;
        }
        self.staged.push(Staged::File { path: path.to_path_buf(), tmp });
        Ok(())
    }

    /// Put every staged output in place.
    pub fn commit(self) -> Result<(), CliError> {
        for s in self.staged {
            match s {
                Staged::File { path, tmp } => {
                    tmp.persist(&path).map_err(|e| {
                        CliError::file(
                            &path,
                            format!("cannot move the finished output into place: {}", describe_io(&e.error)),
                        )
                    })?;
                }
                Staged::Special { path, bytes } => {
                    let mut f = OpenOptions::new().write(true).open(&path).map_err(|e| {
                        CliError::file(&path, format!("cannot open for writing: {}", describe_io(&e)))
                    })?;
                    f.write_all(&bytes)
                        .and_then(|_| f.flush())
                        .map_err(|e| CliError::file(&path, format!("cannot write: {}", describe_io(&e))))?;
                }
            }
        }
        Ok(())
    }
}

/// Create `path` with the bytes `fill` writes, atomically (temp file + rename).
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let mut out = Outputs::new();
    out.stage(path, fill)?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directories_and_shared_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let y = dir.path().join("Y.npy");
        let r = dir.path().join("r.json");
        check_outputs(&[("-o", Some(&y)), ("--report", Some(&r)), ("--bin", None)]).unwrap();
        let e = check_outputs(&[("-o", Some(&y)), ("--report", Some(&y))]).unwrap_err();
        assert!(e.to_string().contains("is also the -o output"), "{e}");
        assert_eq!(e.subject, "--report");
        // the same file through another spelling of its directory
        let other = dir.path().join(".").join("Y.npy");
        assert!(check_outputs(&[("-o", Some(&y)), ("--report", Some(&other))]).is_err());
        let missing = dir.path().join("nodir/Y.npy");
        let e = check_outputs(&[("-o", Some(&missing))]).unwrap_err();
        assert!(e.to_string().ends_with("nodir does not exist"), "{e}");
        assert_eq!(e.exit_code, crate::error::EXIT_BAD_INPUT);
        // /dev/null is a special file: never a conflict, never replaced
        let null = Path::new("/dev/null");
        check_outputs(&[("-o", Some(null)), ("--report", Some(null))]).unwrap();
    }

    #[test]
    fn uncommitted_outputs_leave_nothing_and_committed_ones_honour_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let mut out = Outputs::new();
        out.stage(&a, |w| w.write_all(b"x")).unwrap();
        drop(out);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut out = Outputs::new();
        out.stage(&a, |w| w.write_all(b"x")).unwrap();
        out.stage(Path::new("/dev/null"), |w| w.write_all(b"y")).unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"x");
        // the mode is 0666 minus this process's umask, whatever it is (0644 under 022): never
        // tempfile's 0600 unless the umask says so; the CLI test checks 0644 under umask 022
        let mode = fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600);
        assert_eq!(mode & 0o111, 0);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // /dev/null is still a character device
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
    }
}
