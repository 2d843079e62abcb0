//! `--backend golden|native|rtl|serial`: which device the driver talks to.
//!
//! ```text
//!   Device (driver) ──► Link ──► golden   spec::GoldenDevice (functional, untimed)
//!                            ──► native   sim::native::NativeSim (cycle-exact, fast)
//!                            ──► rtl      sim::VerilatedSim (the emitted Verilog, Verilator;
//!                                         builds with the default `verilator` feature only)
//!                            ──► serial   a board over a UART (--port, --baud)
//! ```
//!
//! Every backend runs the same compiled program through the same driver; the cycle backends
//! also report the cycles the hardware takes and the native one its activity counts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use driver::{GoldenTransport, SerialTransport, Transport, TransportError};
use serde::Serialize;
use sim::activity::Activity;
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::CycleSim;
use spec::Config;

use crate::error::CliError;

/// The RTL backend's simulator: the Verilator model of the emitted Verilog.
#[cfg(feature = "verilator")]
pub type RtlSim = sim::VerilatedSim;

/// A build without the `verilator` feature has no RTL simulator: a type with no values, so
/// every path to one goes through [`open_rtl`]'s error.
#[cfg(not(feature = "verilator"))]
#[derive(Debug)]
pub enum RtlSim {}

#[cfg(not(feature = "verilator"))]
impl CycleSim for RtlSim {
    fn config(&self) -> &Config {
        match *self {}
    }
    fn reset(&mut self) {
        match *self {}
    }
    fn cycle(&self) -> u64 {
        match *self {}
    }
    fn tick(&mut self, _: spec::stream::HostOut) -> spec::stream::DeviceOut {
        match *self {}
    }
}

/// The Verilator model of `cfg`, writing a VCD waveform to `trace` if given (built on first
/// use, then cached); in a build without the `verilator` feature, the one error that says so.
pub fn open_rtl(cfg: &Config, trace: Option<&Path>) -> Result<RtlSim, CliError> {
    #[cfg(feature = "verilator")]
    {
        match trace {
            Some(path) => sim::VerilatedSim::with_trace(cfg, path),
            None => sim::VerilatedSim::new(cfg),
        }
        .map_err(|e| CliError::internal("--backend rtl", e.to_string()))
    }
    #[cfg(not(feature = "verilator"))]
    {
        let _ = (cfg, trace);
        Err(CliError::input(
            "--backend rtl",
            "this protobrain was built without Verilator (cargo feature `verilator`, on by default), so it has \
             no RTL model; rebuild with default features, or use --backend native (cycle-exact with the RTL)",
        ))
    }
}

/// A model of the device (or the device itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The functional golden device (spec): bit-exact, untimed.
    Golden,
    /// The native cycle model (sim::native): bit- and cycle-exact with the RTL, fast.
    Native,
    /// The emitted Verilog under Verilator (sim::verilated).
    Rtl,
    /// A board running the bitstream, over a serial port (--port).
    Serial,
}

impl Backend {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Golden => "golden",
            Backend::Native => "native",
            Backend::Rtl => "rtl",
            Backend::Serial => "serial",
        }
    }
}

/// How to reach the device.
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// Which model of the device computes. rtl builds a Verilator model of the Config on first
    /// use (seconds to a minute) and caches it in $PROTOBRAIN_VERILATED_DIR, else
    /// target/protobrain-verilated of the build, else ~/.cache/protobrain/verilated; delete that
    /// directory to clear the cache.
    #[arg(long, value_enum, default_value_t = Backend::Golden)]
    pub backend: Backend,
    /// Serial port of the board (--backend serial), e.g. /dev/ttyUSB1.
    #[arg(long, value_name = "PATH")]
    pub port: Option<String>,
    /// Baud rate of the board's UART (--backend serial); the bitstreams run at 1 Mbaud 8N1.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(300..=12_000_000))]
    pub baud: u32,
    /// Write a VCD waveform of the run (--backend rtl).
    #[arg(long, value_name = "out.vcd")]
    pub trace: Option<PathBuf>,
}

