//! # protobrain estimate
//!
//! Throughput and power estimation from the cycle-exact native model: "how fast, how much
//! power, which array size?" for a GEMM, an MLP, a model or a SCALE-Sim topology file, before
//! anything is built. Depends on `sim`'s native model and the driver's compiler only: it builds
//! without Verilator or a C++ compiler. The technology tables are `estimate/tech/*.toml`.
//!
//! ```text
//!  Workload (X, layers) ─► driver::stream_mlp ─► steps, pass by pass ─► words (golden run records
//!       │                                                      │   them whole on a write-back)
//!       │                     ┌────────────────────────────────┼──────────────────────────┐
//!       │                     ▼                                ▼                          ▼
//!       │         full program, host link        compute only: X and one       weight stream: X
//!       │         (throughput::run, stalls)      tile preloaded, then the      preloaded, then every
//!       │                     │                  MATMULs back to back          LOAD_WEIGHTS + MATMUL
//!       │                     │                            │                          │
//!       │      cycles, breakdown, activity       compute_cycles (array span)   weight_stream_cycles
//!       │                     └──────────────┬─────────────┴──────────────────────────┘
//!       │                                    ▼
//!       └─ useful MACs ─────────────► Estimate: utilisation, roofline bounds, time and ops/s at a
//!                                     clock, energy by component (power::energy), W, TOPS/W
//! ```
//!
//! Every cycle count comes from running the stream on [`sim::native::NativeSim`] (bit- and
//! cycle-exact with the RTL); the formulas ([`scalesim_cycles`], [`pipelined_cycles`], the
//! physical limit, the link bound) are reported beside the measurements, never instead of them.
//! The program is never held whole: each run makes its stream in passes over the compiler
//! ([`driver::ProgramStream`]) and feeds its model piece by piece ([`throughput::Meter`]). The
//! whole-program run and the two derived runs (which share their passes, and skip the array's
//! sums: [`sim::native::NativeSim::skip_sums`]) run in parallel (rayon).
//!
//! * [`throughput`]: the cycle-by-cycle run with a host link, and where the cycles went;
//! * [`power`]: technology tables and the energy model;
//! * [`sweep`]: many estimates over DIM and M, in parallel; [`plots`]: their SVG plots.

pub mod plots;
pub mod power;
pub mod shard;
pub mod sweep;
pub mod throughput;
pub mod topology;

#[cfg(test)]
mod tests;

use std::fmt;

use driver::{
    compile_mlp_resident, stream_mlp_buffered, Buffering, CompileError, Device, DriverError, GoldenTransport,
    Layer, Network, OutputKind, Program, ProgramError, ProgramStream, Recorder, Step,
};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use spec::isa::{opcode, Command};
use spec::{Config, Quant};
use thiserror::Error;

pub use power::{AreaBreakdown, EnergyBreakdown, TechError, TechTable};
use sim::activity::Activity;
use sim::native::NativeSim;
use sim::CycleSim;
pub use throughput::{
    link_bound_cycles, pipelined_cycles, scalesim_cycles, CommandCycles, CycleBreakdown, Link, Timing,
};

/// Why an estimate could not be made.
#[derive(Debug, Error)]
pub enum EstimateError {
    /// The workload does not compile for the configuration.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The compiled program cannot be exported.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// The golden run that records a write-back program's stream failed.
    #[error("recording the program's stream on the golden device: {0}")]
    Golden(#[from] DriverError),
    /// A bad link bandwidth.
    #[error("{0}")]
    Link(String),
    /// A bad workload (empty shapes, mismatched layers).
    #[error("{0}")]
    Workload(String),
    /// A malformed word stream.
    #[error("{0}")]
    Stream(String),
    /// A bad clock.
    #[error("the clock must be a positive, finite frequency, got {0} Hz")]
    Clock(f64),
    /// The model stopped taking input and answering (a bug, never a slow link).
    #[error(
        "the native model went silent after {cycles} cycles: {taken} of {total} words taken, \
         {responses} response words"
    )]
    Stuck {
        /// Cycles simulated.
        cycles: u64,
        /// Input words taken (beats at LANES > 1).
        taken: usize,
        /// Input words in the stream (beats at LANES > 1).
        total: usize,
        /// Response words received.
        responses: usize,
    },
}

/// The input matrix X of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Uniformly random int8 from a seed (1 in 256 is zero).
    Random {
        /// Seed of the generator.
        seed: u64,
    },
    /// All zeros: the least switching the array can see.
    Zeros,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Random { seed } => write!(f, "random int8 (seed {seed})"),
            Input::Zeros => f.write_str("all-zero"),
        }
    }
}

/// Uniform int8 from `spec`'s generator.
fn uniform_i8(rng: &mut spec::stimulus::Rng) -> i8 {
    (rng.next_u64() >> 56) as u8 as i8
}

/// What to estimate: X, the layers, and what is read back.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Shown in reports, e.g. `GEMM 1024x256x256`.
    pub name: String,
    /// The input, M x K.
    pub x: DMatrix<i8>,
    /// The layers (one for a GEMM).
    pub layers: Vec<Layer>,
    /// What the last layer returns.
    pub output: OutputKind,
    /// How X was made.
    pub input: Input,
    /// A convolutional network: X holds its images and `layers` its GEMM layers; it runs as
    /// device stages with host layers between them (`driver::Network::run`).
    pub network: Option<Network>,
}

