//! Output files are written atomically: into a temporary file beside the target, renamed into
//! place only when complete, so a failure never leaves a partial or clobbered output.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{describe_io, CliError};

/// Create `path` with the bytes `fill` writes, atomically (temp file + rename).
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fail =
        |what: &str, e: &std::io::Error| CliError::file(path, format!("cannot {what}: {}", describe_io(e)));
    let mut tmp = tempfile::Builder::new()
        .prefix(".protobrain-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| fail("create the output file", &e))?;
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        fill(&mut out).map_err(|e| fail("write the output file", &e))?;
        out.flush().map_err(|e| fail("write the output file", &e))?;
    }
    tmp.persist(path).map_err(|e| fail("move the finished output into place", &e.error))?;
    Ok(())
}