/// A driver failure as a CLI error: a board that is not the Config of the flags is bad input
/// (exit 2), anything else an internal failure of the backend.
pub fn driver_error(backend: Backend, e: driver::DriverError) -> CliError {
    let subject = format!("--backend {}", backend.name());
    match e {
        e @ driver::DriverError::WrongDevice { .. } => CliError::input(subject, e.to_string()),
        e => CliError::internal(subject, e.to_string()),
    }
}

/// The largest DIM the RTL backend builds a Verilator model of: Verilator unrolls every PE, so
/// its build grows with DIM² (docs/performance.md).
pub const MAX_RTL_DIM: usize = 64;

/// The largest DIM `emit` writes: every DIM the configuration allows (the array is a generate
/// loop over one PE module, so the text grows with DIM; docs/verilog.md).
pub const MAX_EMIT_DIM: usize = spec::config::MAX_DIM;

/// Refuse a configuration the RTL backend cannot build in reasonable time and memory.
pub fn check_rtl(cfg: &Config) -> Result<(), CliError> {
    if cfg.dim() > MAX_RTL_DIM {
        return Err(CliError::input(
            "--dim",
            format!(
                "DIM {} is for estimation and `emit` only: the Verilator model grows with DIM^2 (every PE \
                 unrolled) and is not practical above {MAX_RTL_DIM} (--backend native and estimate take any DIM)",
                cfg.dim()
            ),
        ));
    }
    Ok(())
}

/// Refuse a configuration `emit` cannot write (none today: [`MAX_EMIT_DIM`] is the largest DIM a
/// configuration may have).
pub fn check_emit(cfg: &Config) -> Result<(), CliError> {
    if cfg.dim() > MAX_EMIT_DIM {
        return Err(CliError::input("--dim", format!("DIM {} is above {MAX_EMIT_DIM}", cfg.dim())));
    }
    Ok(())
}

/// An open connection to one device.
pub enum Link {
    Golden(Box<GoldenTransport>),
    Native(Box<SimTransport<NativeSim>>),
    Rtl(Box<SimTransport<RtlSim>>),
    Serial(SerialTransport<Box<dyn serialport::SerialPort>>),
}

impl Link {
    /// Open the backend the flags ask for, for a device of `cfg`.
    pub fn open(args: &LinkArgs, cfg: &Config) -> Result<Link, CliError> {
        if args.trace.is_some() && args.backend != Backend::Rtl {
            return Err(CliError::input("--trace", "waveforms come from the RTL: use it with --backend rtl"));
        }
        if args.port.is_some() && args.backend != Backend::Serial {
            return Err(CliError::input("--port", "a serial port is used only with --backend serial"));
        }
        Ok(match args.backend {
            Backend::Golden => Link::Golden(Box::new(GoldenTransport::new(*cfg))),
            Backend::Native => Link::Native(Box::new(SimTransport::new(NativeSim::new(cfg)))),
            Backend::Rtl => {
                check_rtl(cfg)?;
                Link::Rtl(Box::new(SimTransport::new(open_rtl(cfg, args.trace.as_deref())?)))
            }
            Backend::Serial => {
                let port = args
                    .port
                    .as_deref()
                    .ok_or_else(|| CliError::input("--port", "--backend serial needs --port PATH"))?;
                let t = SerialTransport::open(port, args.baud)
                    .map_err(|e| CliError::input("--port", e.to_string()))?;
                Link::Serial(t)
            }
        })
    }

    /// How long the driver waits for an answer: generous on a real link, irrelevant for the
    /// simulators (they bound silence in cycles).
    pub fn timeout(&self) -> Duration {
        match self {
            Link::Serial(_) => Duration::from_secs(5),
            _ => Duration::from_secs(1),
        }
    }

    /// Cycles the device has run since it was opened (cycle backends only).
    pub fn cycles(&self) -> Option<u64> {
        match self {
            Link::Native(t) => Some(t.sim().cycle()),
            Link::Rtl(t) => Some(t.sim().cycle()),
            _ => None,
        }
    }