impl Workload {
    /// One int8 layer `relu(X W + b)` of `m x k` times `k x n`, uniformly random weights and
    /// biases (seeded), X as `input` says, requantised to keep the outputs in range.
    pub fn gemm(m: usize, k: usize, n: usize, input: Input) -> Result<Self, EstimateError> {
        if m == 0 || k == 0 || n == 0 {
            return Err(EstimateError::Workload(format!("a GEMM needs M, K, N >= 1, got {m}x{k}x{n}")));
        }
        let mut rng = spec::stimulus::Rng::new(0x5eed_0000 ^ (k as u64) << 20 ^ n as u64);
        let w = DMatrix::from_fn(k, n, |_, _| uniform_i8(&mut rng));
        let b = DVector::from_fn(n, |_, _| (rng.next_u64() % 2048) as i32 - 1024);
        // |x·w| has a standard deviation of about 74² √K: bring it to about 32
        let quant = Quant::from_scale(32.0 / (5476.0 * (k as f64).sqrt()))
            .expect("the scale is positive and small")
            .with_relu(true);
        let layer = Layer::new(w, b, quant)?;
        Ok(Workload {
            name: format!("GEMM {m}x{k}x{n}"),
            x: Self::make_x(m, k, input),
            layers: vec![layer],
            output: OutputKind::Int8,
            input,
            network: None,
        })
    }

    /// A network (any layers: conv2d, pools, dense) on `images` images made as `input` says.
    pub fn network(
        name: impl Into<String>,
        net: Network,
        images: usize,
        input: Input,
    ) -> Result<Self, EstimateError> {
        if images == 0 {
            return Err(EstimateError::Workload("the batch must have at least one image (M >= 1)".into()));
        }
        if let Some(mlp) = net.to_mlp() {
            return Self::mlp(name, mlp.to_driver_layers(), mlp.output(), images, input);
        }
        let x = Self::make_x(images, net.input().len(), input);
        let layers = net.ops().iter().filter_map(|o| o.gemm().map(|l| l.layer().clone())).collect();
        Ok(Workload { name: name.into(), x, layers, output: net.output(), input, network: Some(net) })
    }

    /// An MLP of the given layers on `m` input rows made as `input` says.
    pub fn mlp(
        name: impl Into<String>,
        layers: Vec<Layer>,
        output: OutputKind,
        m: usize,
        input: Input,
    ) -> Result<Self, EstimateError> {
        let first = layers
            .first()
            .ok_or_else(|| EstimateError::Workload("an MLP needs at least one layer".into()))?;
        if m == 0 {
            return Err(EstimateError::Workload("the batch must have at least one row (M >= 1)".into()));
        }
        let x = Self::make_x(m, first.k(), input);
        Ok(Workload { name: name.into(), x, layers, output, input, network: None })
    }

    fn make_x(m: usize, k: usize, input: Input) -> DMatrix<i8> {
        match input {
            Input::Random { seed } => {
                let mut rng = spec::stimulus::Rng::new(seed);
                DMatrix::from_fn(m, k, |_, _| uniform_i8(&mut rng))
            }
            Input::Zeros => DMatrix::zeros(m, k),
        }
    }

    /// Rows of X (inferences).
    pub fn m(&self) -> usize {
        self.x.nrows()
    }

    /// (K, N) of every layer.
    pub fn shapes(&self) -> Vec<(usize, usize)> {
        self.layers.iter().map(|l| (l.k(), l.n())).collect()
    }

    /// (M, K, N) of every GEMM the device runs (a conv2d's M is images·OH·OW).
    pub fn gemms(&self) -> Vec<(usize, usize, usize)> {
        match &self.network {
            Some(net) => net.gemms(self.m()),
            None => self.shapes().iter().map(|&(k, n)| (self.m(), k, n)).collect(),
        }
    }

    /// Useful multiply-accumulates: `Σ M·K·N` over the GEMMs.
    pub fn macs(&self) -> u64 {
        self.gemms().iter().map(|&(m, k, n)| m as u64 * k as u64 * n as u64).sum()
    }

    /// The plan (how the GEMMs are tiled) and the word stream, to run as it is made: a
    /// compiled program without write-backs as a [`ProgramStream`], else the stream recorded
    /// whole on the golden device (write-backs, networks).
    fn source(&self, cfg: &Config, buffering: Buffering) -> Result<(String, Source<'_>), EstimateError> {
        let Some(net) = &self.network else {
            let stream = stream_mlp_buffered(cfg, &self.x, &self.layers, self.output, buffering)?;
            let plan = stream.plan().to_string();
            if stream.plan().segments.len() == 1 {
                return Ok((plan, Source::Stream(stream)));
            }
            // the second segment's X is the first one's output, written back at run time
            let (words, responses) = program_stream(&stream.to_program())?;
            return Ok((plan, Source::Words(words, responses)));
        };
        // the stages run on the golden device once, their words recorded: the host layers
        // between them cost no device cycles
        let mut dev = Device::open(Recorder::new(GoldenTransport::new(*cfg)), cfg)?;
        dev.transport_mut().sent.clear();
        dev.transport_mut().received.clear();
        net.run(&mut dev, &self.x)?;
        let rec = dev.into_transport();
        let mut plan = String::new();
        for stage in net.stages() {
            let ops: Vec<String> = net.ops()[stage.clone()].iter().map(ToString::to_string).collect();
            plan.push_str(&format!(
                "device stage, layers {}..{}: {}\n",
                stage.start,
                stage.end,
                ops.join(", ")
            ));
        }
        Ok((plan, Source::Words(rec.sent, rec.received.len())))
    }

