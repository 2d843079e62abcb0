//! Lockstep tests: the native model against the RTL on random command streams with random
//! stalls on both streams, malformed commands and resets.
//!
//! ```text
//!               ┌──► NativeSim ──────────┐
//!  words,       ├──► backends() ... ─────┤  every DeviceOut equal on every cycle
//!  stalls ─► Host ──► RustHdlSim (RTL) ──┘  (in_ready, out_valid, out_data)
//!
//!  words, stalls ─► run_stream ─► Trace ══ hdl::stream::run_rust / run_icarus ─► Trace
//!                                   └─ words ══ spec::GoldenDevice (untimed COUNTERS words zeroed)
//! ```
//!
//! Two kinds of reference:
//! * [`RustHdlSim`]: rust-hdl's simulation of `hdl::core::ProtobrainCore` driven one tick at a
//!   time behind [`CycleSim`], so every port is compared on every cycle, resets included
//!   (slow: DIM 2-4, short streams);
//! * `hdl::stream::run_rust` and `hdl::stream::run_icarus` (the emitted Verilog under Icarus,
//!   DIM up to 8): whole [`Trace`]s (every output word with its cycle, the last input cycle,
//!   the cycle count).
//!
//! Backends under test are listed once in [`backends`]; adding one (the Verilator model) is one
//! line there.

use hdl::core::ProtobrainCore;
use hdl::stream::{run_icarus, run_rust};
use rust_hdl::prelude::{simulate, Block, Clock};
use spec::isa::Response;
use spec::stimulus::{random_stalls, random_stream, Rng, StreamShape};
use spec::stream::{DeviceOut, Host, HostOut, Stalls, Trace};
use spec::{Config, GoldenDevice, Quant};

use super::NativeSim;
use crate::CycleSim;

/// Every cycle-accurate backend under test, freshly built for `cfg`, with its name (the
/// Verilator model in builds with the `verilator` feature).
pub(crate) fn backends(cfg: &Config) -> Vec<(&'static str, Box<dyn CycleSim>)> {
    vec![
        ("native", Box::new(NativeSim::new(cfg))),
        ("native, per tick", Box::new(Ticked(NativeSim::new(cfg)))),
        #[cfg(feature = "verilator")]
        ("verilator", Box::new(crate::verilated::VerilatedSim::new(cfg).expect("Verilator model"))),
    ]
}

use crate::Ticked;

/// The rust-hdl simulation of the whole core, one tick at a time (the reference RTL model).
pub(crate) struct RustHdlSim {
    core: ProtobrainCore,
    cfg: Config,
    cycle: u64,
}

impl RustHdlSim {
    /// The core at power-on.
    pub fn new(cfg: &Config) -> Self {
        let mut core = ProtobrainCore::new(cfg);
        core.connect_all();
        RustHdlSim { core, cfg: *cfg, cycle: 0 }
    }

    fn settle(&mut self) {
        assert!(simulate(&mut self.core, 100), "rust-hdl simulation of the core did not settle");
    }

    fn edge(&mut self) {
        self.core.clk.next = Clock { clk: true };
        self.settle();
        self.core.clk.next = Clock { clk: false };
    }
}

impl CycleSim for RustHdlSim {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn reset(&mut self) {
        self.core.rst.next = true;
        self.core.in_valid.next = false;
        self.core.out_ready.next = false;
        self.settle();
        self.edge();
        self.core.rst.next = false;
        self.cycle = 0;
    }

    fn cycle(&self) -> u64 {
        self.cycle
    }

    fn tick(&mut self, inputs: HostOut) -> DeviceOut {
        self.core.in_valid.next = inputs.in_valid;
        self.core.in_data.next = u64::from(inputs.in_data).into();
        self.core.out_ready.next = inputs.out_ready;
        self.settle();
        let seen = DeviceOut {
            in_ready: self.core.in_ready.val(),
            out_valid: self.core.out_valid.val(),
            out_data: self.core.out_data.val().to_u64() as u32,
        };
        self.edge();
        self.cycle += 1;
        seen
    }
}

/// The response stream with the timed COUNTERS words zeroed (the untimed golden device
/// answers 0 there: `spec::isa::TIMED_COUNTER_WORDS`).
pub(crate) fn untimed(dim: usize, words: &[u32]) -> Vec<Response> {
    spec::isa::decode_untimed(dim, words)
        .unwrap_or_else(|e| panic!("undecodable response stream: {e}: {words:x?}"))
}