    /// Activity counts (the native model only).
    pub fn activity(&self) -> Option<Activity> {
        match self {
            Link::Native(t) => Some(t.sim().activity()),
            _ => None,
        }
    }
}

impl Transport for Link {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        match self {
            Link::Golden(t) => t.send(words),
            Link::Native(t) => t.send(words),
            Link::Rtl(t) => t.send(words),
            Link::Serial(t) => t.send(words),
        }
    }

    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        match self {
            Link::Golden(t) => t.recv(n, timeout),
            Link::Native(t) => t.recv(n, timeout),
            Link::Rtl(t) => t.recv(n, timeout),
            Link::Serial(t) => t.recv(n, timeout),
        }
    }

    fn max_pending_words(&self) -> usize {
        match self {
            Link::Serial(t) => t.max_pending_words(),
            _ => usize::MAX,
        }
    }
}

/// The weight upload that came before the inferences of a `--resident` run (docs/design.md,
/// "Resident weights"); the run's own figures do not include it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Upload {
    /// Weight tiles stored on the device (the rest are streamed with every inference).
    pub tiles_stored: usize,
    /// Weight tiles of the model.
    pub tiles: usize,
    /// Words the upload sent and received.
    pub words_sent: u64,
    pub words_received: u64,
    /// Cycles the upload took (cycle backends).
    pub cycles: Option<u64>,
}

/// The machine-readable report of one run (`--report r.json`), snake_case.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The backend that ran.
    pub backend: Backend,
    /// The device configuration.
    pub config: Config,
    /// Inferences (rows of X; images for a convolutional network).
    pub m: usize,
    /// (K, N) of every GEMM layer.
    pub layers: Vec<(usize, usize)>,
    /// (M, K, N) of every GEMM the device ran (a conv2d's M is images·OH·OW).
    pub gemms: Vec<(usize, usize, usize)>,
    /// Cycles from the first word sent to the last word received (cycle backends).
    pub cycles: Option<u64>,
    /// Useful multiply-accumulates: M·K·N summed over the layers.
    pub macs: u64,
    /// MACs issued by the array, padding included (the COUNTERS `macs`; cycle backends).
    pub macs_issued: Option<u64>,
    /// Useful MACs / (DIM² · cycles).
    pub utilization: Option<f64>,
    /// Words sent to the device and received from it.
    pub words_sent: u64,
    pub words_received: u64,
    /// Activity counts of the native model (with a `--resident` upload, of the whole session).
    pub activity: Option<Activity>,
    /// The resident weights' upload before the run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
}

impl RunReport {
    /// The report of a finished run on `dev`: cycles and activity from the link, words moved
    /// from the driver, issued MACs from a COUNTERS command (sent after the cycle count is read);
    /// an `upload` before the run is subtracted from its words and cycles.
    pub fn collect(
        dev: &mut driver::Device<Link>,
        backend: Backend,
        m: usize,
        gemms: Vec<(usize, usize, usize)>,
        upload: Option<Upload>,
    ) -> Result<RunReport, driver::DriverError> {
        let config = *dev.config();
        let activity = dev.transport().activity();
        let mut stats = dev.stats();
        let mut cycles = dev.transport().cycles();
        if let Some(u) = upload {
            stats.words_sent -= u.words_sent;
            stats.words_received -= u.words_received;
            cycles = cycles.zip(u.cycles).map(|(c, u)| c - u);
        }
        let counters = dev.counters()?;
        let macs: u64 = gemms.iter().map(|&(rows, k, n)| rows as u64 * k as u64 * n as u64).sum();
        let layers = gemms.iter().map(|&(_, k, n)| (k, n)).collect();
        Ok(RunReport {
            backend,
            config,
            m,
            layers,
            gemms,
            cycles,
            macs,
            macs_issued: Some(counters.macs),
            utilization: cycles.map(|c| macs as f64 / (c.max(1) as f64 * config.macs_per_row() as f64)),
            words_sent: stats.words_sent,
            words_received: stats.words_received,
            activity,
            upload,
        })
    }