    /// With resident weights (docs/driver.md "Resident weights"): the upload that stores the
    /// weight tiles in the top half of the scratchpad (WRITE_ACTs, then a SYNC), and the
    /// inference stream that loads them with LOAD_TILE, each with its response count; as
    /// `infer --resident` runs them.
    fn resident_streams(&self, cfg: &Config) -> Result<ResidentStreams, EstimateError> {
        let budget = cfg.scratch_rows() / 2;
        // the upload recorded on the golden device as the driver sends it; the run too for a
        // network (as `source` does), the MLP's compiled like a streamed one
        let mut dev = Device::open(Recorder::new(GoldenTransport::new(*cfg)), cfg)?;
        dev.transport_mut().sent.clear();
        dev.transport_mut().received.clear();
        let residency = match &self.network {
            Some(net) => net.upload(&mut dev, budget)?,
            None => dev.upload_resident(&self.layers.iter().collect::<Vec<_>>(), budget)?,
        };
        let upload = std::mem::take(&mut dev.transport_mut().sent);
        let upload_responses = std::mem::take(&mut dev.transport_mut().received).len();
        let (words, responses) = match &self.network {
            Some(net) => {
                net.run_resident(&mut dev, &self.x, &residency)?;
                let rec = dev.into_transport();
                (rec.sent, rec.received.len())
            }
            None => program_stream(&compile_mlp_resident(
                cfg,
                &self.x,
                &self.layers,
                self.output,
                &residency,
                0,
            )?)?,
        };
        let (stored, total) = residency.stored();
        let plan = format!(
            "weights resident: {stored} of {total} tile(s) stored once in scratchpad rows {}..{} \
             (LOAD_TILE); activations below row {}",
            residency.base(),
            cfg.scratch_rows(),
            residency.base()
        );
        Ok(ResidentStreams { plan, tiles: (stored, total), upload, upload_responses, words, responses })
    }

    /// The plan and the whole word stream with its response count.
    #[cfg(test)]
    fn program(
        &self,
        cfg: &Config,
        buffering: Buffering,
    ) -> Result<(String, Vec<u32>, usize), EstimateError> {
        let (plan, source) = self.source(cfg, buffering)?;
        let mut words = Vec::new();
        let responses = source.for_each_command(&mut |_, w| words.extend_from_slice(w))?;
        Ok((plan, words, responses))
    }
}

/// [`Workload::resident_streams`]: the upload and the inference stream.
struct ResidentStreams {
    plan: String,
    /// (tiles stored, tiles of the model).
    tiles: (usize, usize),
    upload: Vec<u32>,
    upload_responses: usize,
    words: Vec<u32>,
    responses: usize,
}

/// A workload's word stream (see [`Workload::source`]).
enum Source<'a> {
    /// Made by the compiler, step by step, on every pass.
    Stream(ProgramStream<'a>),
    /// Recorded whole, with its response count.
    Words(Vec<u32>, usize),
}

impl Source<'_> {
    /// Hand every command of the stream to `f` in order (its opcode, its header and payload
    /// words); the number of response words the stream produces.
    fn for_each_command(&self, f: &mut dyn FnMut(u8, &[u32])) -> Result<usize, EstimateError> {
        self.for_each_command_where(&|_| true, f)
    }

    /// [`Source::for_each_command`] for the commands whose opcode `want` accepts (asked in
    /// stream order, just before each would be encoded): the others are not even encoded. A
    /// step refused by the encoder is an error only if wanted.
    fn for_each_command_where(
        &self,
        want: &dyn Fn(u8) -> bool,
        f: &mut dyn FnMut(u8, &[u32]),
    ) -> Result<usize, EstimateError> {
        let stream = match self {
            Source::Words(words, responses) => {
                command_slices(words).filter(|&(op, _)| want(op)).for_each(|(op, w)| f(op, w));
                return Ok(*responses);
            }
            Source::Stream(stream) => stream,
        };
        let cfg = stream.config();
        let (mut buf, mut responses, mut index, mut failed) = (Vec::new(), 0u64, 0usize, None);
        stream.for_each_step(|step| {
            if failed.is_some() {
                return;
            }
            responses += step.response_words(&cfg);
            if !want(step.opcode()) {
                index += 1;
                return;
            }
            buf.clear();
            let encoded = match &step {
                Step::Command(cmd) => Some(cmd.encode_into(cfg.dim(), &mut buf)),
                other => other.command().map(|cmd| cmd.encode_into(cfg.dim(), &mut buf)),
            };
            match encoded {
                Some(Ok(())) => f(step.opcode(), &buf),
                Some(Err(e)) => failed = Some(ProgramError::BadStep { step: index, what: e.to_string() }),
                None => failed = Some(ProgramError::DependsOnResults { step: index }),
            }
            index += 1;
        });
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(responses as usize),
        }
    }
}

/// The commands of a recorded stream in order: each one's opcode and its header and payload
/// words (a payload cut short by the end of `words` as it is).
fn command_slices(words: &[u32]) -> impl Iterator<Item = (u8, &[u32])> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let &head = words.get(i)?;
        let (op, len) = spec::isa::split_header(head);
        let end = (i + 1 + len as usize).min(words.len());
        let cmd = &words[i..end];
        i = end;
        Some((op, cmd))
    })
}

/// Words a run is fed at a time when its stream is made as it runs.
const FEED_WORDS: usize = 1 << 14;

/// Feeds a [`throughput::Meter`] in pieces of about [`FEED_WORDS`], keeping the first error.
struct Feeder<'m, 's> {
    meter: &'m mut throughput::Meter<'s>,
    piece: Vec<u32>,
    failed: Option<EstimateError>,
}

impl<'m, 's> Feeder<'m, 's> {
    fn new(meter: &'m mut throughput::Meter<'s>) -> Self {
        Feeder { meter, piece: Vec::with_capacity(FEED_WORDS + 64), failed: None }
    }

    fn push(&mut self, words: &[u32]) {
        self.piece.extend_from_slice(words);
        if self.piece.len() >= FEED_WORDS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.failed.is_none() {
            if let Err(e) = self.meter.feed(&self.piece) {
                self.failed = Some(e);
            }
        }
        self.piece.clear();
    }

    /// Feed what is left; the first error, if any.
    fn done(mut self) -> Result<(), EstimateError> {
        self.flush();
        self.failed.map_or(Ok(()), Err)
    }
}