/// A random case: a stream of `commands` commands (20% malformed) and stall patterns of
/// random density on both streams, all from `seed`.
pub(crate) fn random_case(cfg: &Config, seed: u64, commands: usize, max_rows: u16) -> (Vec<u32>, Stalls) {
    let mut rng = Rng::new(seed);
    let words = random_stream(cfg, &mut rng, StreamShape { commands, max_rows, malformed: 0.2 });
    let p_in = [0.0, 0.3, 0.7][rng.below(3) as usize];
    let p_out = [0.0, 0.3, 0.7][rng.below(3) as usize];
    let (len_in, len_out) = (1 + rng.below(61) as usize, 1 + rng.below(53) as usize);
    let mut stalls = Stalls {
        input: random_stalls(&mut rng, len_in, p_in),
        output: random_stalls(&mut rng, len_out, p_out),
    };
    // at least one cycle of each period moves words, or the run cannot end
    stalls.input[len_in - 1] = false;
    stalls.output[len_out - 1] = false;
    (words, stalls)
}

/// How a lockstep phase runs: reset everything first or carry on from the last phase's state,
/// reset everything again on these host cycles, stop early after `cut` cycles.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Script<'a> {
    pub carry_on: bool,
    pub resets: &'a [u64],
    pub cut: Option<u64>,
}