    /// Stage the report as pretty JSON among a command's outputs.
    pub fn stage(
        &self,
        outputs: &mut crate::output::Outputs,
        path: &std::path::Path,
    ) -> Result<(), CliError> {
        let json = serde_json::to_string_pretty(self).expect("a report always serialises");
        outputs.stage(path, |w| w.write_all(json.as_bytes()))
    }

    /// The lines for the terminal: the run; with a resident upload, the upload and the
    /// figures per inference (row of X) in steady state and with the upload shared by this
    /// batch.
    pub fn summary(&self) -> String {
        let run = self.run_summary();
        match &self.upload {
            Some(u) => {
                let m = self.m.max(1) as f64;
                let per = |cycles: Option<u64>, sent: u64, received: u64| {
                    let c = cycles.map(|c| format!("{:.1} cycles, ", c as f64 / m)).unwrap_or_default();
                    format!("{c}{:.1} words sent, {:.1} received", sent as f64 / m, received as f64 / m)
                };
                let both = self.cycles.zip(u.cycles).map(|(c, uc)| c + uc);
                format!(
                    "{run}\nweights resident: {} of {} tiles, stored first in {} words sent, {} received{} (not in the figures above)\n\
                     per inference ({} rows): {} in steady state; {} with the upload shared by this batch",
                    u.tiles_stored,
                    u.tiles,
                    u.words_sent,
                    u.words_received,
                    u.cycles.map(|c| format!(", {c} cycles")).unwrap_or_default(),
                    self.m,
                    per(self.cycles, self.words_sent, self.words_received),
                    per(both, self.words_sent + u.words_sent, self.words_received + u.words_received),
                )
            }
            None => run,
        }
    }

    fn run_summary(&self) -> String {
        match (self.cycles, self.utilization) {
            (Some(c), Some(u)) => format!(
                "{} cycles, {} MACs, utilization {:.1}%, {} words sent, {} received",
                c,
                self.macs,
                100.0 * u,
                self.words_sent,
                self.words_received
            ),
            _ => format!(
                "{} MACs, {} words sent, {} received",
                self.macs, self.words_sent, self.words_received
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_of_another_config_is_bad_input() {
        let flags = Config::new(8, 1024, 512).unwrap();
        let board = Config::new(4, 1024, 512).unwrap();
        let e = driver_error(
            Backend::Serial,
            driver::DriverError::WrongDevice { expected: flags, found: driver::Info::of(&board) },
        );
        assert_eq!(e.exit_code, crate::error::EXIT_BAD_INPUT);
        assert!(e.to_string().starts_with("--backend serial: the device is version"), "{e}");
        let e = driver_error(Backend::Native, driver::DriverError::OutOfSync);
        assert_eq!(e.exit_code, crate::error::EXIT_INTERNAL);
    }

    #[test]
    fn the_rtl_backend_builds_up_to_dim_64_and_emit_up_to_256() {
        assert!(check_rtl(&Config::new(64, 1024, 512).unwrap()).is_ok());
        assert_eq!(check_rtl(&Config::new(65, 1024, 512).unwrap()).unwrap_err().subject, "--dim");
        assert!(check_emit(&Config::preset("tpu-v1").unwrap()).is_ok());
        assert_eq!(MAX_EMIT_DIM, 256);
    }

    /// A build without the `verilator` feature refuses the RTL backend with one error that
    /// says why (run by `cargo test --no-default-features -p protobrain --bin protobrain`).
    #[cfg(not(feature = "verilator"))]
    #[test]
    fn without_verilator_the_rtl_backend_is_one_clear_error() {
        let e = open_rtl(&Config::default(), None).unwrap_err();
        assert_eq!(e.subject, "--backend rtl");
        assert!(e.problem.contains("built without Verilator"), "{}", e.problem);
        assert_eq!(e.exit_code, crate::error::EXIT_BAD_INPUT);
    }
}