/// The whole program on a fresh model, with the host behind `link`. With `skip_sums` the model
/// skips the array's sums ([`NativeSim::skip_sums`]): for a program no MATMUL of which reads a
/// row an ACTIVATE wrote (one layer), the run's [`Timing`] is the same (tested).
///
/// With `upload` (a resident-weights upload and its response count), the upload runs first and
/// is measured on its own; the program then runs on the same model, from where it left off.
fn run_full(
    cfg: &Config,
    source: &Source,
    link: Option<&Link>,
    skip_sums: bool,
    upload: Option<(&[u32], usize)>,
) -> Result<(Timing, Option<Timing>), EstimateError> {
    let mut sim = NativeSim::new(cfg);
    sim.reset();
    let uploaded = match upload {
        Some((words, responses)) => Some(throughput::run_on(&mut sim, words, responses, link)?),
        None => None,
    };
    if skip_sums {
        sim.skip_sums();
    }
    if let Source::Words(words, responses) = source {
        return Ok((throughput::run_on(&mut sim, words, *responses, link)?, uploaded));
    }
    let mut meter = throughput::Meter::new(&mut sim, link, true);
    let mut feeder = Feeder::new(&mut meter);
    let responses = source.for_each_command(&mut |_, w| feeder.push(w))?;
    feeder.done()?;
    Ok((meter.finish(responses)?, uploaded))
}

/// How to estimate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Core clock, Hz.
    pub clock_hz: f64,
    /// The host link (`None`: a word each way every cycle, the stream ports' limit).
    pub link: Option<Link>,
    /// Energy per event.
    pub tech: TechTable,
    /// The compiler's double buffering of GEMMs and MLPs (not of model files with conv
    /// stages, which the network runner schedules).
    pub buffering: Buffering,
    /// Keep the weights on the device (resident weights): their upload is measured apart, and
    /// the program loads stored tiles with LOAD_TILE instead of streaming them.
    pub resident: bool,
}

impl Options {
    /// Defaults: `clock_hz`, no link limit, the 45 nm table, double buffering where it pays,
    /// weights streamed.
    pub fn at_clock(clock_hz: f64) -> Self {
        Options {
            clock_hz,
            link: None,
            tech: TechTable::horowitz_45nm(),
            buffering: Buffering::Auto,
            resident: false,
        }
    }
}

/// Which resource bounds a run: where most of its cycles went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The array issued rows on most cycles.
    Array,
    /// The core waited for the host link most.
    Link,
    /// The front end (moving X, weights and results over the 32-bit port, waiting for drains)
    /// kept the array idle most.
    FrontEnd,
}

/// The workload as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSummary {
    /// Its name.
    pub name: String,
    /// Rows of X.
    pub m: usize,
    /// (K, N) per layer.
    pub layers: Vec<(usize, usize)>,
    /// (M, K, N) per GEMM (a conv2d's M is images·OH·OW).
    pub gemms: Vec<(usize, usize, usize)>,
    /// How X was made.
    pub input: Input,
}

/// Everything an estimate reports (JSON: these names, snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The device.
    pub config: Config,
    /// What ran.
    pub workload: WorkloadSummary,
    /// How the driver cut it up (`driver::Plan`'s text).
    pub plan: String,
    /// Core clock, MHz.
    pub clock_mhz: f64,
    /// Host link bandwidth asked for, words per cycle each way (`None`: unlimited).
    pub link_words_per_cycle: Option<f64>,
    /// Host link bandwidth simulated (the fraction of the stall pattern).
    pub link_words_per_cycle_simulated: Option<f64>,
    /// Cycles of the whole program, first word to the final SYNC echo (measured).
    pub cycles: u64,
    /// Cycles of the program's MATMULs alone, back to back with X and a weight tile on chip:
    /// the cycles on which a row is in the array pipeline, first row read to last accumulator
    /// write (measured; the pipeline never drains between back-to-back MATMULs).
    pub compute_cycles: u64,
    /// Cycles of the program's LOAD_WEIGHTS and MATMULs in order, X on chip, from the first
    /// command to the echo of a closing SYNC: does double-buffered weight loading keep the
    /// array busy? (measured)
    pub weight_stream_cycles: u64,
    /// `⌈macs / DIM²⌉`: every PE busy every cycle.
    pub physical_limit_cycles: u64,
    /// [`pipelined_cycles`] of the MATMULs: the documented model of `compute_cycles`.
    pub pipelined_model_cycles: u64,
    /// SCALE-Sim's weight-stationary formula, summed over the layers (`T = M`).
    pub scalesim_cycles: u64,
    /// Cycles the link needs for the words moved ([`link_bound_cycles`]; with a link only).
    pub link_bound_cycles: Option<u64>,
    /// The roofline bound: `max(physical_limit_cycles, link_bound_cycles)`.
    pub roofline_cycles: u64,
    /// Useful MACs, `Σ M·K·N`.
    pub macs: u64,
    /// MACs the array issued, padding of partial tiles included.
    pub macs_issued: u64,
    /// `macs / (DIM² · cycles)`.
    pub utilization: f64,
    /// `macs / (DIM² · compute_cycles)`.
    pub compute_utilization: f64,
    /// `macs / (DIM² · weight_stream_cycles)`.
    pub weight_stream_utilization: f64,
    /// What bounds the whole program.
    pub bound: Bound,
    /// Cycles the core waited on the link (ready for input it did not get, or holding
    /// output), and the COUNTERS stall registers.
    pub stall_cycles: StallCycles,
    /// Words sent to the core.
    pub words_in: u64,
    /// Words the core sent back.
    pub words_out: u64,
    /// `cycles / clock`, seconds.
    pub time_s: f64,
    /// Inferences (rows of X) per second: `M / time_s` (with resident weights: once they are
    /// stored, the steady state).
    #[serde(default)]
    pub inferences_per_s: f64,
    /// With resident weights: `M / (time_s + upload time)`, the upload paid by this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferences_per_s_with_upload: Option<f64>,
    /// With resident weights: the upload that stores them, measured on its own (the program's
    /// cycles and words above exclude it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
    /// Useful operations per second (2 per MAC).
    pub ops_per_s: f64,
    /// `ops_per_s / 10¹²`.
    pub achieved_tops: f64,
    /// `2 · DIM² · clock / 10¹²`.
    pub peak_tops: f64,
    /// Where the cycles of the whole program went.
    pub cycle_breakdown: CycleBreakdown,
    /// The technology table's name.
    pub tech: String,
    /// Energy of the whole program, pJ.
    pub energy_pj: f64,
    /// `energy_pj / M`.
    pub energy_per_inference_pj: f64,
    /// Energy by component, pJ.
    pub energy_breakdown_pj: EnergyBreakdown,
    /// Average power over the program, W.
    pub power_w: f64,
    /// Average power while only the MATMULs run (the compute-only run), W.
    pub compute_power_w: f64,
    /// Useful TOPS per W over the whole program (= operations per pJ).
    pub tops_per_w: f64,
    /// Estimated area by component (for leakage; rough), mm².
    pub area_mm2: AreaBreakdown,
    /// Activity counts of the whole program.
    pub activity: Activity,
}

