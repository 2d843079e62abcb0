//! The one runner of external tools (Yosys, nextpnr, Icarus, the SMT solvers): output to a log
//! file (no pipe can fill up and block the tool), stdin closed, killed after a timeout.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a tool run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// It exited (successfully or not).
    Exited(ExitStatus),
    /// It ran past the timeout and was killed.
    TimedOut,
}

/// Run `cmd` with stdout and stderr in `log` (created), waiting at most `timeout`. Spawning
/// errors come back as they are (`ErrorKind::NotFound`: the tool is not installed), so that each
/// caller can name the package to install.
pub fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> std::io::Result<Finished> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err)).spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Finished::Exited(status));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Finished::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_log_timeout_and_missing_tool() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let r = run_logged(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            &log,
            Duration::from_secs(30),
        );
        let Ok(Finished::Exited(status)) = r else { panic!("{r:?}") };
        assert_eq!(status.code(), Some(3));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\n");
        let r = run_logged(Command::new("sleep").arg("10"), &log, Duration::from_millis(100)).unwrap();
        assert_eq!(r, Finished::TimedOut);
        let e = run_logged(&mut Command::new("no-such-tool-protobrain"), &log, Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
