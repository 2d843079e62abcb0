//! The CLI's one error type: every failure is printed as a single line
//! `error: <subject>: <problem>` and ends the process with a fixed exit code.

use std::fmt;
use std::io;
use std::path::Path;

/// Exit code for bad input: a missing or malformed file, a shape mismatch, a bad flag value.
/// (clap uses the same code for its own usage errors.)
pub const EXIT_BAD_INPUT: u8 = 2;

/// Exit code for an internal failure, such as the demo's self-check disagreeing with itself.
pub const EXIT_INTERNAL: u8 = 1;

/// A failure the CLI reports on one line of stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What the problem is about: a file name as the user typed it, or a flag such as `--shift`.
    pub subject: String,
    /// What is wrong with it, lower case, no trailing period.
    pub problem: String,
    /// The process exit code: [`EXIT_BAD_INPUT`] or [`EXIT_INTERNAL`].
    pub exit_code: u8,
}

impl CliError {
    /// Bad input about a file (`path` is shown as given on the command line).
    pub fn file(path: &Path, problem: impl Into<String>) -> Self {
        CliError::input(path.display().to_string(), problem)
    }

    /// Bad input about anything else, e.g. a flag (`subject` = `"--shift"`).
    pub fn input(subject: impl Into<String>, problem: impl Into<String>) -> Self {
        CliError { subject: subject.into(), problem: problem.into(), exit_code: EXIT_BAD_INPUT }
    }

    /// A failure that is not the user's fault.
    pub fn internal(subject: impl Into<String>, problem: impl Into<String>) -> Self {
        CliError { subject: subject.into(), problem: problem.into(), exit_code: EXIT_INTERNAL }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, always: a stray newline in a nested error message would break that promise.
        let line = format!("{}: {}", self.subject, self.problem);
        f.write_str(&line.replace(['\n', '\r'], " "))
    }
}

impl std::error::Error for CliError {}

/// A short, stable description of an I/O error (no OS error numbers, no temp-file paths).
pub fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::IsADirectory => "is a directory, not a file".into(),
        io::ErrorKind::NotADirectory => "a component of the path is not a directory".into(),
        io::ErrorKind::StorageFull => "no space left on the device".into(),
        io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line() {
        let e = CliError::input("--scale", "bad\nvalue");
        assert_eq!(e.to_string(), "--scale: bad value");
        assert_eq!(e.exit_code, EXIT_BAD_INPUT);
        let e = CliError::file(Path::new("dir/X.npy"), "not a .npy file");
        assert_eq!(e.to_string(), "dir/X.npy: not a .npy file");
    }

    #[test]
    fn io_errors_are_described_without_os_codes() {
        let e = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(describe_io(&e), "no such file or directory");
    }
}