/// The upload of resident weights (WRITE_ACTs of the stored tiles, then a SYNC), measured on
/// the native model behind the same link as the program.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// Weight tiles stored (the rest stay streamed with LOAD_WEIGHTS).
    pub tiles_stored: usize,
    /// Weight tiles of the model.
    pub tiles_total: usize,
    /// Cycles, first word to the SYNC echo.
    pub cycles: u64,
    /// Words sent to the core.
    pub words_in: u64,
    /// Words the core sent back (the SYNC echo).
    pub words_out: u64,
    /// `cycles / clock`, seconds.
    pub time_s: f64,
}

/// Stall cycles of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StallCycles {
    /// Cycles the core waited for the host link (see [`CycleBreakdown::link_wait`]).
    pub link_wait: u64,
    /// COUNTERS `in_stall_cycles`: `in_ready` high, `in_valid` low.
    pub input: u64,
    /// COUNTERS `out_stall_cycles`: `out_valid` high, `out_ready` low.
    pub output: u64,
}

/// The word stream of a program and the number of response words it produces. A program
/// without write-backs is its own stream; one with write-backs is run on the golden device
/// once and its stream recorded (the host's turnaround costs no cycles in the estimate).
pub fn program_stream(program: &Program) -> Result<(Vec<u32>, usize), EstimateError> {
    if !program.steps.iter().any(|s| matches!(s, Step::WriteBack { .. })) {
        let words = program.words()?;
        return Ok((words, program.stats().words_from_device as usize));
    }
    let cfg = program.config;
    let mut dev = Device::open(Recorder::new(GoldenTransport::new(cfg)), &cfg)?;
    dev.transport_mut().sent.clear();
    dev.transport_mut().received.clear();
    dev.run(program)?;
    let rec = dev.into_transport();
    Ok((rec.sent, rec.received.len()))
}

/// The commands of a well-formed stream as word slices, with their opcodes.
#[cfg(test)]
fn commands(words: &[u32]) -> Vec<(u8, &[u32])> {
    command_slices(words).collect()
}

fn sync_words(dim: usize, token: u32) -> Vec<u32> {
    Command::Sync { token }.encode(dim).expect("SYNC always encodes")
}

/// The stream parts of the derived runs, whole: a preload (every WRITE_ACT of the program,
/// then its first weight tile, then a SYNC), the MATMULs alone, and the weight tiles
/// (LOAD_WEIGHTS or LOAD_TILE) and MATMULs in order (the tests' reference for
/// [`derived_runs`]).
#[cfg(test)]
struct Derived {
    preload: Vec<u32>,
    compute: Vec<u32>,
    weights: Vec<u32>,
    matmul_rows: Vec<u64>,
}

#[cfg(test)]
fn derive(dim: usize, words: &[u32]) -> Derived {
    let cmds = commands(words);
    let mut d =
        Derived { preload: Vec::new(), compute: Vec::new(), weights: Vec::new(), matmul_rows: Vec::new() };
    let is_tile = |op: u8| op == opcode::LOAD_WEIGHTS || op == opcode::LOAD_TILE;
    for &(op, w) in &cmds {
        match op {
            opcode::WRITE_ACT => d.preload.extend_from_slice(w),
            opcode::MATMUL => {
                d.compute.extend_from_slice(w);
                d.weights.extend_from_slice(w);
                d.matmul_rows.push(u64::from(w[1] >> 16));
            }
            op if is_tile(op) => d.weights.extend_from_slice(w),
            _ => {}
        }
    }
    if let Some(&(_, w)) = cmds.iter().find(|(op, _)| is_tile(*op)) {
        d.preload.extend_from_slice(w);
    }
    d.preload.extend(sync_words(dim, 1));
    d.compute.extend(sync_words(dim, 2));
    d.weights.extend(sync_words(dim, 3));
    d
}

/// A derived run (compute only, weight stream), no link.
#[derive(Debug, Clone, Copy)]
struct DerivedRun {
    /// Cycles with a row in the array pipeline during the measured part.
    busy: u64,
    /// Cycles from the preload's SYNC echo to the measured part's SYNC echo.
    duration: u64,
    /// Activity of the measured part alone.
    activity: Activity,
    /// The documented model of the MATMULs' compute cycles ([`pipelined_cycles`]).
    pipelined: throughput::Pipelined,
}

