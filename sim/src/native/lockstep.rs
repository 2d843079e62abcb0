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
//!
//! At LANES > 1 the same harness runs on beats: the random streams framed by
//! `spec::lanes::frame`, every port compared through [`CycleSim::tick_beat`] (every lane of the
//! output beat, on every cycle), [`RustHdlSim`] driving `in_lanes[j]` and reading
//! `out_lanes[j]`, whole traces against `hdl::stream::run_icarus_beats`, and the words against
//! `GoldenDevice::run_lanes`.

use hdl::core::ProtobrainCore;
use hdl::stream::{run_icarus, run_icarus_beats, run_rust};
use rust_hdl::prelude::{simulate, Block, Clock};
use spec::isa::Response;
use spec::lanes::{frame, unframe, Lanes, Stream};
use spec::stimulus::{random_stalls, random_stream, Rng, StreamShape};
use spec::stream::{DeviceOut, Host, HostOut, Stalls, Trace};
use spec::{Config, GoldenDevice, Quant};

use super::NativeSim;
use crate::CycleSim;

/// Every cycle-accurate backend under test, freshly built for `cfg`, with its name (the
/// Verilator model in builds with the `verilator` feature).
pub(crate) fn backends(cfg: &Config) -> Vec<(&'static str, Box<dyn CycleSim>)> {
    #[allow(unused_mut)]
    let mut sims: Vec<(&'static str, Box<dyn CycleSim>)> = vec![
        ("native", Box::new(NativeSim::new(cfg))),
        ("native, per tick", Box::new(Ticked(NativeSim::new(cfg)))),
    ];
    #[cfg(feature = "verilator")]
    match crate::verilated::VerilatedSim::new(cfg) {
        Ok(v) => sims.push(("verilator", Box::new(v))),
        // a harness that does not drive beats yet leaves LANES > 1 to the others
        Err(crate::verilated::VerilatorError::Lanes { .. }) => {}
        Err(e) => panic!("Verilator model: {e}"),
    }
    sims
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
        let (mut beat, mut out) = (vec![0; self.cfg.lanes().get()], vec![0; self.cfg.lanes().get()]);
        beat[0] = inputs.in_data;
        let (in_ready, out_valid) = self.tick_beat(inputs.in_valid, &beat, inputs.out_ready, &mut out);
        DeviceOut { in_ready, out_valid, out_data: out[0] }
    }

    /// Lane 0 on `in_data`/`out_data`, lanes 1.. on the core's `in_lanes`/`out_lanes`.
    fn tick_beat(
        &mut self,
        in_valid: bool,
        in_beat: &[u32],
        out_ready: bool,
        out_beat: &mut [u32],
    ) -> (bool, bool) {
        self.core.in_valid.next = in_valid;
        self.core.in_data.next = u64::from(in_beat[0]).into();
        for (port, &w) in self.core.in_lanes.iter_mut().zip(&in_beat[1..]) {
            port.next = u64::from(w).into();
        }
        self.core.out_ready.next = out_ready;
        self.settle();
        let seen = (self.core.in_ready.val(), self.core.out_valid.val());
        out_beat[0] = self.core.out_data.val().to_u64() as u32;
        for (w, port) in out_beat[1..].iter_mut().zip(&self.core.out_lanes) {
            *w = port.val().to_u64() as u32;
        }
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

/// [`random_case`] framed at the config's LANES: the command words and the flattened beats
/// (the same words at LANES 1). For odd seeds the padding lanes carry random junk instead of
/// zeros (the contract: the device ignores them).
pub(crate) fn random_beats(
    cfg: &Config,
    seed: u64,
    commands: usize,
    max_rows: u16,
) -> (Vec<u32>, Vec<u32>, Stalls) {
    let (words, stalls) = random_case(cfg, seed, commands, max_rows);
    let mut beats = frame(&words, Stream::Commands, cfg, cfg.lanes());
    if seed % 2 == 1 {
        junk_padding(cfg, &mut beats, seed);
    }
    (words, beats, stalls)
}

/// Random junk in every padding lane of `beats` (the lanes of a beat past the words the
/// unframer takes from it).
pub(crate) fn junk_padding(cfg: &Config, beats: &mut [u32], seed: u64) {
    let l = cfg.lanes().get();
    let mut rng = Rng::new(seed ^ 0x7a4c);
    let mut unframer = spec::lanes::Unframer::new(Stream::Commands, *cfg, cfg.lanes());
    let mut words = Vec::new();
    for beat in beats.chunks_mut(l) {
        let before = words.len();
        unframer.push(beat, &mut words);
        for w in &mut beat[words.len() - before..] {
            *w = rng.next_u64() as u32;
        }
    }
    assert_eq!(words, unframe(beats, Stream::Commands, cfg, cfg.lanes()), "junk only in the padding");
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
/// ports on every cycle (at LANES > 1 `words` is flattened beats, and every lane of the output
/// beat is compared). A reset (of all of them) on a cycle of `script.resets` leaves the host
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
    let cfg = *reference.config();
    let l = cfg.lanes().get();
    let reset_all = |reference: &mut dyn CycleSim, sims: &mut [(&'static str, Box<dyn CycleSim>)]| {
        reference.reset();
        sims.iter_mut().for_each(|(_, s)| s.reset());
    };
    if !script.carry_on {
        reset_all(reference, sims);
    }
    let mut host = Host::with_lanes(words, stalls, &cfg, 200_000);
    let (mut want, mut got) = (vec![0; l], vec![0; l]);
    loop {
        if script.cut == Some(host.cycle()) {
            return None;
        }
        if script.resets.contains(&host.cycle()) {
            reset_all(reference, sims);
        }
        let drive = host.drive();
        let beat = host.beat();
        let want_hs = if l == 1 {
            // LANES 1 through `tick` (what the 32-bit backends implement)
            let seen = reference.tick(drive);
            want[0] = seen.out_data;
            (seen.in_ready, seen.out_valid)
        } else {
            reference.tick_beat(drive.in_valid, beat, drive.out_ready, &mut want)
        };
        for (name, s) in sims.iter_mut() {
            let got_hs = if l == 1 {
                let seen = s.tick(drive);
                got[0] = seen.out_data;
                (seen.in_ready, seen.out_valid)
            } else {
                s.tick_beat(drive.in_valid, beat, drive.out_ready, &mut got)
            };
            assert_eq!(
                (got_hs, &got),
                (want_hs, &want),
                "{name} vs RTL on host cycle {} ({what}), inputs {drive:?} beat {beat:x?}: (in_ready, out_valid), out beat",
                host.cycle()
            );
            assert_eq!(s.cycle(), reference.cycle(), "{name}: cycle() ({what})");
        }
        if let Some(done) = host.observe_beat(drive, want_hs.0, want_hs.1, &want) {
            return Some(done.unwrap_or_else(|e| panic!("{what}: {e}")));
        }
    }
}

/// Every backend's `run_stream` trace equals `want`, and its words equal the golden device's
/// (at LANES > 1 `words` is flattened beats, and the output beats equal
/// `GoldenDevice::run_lanes`'s).
pub(crate) fn check_traces(cfg: &Config, words: &[u32], stalls: &Stalls, want: &Trace, what: &str) {
    if cfg.lanes().get() == 1 {
        let golden = GoldenDevice::run(*cfg, words);
        assert_eq!(untimed(cfg.dim(), &want.words()), untimed(cfg.dim(), &golden), "RTL vs golden ({what})");
    } else {
        assert_beats_match_golden(cfg, words, &want.words(), what);
    }
    for (name, mut s) in backends(cfg) {
        let got = s.run_stream(words, stalls, 10_000_000).unwrap_or_else(|e| panic!("{name} ({what}): {e}"));
        assert_eq!(&got, want, "{name} trace vs RTL ({what})");
    }
}

/// Output beats `got` (flattened) equal to `GoldenDevice::run_lanes` of the input beats, every
/// lane (padding included), except the timed COUNTERS words.
pub(crate) fn assert_beats_match_golden(cfg: &Config, beats_in: &[u32], got: &[u32], what: &str) {
    let want = GoldenDevice::run_lanes_untimed(*cfg, cfg.lanes(), beats_in);
    let l = cfg.lanes().get();
    assert_eq!(got.len(), want.len(), "{what}: {} output words, golden {}", got.len(), want.len());
    for (i, (&g, w)) in got.iter().zip(&want).enumerate() {
        if let Some(w) = *w {
            assert_eq!(g, w, "{what}: beat {} lane {}: {g:#x}, golden {w:#x}", i / l, i % l);
        }
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
        let (_, words, stalls) = random_beats(&cfg, seed, commands, max_rows);
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

/// `cmds` (LANES 1) on rust-hdl and every backend in lockstep (every port every
/// cycle, no stalls), the results checked against the golden device; the cycle of the first
/// response word.
fn first_answer_in_lockstep(cfg: &Config, cmds: &[spec::isa::Command], what: &str) -> u64 {
    let words = program(cmds, cfg.dim());
    let mut rtl = RustHdlSim::new(cfg);
    let mut sims = backends(cfg);
    let stalls = Stalls::none();
    let trace =
        lockstep_ticks(&mut rtl, &mut sims, &words, &stalls, Script::default(), what).expect("not cut");
    check_traces(cfg, &words, &stalls, &trace, what);
    trace.outputs[0].0
}

/// ACTIVATE's engine reading accumulator rows 0..12 (bank 0) as a MATMUL is parsed: one that
/// accumulates into rows 12..24 (bank 0 too) waits for the engine, a bank's read port being
/// the MATMUL's on every edge both read; one into rows 16..28 (bank 1) does not. Every port
/// every cycle as in rust-hdl, and the results the golden device's.
#[test]
fn a_matmul_waits_for_the_activate_engine_only_on_its_bank() {
    use spec::isa::Command;
    let cfg = Config::new(2, 64, 32).unwrap();
    let rows: Vec<Vec<i8>> = (0..24).map(|i| vec![i as i8 - 12, 3 - i as i8]).collect();
    let mut cycles = Vec::new();
    for dst in [12, 16] {
        let cmds = [
            Command::WriteAct { dst: 0, rows: rows.clone() },
            Command::LoadWeights { weights: vec![3, -1, 2, 5] },
            Command::Matmul { src: 0, n: 24, dst: 0, accumulate: false },
            Command::SetQuant(spec::Quant::new(1, 0, false).unwrap()),
            Command::Activate { src: 0, n: 12, dst: 32 },
            Command::Matmul { src: 0, n: 12, dst, accumulate: true },
            Command::Sync { token: 1 },
            Command::ReadAct { src: 32, n: 12 },
            Command::ReadAcc { src: dst, n: 12 },
        ];
        // the SYNC answers once the second MATMUL is done
        cycles.push(first_answer_in_lockstep(&cfg, &cmds, &format!("MATMUL into rows {dst}..")));
    }
    assert!(cycles[0] > cycles[1], "SYNC answered on cycles {cycles:?}: the same bank should wait");
}

/// A MATMUL reading scratchpad rows 0..24 (bank 0) as a WRITE_ACT is parsed: one that writes
/// rows 8..10 (rows the MATMUL reads) waits until its last row has issued; one writing rows
/// 24..26 (the same bank, other rows: the bank's write port is free) does not, and the MATMUL
/// still reads the old rows. Every port every cycle as in rust-hdl, and the results the golden
/// device's.
#[test]
fn a_write_act_waits_only_for_the_rows_a_matmul_reads() {
    use spec::isa::Command;
    let cfg = Config::new(2, 64, 32).unwrap();
    let rows: Vec<Vec<i8>> = (0..26).map(|i| vec![i as i8 - 12, 3 - i as i8]).collect();
    let mut cycles = Vec::new();
    for dst in [8, 24] {
        let cmds = [
            Command::WriteAct { dst: 0, rows: rows.clone() },
            Command::LoadWeights { weights: vec![3, -1, 2, 5] },
            Command::Matmul { src: 0, n: 24, dst: 0, accumulate: false },
            Command::WriteAct { dst, rows: vec![vec![100, -100], vec![-7, 9]] },
            Command::Info,
            Command::Sync { token: 1 },
            Command::ReadAcc { src: 0, n: 24 },
            Command::ReadAct { src: 0, n: 26 },
        ];
        // INFO answers once the WRITE_ACT is done
        cycles.push(first_answer_in_lockstep(&cfg, &cmds, &format!("WRITE_ACT to rows {dst}..")));
    }
    assert!(
        cycles[0] > cycles[1] + 10,
        "INFO answered on cycles {cycles:?}: rows the MATMUL reads should wait"
    );
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

// ---- LANES > 1: beats ----

fn with_lanes(dim: usize, scratch: usize, acc: usize, lanes: usize) -> Config {
    Config::new(dim, scratch, acc).unwrap().with_lanes(Lanes::new(lanes).unwrap())
}

/// Every port (every lane of both beats) on every cycle against rust-hdl at LANES 2 and 4:
/// rows narrower than a beat (DIM 2, 4), DIM-word rows of several beats with padding in the
/// last (LOAD_BIAS / LOAD_QUANT / READ_ACC at DIM 3 and 5), malformed commands, random stalls.
#[test]
fn lanes_every_port_every_cycle_matches_rust_hdl() {
    let mut n = 0;
    for (i, (d, l)) in [(2, 2), (2, 4), (4, 2), (4, 4), (3, 2), (5, 4)].into_iter().enumerate() {
        let seeds = 3000 + 100 * i as u64..3000 + 100 * i as u64 + [25, 25, 15, 15, 10, 10][i];
        n += rust_hdl_ticks(with_lanes(d, 16, 8, l), seeds, 25, 4, 0);
    }
    eprintln!("LANES 2, 4: {n} cycles in lockstep");
}

/// Resets at random cycles at LANES 2 and 4: the host carries on with its beats, so any beat
/// may land as a header (and a refused WRITE_ACT's discarded rows are cut short).
#[test]
fn lanes_resets_mid_stream_match_rust_hdl() {
    let n = rust_hdl_ticks(with_lanes(2, 16, 8, 2), 3700..3715, 25, 4, 2)
        + rust_hdl_ticks(with_lanes(4, 16, 16, 4), 3715..3725, 25, 6, 3);
    eprintln!("LANES resets: {n} cycles in lockstep");
}

/// One random stream at the config's LANES through the emitted Verilog under Icarus: the
/// whole trace, every backend's and the golden device's beats.
fn icarus_lanes_case(cfg: Config, verilog: &str, seed: u64, commands: usize, max_rows: u16) -> u64 {
    let (_, beats, stalls) = random_beats(&cfg, seed, commands, max_rows);
    let words = unframe(&beats, Stream::Commands, &cfg, cfg.lanes());
    let what = format!("Icarus, {cfg}, seed {seed}");
    let trace = run_icarus_beats(verilog, cfg.dim(), cfg.lanes().get(), &words, &beats, &stalls, 2_000_000)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    check_traces(&cfg, &beats, &stalls, &trace, &what);
    trace.cycles
}

fn icarus_lanes(dim: usize, cases: &[(usize, std::ops::Range<u64>)], commands: usize, max_rows: u16) -> u64 {
    let mut n = 0;
    for (l, seeds) in cases {
        let cfg = with_lanes(dim, 32, 16, *l);
        let verilog = hdl::emit::verilog(&cfg).expect("the core emits");
        for seed in seeds.clone() {
            n += icarus_lanes_case(cfg, &verilog, seed, commands, max_rows);
        }
    }
    n
}

#[test]
fn lanes_traces_match_icarus_dim2_and_dim4() {
    let n = icarus_lanes(2, &[(2, 4000..4002), (4, 4010..4012), (8, 4020..4021)], 60, 4)
        + icarus_lanes(4, &[(2, 4030..4032), (4, 4040..4042), (8, 4050..4051)], 50, 6);
    eprintln!("Icarus LANES, DIM 2, 4: {n} cycles");
}

#[test]
fn lanes_traces_match_icarus_dim8() {
    let n = icarus_lanes(8, &[(2, 4100..4101), (4, 4110..4112), (8, 4120..4121)], 30, 8);
    eprintln!("Icarus LANES, DIM 8: {n} cycles");
}

#[test]
fn lanes_traces_match_icarus_dim16() {
    let n = icarus_lanes(16, &[(2, 4200..4201), (4, 4210..4211), (8, 4220..4221)], 20, 6);
    eprintln!("Icarus LANES, DIM 16: {n} cycles");
}

/// At LANES > 1 the fast `run_stream` (its own host, blind windows, payload beats and
/// read-back beats fast-forwarded) equals the per-tick path, and `idle` equals idle ticks:
/// traces, counters, activity and both memories.
#[test]
fn lanes_fast_paths_equal_per_tick() {
    let check = |cfg: &Config, beats: &[u32], stalls: &Stalls, what: &str| {
        let mut slow = Ticked(NativeSim::new(cfg));
        let want = slow.run_stream(beats, stalls, 1_000_000).expect("per tick");
        let slow = slow.0;
        let mut fast = NativeSim::new(cfg);
        let got = fast.run_stream(beats, stalls, 1_000_000).expect("fast");
        assert_eq!(got, want, "{what}");
        assert_eq!(fast.activity(), slow.activity(), "activity, {what}");
        assert_eq!(fast.counters(), slow.counters(), "counters, {what}");
        assert_eq!(fast.scratch, slow.scratch, "scratchpad, {what}");
        assert_eq!(fast.acc, slow.acc, "accumulators, {what}");
        assert_eq!(fast.rowbuf, slow.rowbuf, "row buffer, {what}");
    };
    for seed in 0..600u64 {
        let dim = [1, 2, 3, 4, 5, 8, 16][(seed % 7) as usize];
        let l = [2, 4, 8, 16][(seed / 7 % 4) as usize];
        let cfg = with_lanes(dim, 64, 64, l);
        let max_rows = [4, 12, 40][(seed % 3) as usize];
        let (_, beats, stalls) = random_beats(&cfg, 5000 + seed, 40, max_rows);
        check(&cfg, &beats, &stalls, &format!("{cfg}, seed {}", 5000 + seed));
    }
    for (i, (dim, l)) in [(4usize, 4usize), (8, 2), (16, 4), (16, 8)].into_iter().enumerate() {
        let cfg = with_lanes(dim, 256, 64, l);
        let words = program(&super::tests::gemm_program(&cfg, i as u64, 50, 3, 2), dim);
        let beats = frame(&words, Stream::Commands, &cfg, cfg.lanes());
        for stalls in [
            Stalls::none(),
            Stalls { input: vec![false, false, true], output: vec![true, false] },
            Stalls { input: vec![true; 5].into_iter().chain([false]).collect(), output: vec![false] },
        ] {
            check(&cfg, &beats, &stalls, &format!("tiled GEMM, {cfg}, {stalls:?}"));
        }
    }
    // and the fast paths are taken at LANES > 1: payload beats (WRITE_ACT rows of 2 beats,
    // LOAD_BIAS of 4) and read-back beats open windows of more than one cycle
    let cfg = with_lanes(16, 64, 64, 4);
    let rows: Vec<Vec<i8>> = (0..8).map(|r| (0..16).map(|c| (r * 16 + c) as i8).collect()).collect();
    let cmds = [
        spec::isa::Command::WriteAct { dst: 0, rows },
        spec::isa::Command::LoadBias { bias: (0..16).collect() },
        spec::isa::Command::ReadAct { src: 0, n: 8 },
    ];
    let beats = frame(&program(&cmds, 16), Stream::Commands, &cfg, cfg.lanes());
    let (mut sim, none) = (NativeSim::new(&cfg), Stalls::none());
    sim.reset();
    let (mut host, mut out) = (Host::with_lanes(&beats, &none, &cfg, 10_000), [0; 4]);
    let (mut inputs, mut outputs) = (0, 0);
    loop {
        inputs += usize::from(sim.input_window() > 1);
        outputs += usize::from(sim.output_window() > 1);
        let d = host.drive();
        let (ready, valid) = sim.tick_beat(d.in_valid, host.beat(), d.out_ready, &mut out);
        if host.observe_beat(d, ready, valid, &out).is_some() {
            break;
        }
    }
    assert!(inputs > 0 && outputs > 0, "windows at LANES 4: {inputs} in, {outputs} out");

    // idle: half a stream, idle cycles, the rest, port by port
    for seed in 0..60u64 {
        let dim = [1, 2, 3, 4, 8][(seed % 5) as usize];
        let cfg = with_lanes(dim, 32, 16, [2, 4][(seed % 2) as usize]);
        let (_, beats, stalls) = random_beats(&cfg, 6000 + seed, 20, 12);
        let l = cfg.lanes().get();
        let (a, b) = beats.split_at(beats.len() / l / 2 * l);
        let mut slow: Vec<(&'static str, Box<dyn CycleSim>)> =
            vec![("per tick", Box::new(Ticked(NativeSim::new(&cfg))))];
        let mut fast = NativeSim::new(&cfg);
        let what = format!("{cfg}, seed {}", 6000 + seed);
        let script = Script { cut: Some((a.len() / l) as u64 / 2 + seed % 7), ..Script::default() };
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

/// `pump` at LANES > 1 (fast: blind windows, payload and read-back beats) equals the trait's
/// per-tick pump: a random stream pumped in pieces (random `keep` and `want`), the same beats
/// out, the same verdicts, cycles, counters, activity and memories.
#[test]
fn lanes_fast_pump_equals_per_tick() {
    use std::collections::VecDeque;
    for seed in 0..150u64 {
        let dim = [2, 3, 4, 8, 16][(seed % 5) as usize];
        let cfg = with_lanes(dim, 64, 64, [2, 4, 8][(seed / 5 % 3) as usize]);
        let (_, beats, _) = random_beats(&cfg, 7000 + seed, 30, 12);
        let l = cfg.lanes().get();
        let what = format!("{cfg}, seed {}", 7000 + seed);
        let (mut fast, mut slow) = (NativeSim::new(&cfg), Ticked(NativeSim::new(&cfg)));
        let (mut fi, mut si) = (VecDeque::from(beats.clone()), VecDeque::from(beats));
        let (mut fo, mut so) = (VecDeque::new(), VecDeque::new());
        let mut rng = Rng::new(seed);
        loop {
            let keep = (fi.len() / l).saturating_sub(1 + rng.below(30) as usize) * l;
            let want = fo.len() + l * (1 + rng.below(20) as usize);
            let a = fast.pump(&mut fi, &mut fo, keep, want, 300);
            let b = slow.pump(&mut si, &mut so, keep, want, 300);
            assert_eq!((a, &fi, &fo), (b, &si, &so), "{what}");
            assert_eq!(fast.cycle(), slow.0.cycle(), "{what}");
            if !a {
                break;
            }
        }
        assert_eq!(fast.counters(), slow.0.counters(), "{what}");
        assert_eq!(fast.activity(), slow.0.activity(), "{what}");
        assert_eq!((&fast.scratch, &fast.acc), (&slow.0.scratch, &slow.0.acc), "{what}");
    }
}