/// Drive `reference` and every backend with the same host, tick by tick, asserting equal
/// ports on every cycle. A reset (of all of them) on a cycle of `script.resets` leaves the host
/// carrying on with its stream, so the device resumes mid-stream: any word may land as a
/// header. Returns the reference's trace (`None` if cut short).
pub(crate) fn lockstep_ticks(
    reference: &mut dyn CycleSim,
    sims: &mut [(&'static str, Box<dyn CycleSim>)],
    words: &[u32],
    stalls: &Stalls,
    script: Script,
    what: &str,
) -> Option<Trace> {
    let dim = reference.config().dim();
    let reset_all = |reference: &mut dyn CycleSim, sims: &mut [(&'static str, Box<dyn CycleSim>)]| {
        reference.reset();
        sims.iter_mut().for_each(|(_, s)| s.reset());
    };
    if !script.carry_on {
        reset_all(reference, sims);
    }
    let mut host = Host::new(words, stalls, dim, 200_000);
    loop {
        if script.cut == Some(host.cycle()) {
            return None;
        }
        if script.resets.contains(&host.cycle()) {
            reset_all(reference, sims);
        }
        let drive = host.drive();
        let want = reference.tick(drive);
        for (name, s) in sims.iter_mut() {
            let got = s.tick(drive);
            assert_eq!(got, want, "{name} vs RTL on host cycle {} ({what}), inputs {drive:?}", host.cycle());
            assert_eq!(s.cycle(), reference.cycle(), "{name}: cycle() ({what})");
        }
        if let Some(done) = host.observe(drive, want) {
            return Some(done.unwrap_or_else(|e| panic!("{what}: {e}")));
        }
    }
}

/// Every backend's `run_stream` trace equals `want`, and its words equal the golden device's.
pub(crate) fn check_traces(cfg: &Config, words: &[u32], stalls: &Stalls, want: &Trace, what: &str) {
    let golden = GoldenDevice::run(*cfg, words);
    assert_eq!(untimed(cfg.dim(), &want.words()), untimed(cfg.dim(), &golden), "RTL vs golden ({what})");
    for (name, mut s) in backends(cfg) {
        let got = s.run_stream(words, stalls, 10_000_000).unwrap_or_else(|e| panic!("{name} ({what}): {e}"));
        assert_eq!(&got, want, "{name} trace vs RTL ({what})");
    }
}

/// Per-cycle lockstep with the rust-hdl RTL on random streams (`commands` commands, row counts
/// up to `max_rows`), every port on every cycle, then every backend's trace and the golden
/// device's words; `resets` random mid-stream resets per case. Returns the cycles checked.
fn rust_hdl_ticks(
    cfg: Config,
    seeds: std::ops::Range<u64>,
    commands: usize,
    max_rows: u16,
    resets: usize,
) -> u64 {
    let mut cycles = 0;
    for seed in seeds {
        let (words, stalls) = random_case(&cfg, seed, commands, max_rows);
        let what = format!("{cfg}, seed {seed}, {commands} commands, {resets} resets");
        let mut rtl = RustHdlSim::new(&cfg);
        let mut sims = backends(&cfg);
        if resets == 0 {
            let trace = lockstep_ticks(&mut rtl, &mut sims, &words, &stalls, Script::default(), &what)
                .expect("not cut");
            check_traces(&cfg, &words, &stalls, &trace, &what);
            cycles += trace.cycles;
        } else {
            // resets somewhere in the run (its length without resets bounds where)
            let len = NativeSim::new(&cfg).run_stream(&words, &stalls, 1_000_000).expect("native run").cycles;
            let mut rng = Rng::new(seed ^ 0x5eed);
            let at: Vec<u64> = (0..resets).map(|_| rng.below(len)).collect();
            let script = Script { resets: &at, ..Script::default() };
            cycles +=
                lockstep_ticks(&mut rtl, &mut sims, &words, &stalls, script, &what).expect("not cut").cycles;
        }
    }
    cycles
}

#[test]
fn every_port_every_cycle_matches_rust_hdl_dim2() {
    let n = rust_hdl_ticks(Config::new(2, 16, 8).unwrap(), 0..60, 30, 3, 0);
    eprintln!("DIM 2: {n} cycles in lockstep");
}

#[test]
fn every_port_every_cycle_matches_rust_hdl_dim3() {
    let n = rust_hdl_ticks(Config::new(3, 8, 16).unwrap(), 100..140, 25, 4, 0);
    eprintln!("DIM 3: {n} cycles in lockstep");
}

#[test]
fn every_port_every_cycle_matches_rust_hdl_dim4() {
    let n = rust_hdl_ticks(Config::new(4, 16, 8).unwrap(), 200..240, 25, 5, 0);
    eprintln!("DIM 4: {n} cycles in lockstep");
}

#[test]
fn every_port_every_cycle_matches_rust_hdl_dim8() {
    let n = rust_hdl_ticks(Config::new(8, 32, 16).unwrap(), 300..306, 20, 6, 0);
    eprintln!("DIM 8: {n} cycles in lockstep");
}

/// DIM 1 (latency 1, one byte per row word) and DIM 5 (two words per row, three padding
/// bytes in the second).
#[test]
fn every_port_every_cycle_matches_rust_hdl_dim1_and_dim5() {
    let n = rust_hdl_ticks(Config::new(1, 8, 8).unwrap(), 800..820, 25, 4, 0)
        + rust_hdl_ticks(Config::new(5, 16, 8).unwrap(), 820..835, 25, 4, 0);
    eprintln!("DIM 1, 5: {n} cycles in lockstep");
}

/// Row words with junk in their padding bytes (ignored: "other bits of a payload word than
/// those named are ignored"), at DIM 5 and 6: WRITE_ACT and LOAD_WEIGHTS, then everything read
/// back.
#[test]
fn padding_bytes_of_row_words_are_ignored_like_the_rtl() {
    use spec::isa::Command::*;
    for dim in [5usize, 6] {
        let cfg = Config::new(dim, 8, 8).unwrap();
        let mut rng = Rng::new(dim as u64);
        let mut row = || (0..dim).map(|_| rng.i8()).collect::<Vec<i8>>();
        let rows: Vec<Vec<i8>> = (0..3).map(|_| row()).collect();
        let weights: Vec<i8> = (0..dim).flat_map(|_| row()).collect();
        let clean = program(
            &[
                WriteAct { dst: 1, rows },
                LoadWeights { weights },
                Matmul { src: 1, n: 3, dst: 2, accumulate: false },
                ReadAct { src: 0, n: 8 },
                ReadAcc { src: 2, n: 3 },
            ],
            dim,
        );
        // the second word of each row carries bytes 4..dim; set the bytes past dim
        let junk_mask = !0u32 << (8 * (dim - 4));
        let mut words = clean.clone();
        let row_words = |start: usize, n: usize| (0..n).map(move |r| start + 2 * r + 1);
        for i in row_words(2, 3).chain(row_words(2 + 6 + 1, dim)) {
            words[i] |= 0xA5A5_A5A5 & junk_mask;
        }
        assert_ne!(words, clean);
        let what = format!("padding junk, DIM {dim}");
        let stalls = Stalls::none();
        let trace = lockstep_ticks(
            &mut RustHdlSim::new(&cfg),
            &mut backends(&cfg),
            &words,
            &stalls,
            Script::default(),
            &what,
        )
        .expect("not cut");
        assert_eq!(trace.words(), GoldenDevice::run(cfg, &clean), "{what}");
    }
}

/// Long MATMULs back to back with weight loads (the shadow-bank interlock holds LOAD_WEIGHTS),
/// accumulation onto rows still in flight, ACTIVATE right after.
#[test]
fn gemm_heavy_streams_match_rust_hdl() {
    let n = rust_hdl_ticks(Config::new(2, 32, 16).unwrap(), 400..420, 12, 14, 0)
        + rust_hdl_ticks(Config::new(3, 32, 16).unwrap(), 420..430, 10, 14, 0);
    eprintln!("GEMM-heavy: {n} cycles in lockstep");
}

/// Resets at random cycles: rows in flight are lost, memories keep their contents, the host's
/// words carry on (so the next word taken is parsed as a header, whatever it is).
#[test]
fn resets_mid_stream_match_rust_hdl() {
    let n = rust_hdl_ticks(Config::new(2, 16, 8).unwrap(), 500..530, 25, 4, 2)
        + rust_hdl_ticks(Config::new(4, 16, 16).unwrap(), 530..545, 25, 6, 3);
    eprintln!("resets: {n} cycles in lockstep");
}

/// A reset on every cycle of a program that keeps every unit busy (weights loading behind a
/// MATMUL, accumulation, ACTIVATE, rows being written), then a probe program that reads back
/// everything the reset must clear (weights, quantisation, bias: MATMUL and ACTIVATE give 0)
/// or keep (both memories, including rows that landed on the reset cycle itself).
#[test]
fn a_reset_on_every_cycle_of_a_busy_program_matches_rust_hdl() {
    use spec::isa::Command::*;
    let cfg = Config::new(2, 16, 8).unwrap();
    let rows =
        |base: i8, n: usize| (0..n).map(|i| vec![base + i as i8, -base - 2 * i as i8]).collect::<Vec<_>>();
    let setup = program(&[WriteAct { dst: 0, rows: rows(3, 4) }, WriteAct { dst: 12, rows: rows(-9, 4) }], 2);
    let busy = program(
        &[
            LoadWeights { weights: vec![1, -2, 3, 4] },
            Matmul { src: 0, n: 4, dst: 0, accumulate: false },
            LoadWeights { weights: vec![-5, 6, 7, -8] },
            Matmul { src: 0, n: 4, dst: 0, accumulate: true },
            LoadBias { bias: vec![100, -100] },
            SetQuant(Quant::new(3, 1, false).unwrap()),
            Activate { src: 0, n: 4, dst: 4 },
            WriteAct { dst: 8, rows: rows(20, 2) },
            Matmul { src: 8, n: 2, dst: 4, accumulate: true },
        ],
        2,
    );
    let probe = program(
        &[
            Matmul { src: 12, n: 2, dst: 6, accumulate: false },
            Activate { src: 0, n: 1, dst: 14 },
            SetQuant(Quant::IDENTITY),
            Activate { src: 6, n: 1, dst: 15 },
            ReadAcc { src: 0, n: 8 },
            ReadAct { src: 0, n: 16 },
            Counters,
        ],
        2,
    );
    let stalls = Stalls::none();
    let busy_len = NativeSim::new(&cfg).run_stream(&busy, &stalls, 100_000).expect("busy program").cycles;
    for cut in 0..busy_len {
        let what = format!("reset on cycle {cut} of the busy program");
        let mut rtl = RustHdlSim::new(&cfg);
        let mut sims = backends(&cfg);
        lockstep_ticks(&mut rtl, &mut sims, &setup, &stalls, Script::default(), &what);
        let script = Script { carry_on: true, cut: Some(cut), ..Script::default() };
        lockstep_ticks(&mut rtl, &mut sims, &busy, &stalls, script, &what);
        let trace =
            lockstep_ticks(&mut rtl, &mut sims, &probe, &stalls, Script::default(), &what).expect("not cut");
        // after the reset MATMUL multiplies by cleared weights, ACTIVATE uses M = 0, then the
        // cleared bias
        let resp = untimed(2, &trace.words());
        let Response::ReadAcc { rows } = &resp[0] else { panic!("{what}: {resp:?}") };
        assert_eq!(rows[6..8], [vec![0, 0], vec![0, 0]], "{what}");
        let Response::ReadAct { rows } = &resp[1] else { panic!("{what}: {resp:?}") };
        assert_eq!(rows[14..16], [vec![0, 0], vec![0, 0]], "{what}");
        assert_eq!(rows[12..14], [vec![-9, 9], vec![-8, 7]], "{what}: memories survive the reset");
    }
}

fn program(cmds: &[spec::isa::Command], dim: usize) -> Vec<u32> {
    super::tests::program(cmds, dim)
}

/// The tick-level wrapper [`RustHdlSim`] is the RTL as `hdl::stream::run_rust` drives it.
#[test]
fn rust_hdl_wrapper_matches_hdl_run_rust() {
    let cfg = Config::new(3, 16, 8).unwrap();
    for seed in 600..604 {
        let (words, stalls) = random_case(&cfg, seed, 20, 3);
        let want = run_rust(&mut ProtobrainCore::new(&cfg), &words, &stalls, 200_000).expect("run_rust");
        let got = RustHdlSim::new(&cfg).run_stream(&words, &stalls, 200_000).expect("wrapper");
        assert_eq!(got, want, "seed {seed}");
    }
}

/// One long random stream per configuration through the emitted Verilog under Icarus.
fn icarus_case(cfg: Config, seed: u64, commands: usize, max_rows: u16) -> u64 {
    let verilog = hdl::emit::verilog(&cfg).expect("the core emits");
    let (words, stalls) = random_case(&cfg, seed, commands, max_rows);
    let what = format!("Icarus, {cfg}, seed {seed}");
    let trace =
        run_icarus(&verilog, cfg.dim(), &words, &stalls, 1_000_000).unwrap_or_else(|e| panic!("{what}: {e}"));
    check_traces(&cfg, &words, &stalls, &trace, &what);
    trace.cycles
}

#[test]
fn traces_match_icarus_dim2_and_dim3() {
    let n = icarus_case(Config::new(2, 16, 8).unwrap(), 700, 120, 4)
        + icarus_case(Config::new(3, 8, 16).unwrap(), 701, 80, 4);
    eprintln!("Icarus DIM 2, 3: {n} cycles");
}

#[test]
fn traces_match_icarus_dim4() {
    let n = icarus_case(Config::new(4, 32, 16).unwrap(), 702, 60, 8);
    eprintln!("Icarus DIM 4: {n} cycles");
}

#[test]
fn traces_match_icarus_dim8() {
    let n = icarus_case(Config::new(8, 32, 16).unwrap(), 703, 30, 8);
    eprintln!("Icarus DIM 8: {n} cycles");
}

/// `idle` (fast through blind windows) equals idle ticks: half a random stream, then idle
/// cycles, then the rest of the stream, port by port.
#[test]
fn fast_idle_equals_idle_ticks() {
    for seed in 0..100u64 {
        let dim = [1, 2, 3, 4, 8][(seed % 5) as usize];
        let cfg = Config::new(dim, 32, 16).unwrap();
        let (words, stalls) = random_case(&cfg, 2000 + seed, 20, 12);
        let (a, b) = words.split_at(words.len() / 2);
        let mut slow: Vec<(&'static str, Box<dyn CycleSim>)> =
            vec![("per tick", Box::new(Ticked(NativeSim::new(&cfg))))];
        let mut fast = NativeSim::new(&cfg);
        let what = format!("{cfg}, seed {}", 2000 + seed);
        let script = Script { cut: Some(a.len() as u64 / 2 + seed % 7), ..Script::default() };
        lockstep_ticks(&mut fast, &mut slow, a, &stalls, script, &what);
        let n = seed * 3 % 50;
        fast.idle(n);
        slow[0].1.idle(n);
        lockstep_ticks(
            &mut fast,
            &mut slow,
            b,
            &stalls,
            Script { carry_on: true, ..Script::default() },
            &what,
        );
    }
}

/// The fast `run_stream` (blind windows, input and output runs fast-forwarded, its own host)
/// equals the per-tick path (the spec host, one `tick` per cycle): traces, counters, activity
/// and both memories, on 2000 random streams (DIM 1 to 8 and 16, MATMULs up to 40 rows, random
/// stalls), on tiled GEMM programs with and without stalls, and on long read-backs beside
/// MATMULs in the other bank.
#[test]
fn fast_run_stream_equals_per_tick() {
    let check = |cfg: &Config, words: &[u32], stalls: &Stalls, what: &str| {
        let mut slow = Ticked(NativeSim::new(cfg));
        let want = slow.run_stream(words, stalls, 1_000_000).expect("per tick");
        let slow = slow.0;
        let mut fast = NativeSim::new(cfg);
        let got = fast.run_stream(words, stalls, 1_000_000).expect("fast");
        assert_eq!(got, want, "{what}");
        assert_eq!(fast.activity(), slow.activity(), "activity, {what}");
        assert_eq!(fast.counters(), slow.counters(), "counters, {what}");
        assert_eq!(fast.scratch, slow.scratch, "scratchpad, {what}");
        assert_eq!(fast.acc, slow.acc, "accumulators, {what}");
    };
    for seed in 0..2000u64 {
        let dim = [1, 2, 3, 4, 5, 8, 16][(seed % 7) as usize];
        let cfg = Config::new(dim, 64, 64).unwrap();
        let max_rows = [4, 12, 40][(seed % 3) as usize];
        let (words, stalls) = random_case(&cfg, 1000 + seed, 40, max_rows);
        check(&cfg, &words, &stalls, &format!("{cfg}, seed {}", 1000 + seed));
    }
    for (i, dim) in [2usize, 4, 8, 16].into_iter().enumerate() {
        let cfg = Config::new(dim, 256, 64).unwrap();
        let words = program(&super::tests::gemm_program(&cfg, i as u64, 50, 3, 2), dim);
        for stalls in [
            Stalls::none(),
            Stalls { input: vec![false, false, true], output: vec![true, false] },
            Stalls { input: vec![true; 5].into_iter().chain([false]).collect(), output: vec![false] },
        ] {
            check(&cfg, &words, &stalls, &format!("tiled GEMM, {cfg}, {stalls:?}"));
        }
    }
    // long read-backs (output runs across rows), READ_ACC of one accumulator bank while a
    // MATMUL fills the other, READ_ACT while a MATMUL reads the other scratchpad bank
    for dim in [1usize, 2, 4, 5, 8, 16] {
        let cfg = Config::new(dim, 128, 128).unwrap();
        let mut rng = spec::stimulus::Rng::new(dim as u64);
        let x = |rng: &mut spec::stimulus::Rng, n: usize| {
            (0..n).map(|_| (0..dim).map(|_| rng.i8()).collect()).collect()
        };
        let cmds = [
            spec::isa::Command::WriteAct { dst: 0, rows: x(&mut rng, 40) },
            spec::isa::Command::WriteAct { dst: 64, rows: x(&mut rng, 40) },
            spec::isa::Command::LoadWeights { weights: (0..dim * dim).map(|_| rng.i8()).collect() },
            spec::isa::Command::Matmul { src: 0, n: 40, dst: 0, accumulate: false },
            spec::isa::Command::Matmul { src: 0, n: 40, dst: 64, accumulate: false },
            spec::isa::Command::ReadAcc { src: 0, n: 40 },
            spec::isa::Command::Matmul { src: 0, n: 40, dst: 0, accumulate: true },
            spec::isa::Command::ReadAct { src: 64, n: 40 },
            spec::isa::Command::ReadAcc { src: 64, n: 33 },
            spec::isa::Command::ReadAcc { src: 0, n: 1 },
            spec::isa::Command::Counters,
        ];
        let words = program(&cmds, dim);
        for stalls in [
            Stalls::none(),
            Stalls { input: vec![], output: vec![false, false, false, true] },
            Stalls { input: vec![true, false], output: vec![false; 7].into_iter().chain([true]).collect() },
        ] {
            check(&cfg, &words, &stalls, &format!("read-backs, {cfg}, {stalls:?}"));
        }
        // and the fast path is taken: some cycle of the first READ_ACC starts an output run
        let mut sim = NativeSim::new(&cfg);
        sim.reset();
        let none = Stalls::none();
        let (mut host, mut runs) = (spec::stream::Host::new(&words, &none, dim, 100_000), 0);
        loop {
            if let Some((s, sent)) = sim.send_run(u64::MAX) {
                assert_eq!(s.cycles as usize, sent.len());
                runs += 1;
                break;
            }
            let drive = host.drive();
            let seen = sim.tick(drive);
            if host.observe(drive, seen).is_some() {
                break;
            }
        }
        assert!(runs > 0, "no output run at DIM {dim}");
    }
}