/// The two derived runs, each on a fresh model: the preload (compute: every WRITE_ACT of the
/// stream, then its first weight tile, then SYNC 1; weight stream: the first weight tile and
/// SYNC 1), then the measured part (compute: the MATMULs, then SYNC 2; weight stream: the
/// LOAD_WEIGHTS and MATMULs in order, then SYNC 3). Both are fed from the same two passes over
/// the stream (the WRITE_ACTs, then the rest). Each one's busy cycles, duration (from the
/// preload's SYNC echo to its own) and activity (between the two echoes). The models skip the
/// array's sums, which none of these depend on (tested).
///
/// Of the weight-stream run only the duration is read, and no cycle of the core depends on
/// the data: its model keeps time alone ([`NativeSim::timing_only`]) and is not given the
/// WRITE_ACTs, which would only fill rows its MATMULs read (tested equal to the whole preload,
/// [`tests`]' `weight_stream_run_needs_no_preloaded_activations`).
///
/// With `upload` (resident weights), its WRITE_ACTs (the stored tiles) open the compute run's
/// preload, the first weight tile may be a LOAD_TILE, and the weight stream has the LOAD_TILEs.
fn derived_runs(
    cfg: &Config,
    source: &Source,
    upload: Option<&[u32]>,
) -> Result<(DerivedRun, DerivedRun), EstimateError> {
    let dim = cfg.dim();
    let mut sims = [NativeSim::new(cfg), NativeSim::new(cfg)];
    for sim in &mut sims {
        sim.reset();
    }
    let [sim_c, sim_w] = &mut sims;
    // only cycles and activity are read, and every MATMUL's X is written by the host (no
    // ACTIVATE): the sums would change neither (NativeSim::skip_sums); of the weight stream
    // only cycles are read
    sim_c.skip_sums();
    sim_w.timing_only();
    let mut meter_c = throughput::Meter::new(sim_c, None, true).record();
    let mut meter_w = throughput::Meter::new(sim_w, None, true).record();
    let (mut compute, mut weights) = (Feeder::new(&mut meter_c), Feeder::new(&mut meter_w));
    if let Some(upload) = upload {
        for (_, w) in command_slices(upload).filter(|&(op, _)| op == opcode::WRITE_ACT) {
            compute.push(w);
        }
    }
    let mut tile: Option<Vec<u32>> = None;
    // (the first pass encodes only what it feeds; once the first tile is had, no more tiles)
    let have_tile = std::cell::Cell::new(false);
    let is_tile = |op: u8| op == opcode::LOAD_WEIGHTS || op == opcode::LOAD_TILE;
    let first_pass = |op: u8| op == opcode::WRITE_ACT || (is_tile(op) && !have_tile.get());
    source.for_each_command_where(&first_pass, &mut |op, w| match op {
        opcode::WRITE_ACT => compute.push(w),
        op if is_tile(op) && tile.is_none() => {
            tile = Some(w.to_vec());
            have_tile.set(true);
        }
        _ => {}
    })?;
    let preload_end: Vec<u32> = tile.unwrap_or_default().into_iter().chain(sync_words(dim, 1)).collect();
    compute.push(&preload_end);
    weights.push(&preload_end);
    let mut pipelined = throughput::Pipelined::default();
    let second_pass = |op: u8| op == opcode::MATMUL || is_tile(op);
    source.for_each_command_where(&second_pass, &mut |op, w| match op {
        opcode::MATMUL => {
            pipelined.add(u64::from(w[1] >> 16));
            compute.push(w);
            weights.push(w);
        }
        op if is_tile(op) => weights.push(w),
        _ => {}
    })?;
    compute.push(&sync_words(dim, 2));
    weights.push(&sync_words(dim, 3));
    compute.done()?;
    weights.done()?;
    let measured = |meter: &mut throughput::Meter| -> Result<DerivedRun, EstimateError> {
        meter.finish(4)?;
        let out = meter.outputs();
        let (Some(&(a, ref before)), Some(&(b, ref after))) = (out.get(1), out.get(3)) else {
            return Err(EstimateError::Stream(format!(
                "expected two SYNC echoes (4 words), got {} words",
                out.len()
            )));
        };
        let mut activity = activity_since(after, before);
        activity.cycles = b - a;
        Ok(DerivedRun { busy: activity.array_busy_cycles, duration: b - a, activity, pipelined })
    };
    Ok((measured(&mut meter_c)?, measured(&mut meter_w)?))
}

/// `now - before`, field by field.
fn activity_since(now: &Activity, before: &Activity) -> Activity {
    Activity {
        cycles: now.cycles - before.cycles,
        macs: now.macs - before.macs,
        zero_operand_macs: now.zero_operand_macs - before.zero_operand_macs,
        scratch_reads: now.scratch_reads - before.scratch_reads,
        scratch_writes: now.scratch_writes - before.scratch_writes,
        acc_reads: now.acc_reads - before.acc_reads,
        acc_writes: now.acc_writes - before.acc_writes,
        weight_row_writes: now.weight_row_writes - before.weight_row_writes,
        bank_swaps: now.bank_swaps - before.bank_swaps,
        bias_writes: now.bias_writes - before.bias_writes,
        act_rows: now.act_rows - before.act_rows,
        words_in: now.words_in - before.words_in,
        words_out: now.words_out - before.words_out,
        array_busy_cycles: now.array_busy_cycles - before.array_busy_cycles,
        act_busy_cycles: now.act_busy_cycles - before.act_busy_cycles,
    }
}

/// Estimate `workload` on `cfg` (see the module docs).
pub fn estimate(cfg: &Config, workload: &Workload, opts: &Options) -> Result<Estimate, EstimateError> {
    if !(opts.clock_hz.is_finite() && opts.clock_hz > 0.0) {
        return Err(EstimateError::Clock(opts.clock_hz));
    }
    let shapes = workload.shapes();
    let gemms = workload.gemms();
    let (plan, source, resident) = if opts.resident {
        let r = workload.resident_streams(cfg)?;
        let upload = (r.upload, r.upload_responses, r.tiles);
        (r.plan, Source::Words(r.words, r.responses), Some(upload))
    } else {
        let (plan, source) = workload.source(cfg, opts.buffering)?;
        (plan, source, None)
    };
    let upload_words = resident.as_ref().map(|(w, n, _)| (w.as_slice(), *n));
    let link = opts.link.as_ref();
    // one layer: every MATMUL reads X the host wrote, so the sums change no count (their values
    // are read back, not measured)
    let skip_sums = workload.network.is_none() && workload.layers.len() == 1;
    let (full, derived) = rayon::join(
        || run_full(cfg, &source, link, skip_sums, upload_words),
        || derived_runs(cfg, &source, upload_words.map(|(w, _)| w)),
    );
    let ((full, uploaded), (compute, stream)) = (full?, derived?);

    let up_counters = uploaded.as_ref().map(|u| u.counters).unwrap_or_default();
    let upload = match (&uploaded, &resident) {
        (Some(u), Some((_, _, (stored, total)))) => Some(Upload {
            tiles_stored: *stored,
            tiles_total: *total,
            cycles: u.cycles,
            words_in: u.activity.words_in,
            words_out: u.activity.words_out,
            time_s: u.cycles as f64 / opts.clock_hz,
        }),
        _ => None,
    };

    let dim = cfg.dim() as u64;
    let d2 = (dim * dim) as f64;
    let macs = workload.macs();
    let m = workload.m() as u64;
    let util = |cycles: u64| if cycles == 0 { 0.0 } else { macs as f64 / (d2 * cycles as f64) };
    let physical = macs.div_ceil(dim * dim);
    let link_bound = link.map(|l| link_bound_cycles(full.activity.words_in, full.activity.words_out, l));
    let time_s = full.cycles as f64 / opts.clock_hz;
    let ops = 2.0 * macs as f64;
    let energy = power::energy(cfg, &full.activity, opts.clock_hz, &opts.tech);
    let energy_pj = energy.total();
    let compute_energy = power::energy(cfg, &compute.activity, opts.clock_hz, &opts.tech).total();
    let compute_time = compute.activity.cycles as f64 / opts.clock_hz;
    let bd = &full.breakdown;
    let exposed: u64 = bd.commands.values().map(|c| c.exposed_cycles).sum();
    let bound = if bd.array_issue >= bd.link_wait && bd.array_issue >= exposed {
        Bound::Array
    } else if bd.link_wait >= exposed {
        Bound::Link
    } else {
        Bound::FrontEnd
    };
    Ok(Estimate {
        config: *cfg,
        workload: WorkloadSummary {
            name: workload.name.clone(),
            m: workload.m(),
            layers: shapes.clone(),
            gemms: gemms.clone(),
            input: workload.input,
        },
        plan,
        clock_mhz: opts.clock_hz / 1e6,
        link_words_per_cycle: link.map(Link::words_per_cycle),
        link_words_per_cycle_simulated: link.map(Link::simulated_words_per_cycle),
        cycles: full.cycles,
        compute_cycles: compute.busy,
        weight_stream_cycles: stream.duration,
        physical_limit_cycles: physical,
        pipelined_model_cycles: compute.pipelined.cycles(dim),
        scalesim_cycles: gemms
            .iter()
            .map(|&(gm, k, n)| scalesim_cycles(gm as u64, k as u64, n as u64, dim, dim))
            .sum(),
        link_bound_cycles: link_bound,
        roofline_cycles: physical.max(link_bound.unwrap_or(0)),
        macs,
        macs_issued: full.activity.macs,
        utilization: util(full.cycles),
        compute_utilization: util(compute.busy),
        weight_stream_utilization: util(stream.duration),
        bound,
        stall_cycles: StallCycles {
            link_wait: bd.link_wait,
            // the registers count from reset: the upload's share is not the program's
            input: u64::from(full.counters.in_stall_cycles.wrapping_sub(up_counters.in_stall_cycles)),
            output: u64::from(full.counters.out_stall_cycles.wrapping_sub(up_counters.out_stall_cycles)),
        },
        words_in: full.activity.words_in,
        words_out: full.activity.words_out,
        time_s,
        inferences_per_s: m as f64 / time_s,
        inferences_per_s_with_upload: upload.as_ref().map(|u| m as f64 / (time_s + u.time_s)),
        upload,
        ops_per_s: ops / time_s,
        achieved_tops: ops / time_s / 1e12,
        peak_tops: peak_tops(cfg, opts.clock_hz),
        cycle_breakdown: full.breakdown.clone(),
        tech: opts.tech.name.clone(),
        energy_pj,
        energy_per_inference_pj: energy_pj / m as f64,
        energy_breakdown_pj: energy,
        power_w: energy_pj * 1e-12 / time_s,
        compute_power_w: if compute_time > 0.0 { compute_energy * 1e-12 / compute_time } else { 0.0 },
        tops_per_w: ops / energy_pj,
        area_mm2: power::area(cfg, &opts.tech),
        activity: full.activity,
    })
}

/// `2 · DIM² · clock / 10¹²`: every PE does one MAC (2 operations) per cycle.
pub fn peak_tops(cfg: &Config, clock_hz: f64) -> f64 {
    let d = cfg.dim() as f64;
    2.0 * d * d * clock_hz / 1e12
}

/// A quantity with an SI prefix, e.g. `1.23 m` + unit.
pub fn si(value: f64, unit: &str) -> String {
    let prefixes = [
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
        (1e-12, "p"),
    ];
    if value == 0.0 || !value.is_finite() {
        return format!("{value} {unit}");
    }
    let (scale, p) = prefixes.iter().find(|(s, _)| value.abs() >= *s).copied().unwrap_or((1e-12, "p"));
    format!("{:.3} {p}{unit}", value / scale)
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

impl fmt::Display for Estimate {
    /// The readable report: throughput, where the cycles went, energy and power.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.workload;
        writeln!(f, "{} on {}, {} input, M = {}", w.name, self.config, w.input, w.m)?;
        let lanes = self.config.lanes().get();
        let link = match (self.link_words_per_cycle, self.link_words_per_cycle_simulated) {
            (Some(a), Some(s)) => format!("host link {a:.6} words/cycle (simulated {s:.6})"),
            _ if lanes > 1 => format!("host link unlimited (a beat of {lanes} words each way per cycle)"),
            _ => "host link unlimited (a word each way per cycle)".into(),
        };
        writeln!(f, "clock {} MHz, {link}, {}", self.clock_mhz, self.tech)?;
        for line in self.plan.lines() {
            writeln!(f, "  plan: {}", line.trim())?;
        }
        writeln!(f, "\nthroughput (measured on the native cycle model)")?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, cycles: u64, note: String| {
            writeln!(f, "  {name:<34} {cycles:>14}  {note}")
        };
        row(f, "cycles, whole program", self.cycles, format!("utilization {}", pct(self.utilization)))?;
        row(
            f,
            "compute cycles (MATMULs alone)",
            self.compute_cycles,
            format!("utilization {}", pct(self.compute_utilization)),
        )?;
        row(
            f,
            "weight-stream cycles (+weight loads)",
            self.weight_stream_cycles,
            format!("utilization {}", pct(self.weight_stream_utilization)),
        )?;
        row(f, "physical limit ⌈MACs / DIM²⌉", self.physical_limit_cycles, "100 %".into())?;
        row(
            f,
            "pipelined model of compute",
            self.pipelined_model_cycles,
            "Σ max(n+1, 4) over all but the last + n_last + 2·DIM".into(),
        )?;
        row(f, "SCALE-Sim formula", self.scalesim_cycles, "(2R + C + M - 2)·⌈K/R⌉·⌈N/C⌉".into())?;
        if let Some(l) = self.link_bound_cycles {
            row(f, "link bound (words / bandwidth)", l, format!("roofline bound {}", self.roofline_cycles))?;
        }
        writeln!(f, "  {:<34} {:>14}  issued {} (padding included)", "MACs", self.macs, self.macs_issued)?;
        // at LANES > 1 the streams are beats: LANES words each, padding included
        let words = if lanes > 1 { format!("words in ({lanes}-word beats)") } else { "words in".into() };
        writeln!(f, "  {:<34} {:>14}  out {}", words, self.words_in, self.words_out)?;
        if let Some(u) = &self.upload {
            row(
                f,
                "upload of resident weights (once)",
                u.cycles,
                format!(
                    "{} words in, {} tile(s) of {} stored, {}",
                    u.words_in,
                    u.tiles_stored,
                    u.tiles_total,
                    si(u.time_s, "s")
                ),
            )?;
        }
        let per = |x: u64| x as f64 / w.m as f64;
        writeln!(
            f,
            "  per inference: {:.1} cycles, {:.1} words in, {:.1} out; {:.1} inferences/s{}",
            per(self.cycles),
            per(self.words_in),
            per(self.words_out),
            self.inferences_per_s,
            match self.inferences_per_s_with_upload {
                Some(r) => format!(" with the weights stored ({r:.1}/s paying the upload with this batch)"),
                None => String::new(),
            }
        )?;
        writeln!(
            f,
            "  time {}, {} achieved of {} peak ({:.2} TOPS peak); bound by {}",
            si(self.time_s, "s"),
            si(self.ops_per_s, "OP/s"),
            si(self.peak_tops * 1e12, "OP/s"),
            self.peak_tops,
            match self.bound {
                Bound::Array => "the array",
                Bound::Link => "the host link",
                Bound::FrontEnd => "the front end (data movement over the 32-bit port, drains)",
            }
        )?;
        writeln!(f, "\nwhere the cycles go (whole program)")?;
        let share = |c: u64| pct(c as f64 / self.cycles.max(1) as f64);
        writeln!(
            f,
            "  {:<14} {:>14} {:>8}",
            "array issue",
            self.cycle_breakdown.array_issue,
            share(self.cycle_breakdown.array_issue)
        )?;
        writeln!(
            f,
            "  {:<14} {:>14} {:>8}",
            "link wait",
            self.cycle_breakdown.link_wait,
            share(self.cycle_breakdown.link_wait)
        )?;
        writeln!(
            f,
            "  {:<14} {:>14} {:>8} {:>8} {:>14}",
            "exposed by", "cycles", "share", "count", "front-end"
        )?;
        let mut cmds: Vec<_> = self.cycle_breakdown.commands.iter().collect();
        cmds.sort_by_key(|(_, c)| std::cmp::Reverse(c.exposed_cycles));
        for (name, c) in cmds {
            writeln!(
                f,
                "  {:<14} {:>14} {:>8} {:>8} {:>14}",
                name,
                c.exposed_cycles,
                share(c.exposed_cycles),
                c.count,
                c.front_end_cycles
            )?;
        }
        writeln!(f, "\nenergy and power ({})", self.tech)?;
        writeln!(
            f,
            "  total {}, {} per inference (row of X), average {}, {:.3} TOPS/W",
            si(self.energy_pj * 1e-12, "J"),
            si(self.energy_per_inference_pj * 1e-12, "J"),
            si(self.power_w, "W"),
            self.tops_per_w
        )?;
        writeln!(f, "  power with the MATMULs alone (array busy): {}", si(self.compute_power_w, "W"))?;
        for (name, e) in self.energy_breakdown_pj.parts() {
            writeln!(
                f,
                "  {:<14} {:>14} {:>8}",
                name,
                si(e * 1e-12, "J"),
                pct(e / self.energy_pj.max(f64::MIN_POSITIVE))
            )?;
        }
        writeln!(
            f,
            "  {:.3} pJ per useful MAC; area (rough, for leakage) {:.3} mm², {:.3} mm² of it the array",
            self.energy_pj / self.macs.max(1) as f64,
            self.area_mm2.total(),
            self.area_mm2.array
        )
    }
}
