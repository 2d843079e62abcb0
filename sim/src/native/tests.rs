//! Hand-checked timing of the native model (cycle numbers derived from the controller's FSM in
//! the comments), activity, counters, and the throughput measurement.

use super::*;
use spec::isa::{Command, Response};
use spec::stimulus::Rng;
use spec::{GoldenDevice, Quant};

/// Encode commands for `dim`.
pub(crate) fn program(cmds: &[Command], dim: usize) -> Vec<u32> {
    let mut w = Vec::new();
    for c in cmds {
        c.encode_into(dim, &mut w).expect("command fits the Config");
    }
    w
}

/// A tiled GEMM `Y = relu(X W + b)` with X: `m x (k_tiles*DIM)`, W: `(k_tiles*DIM) x
/// (n_tiles*DIM)`, the way a compiler would stream it: X's K-tiles into the scratchpad, then per
/// output column tile every K-tile's LOAD_WEIGHTS followed by its MATMUL (accumulating), so
/// weight loads overlap the array; then bias, quantisation, ACTIVATE and READ_ACT, and a final
/// COUNTERS. Needs `k_tiles * m + m` scratchpad rows and `m` accumulator rows.
pub(crate) fn gemm_program(cfg: &Config, seed: u64, m: u16, k_tiles: u16, n_tiles: u16) -> Vec<Command> {
    let d = cfg.dim();
    let mut rng = Rng::new(seed);
    assert!(
        usize::from(m) * (usize::from(k_tiles) + 1) <= cfg.scratch_rows() && usize::from(m) <= cfg.acc_rows()
    );
    let mut cmds = Vec::new();
    for t in 0..k_tiles {
        cmds.push(Command::WriteAct {
            dst: t * m,
            rows: (0..m).map(|_| (0..d).map(|_| rng.i8()).collect()).collect(),
        });
    }
    let out = k_tiles * m;
    for _ in 0..n_tiles {
        for t in 0..k_tiles {
            cmds.push(Command::LoadWeights { weights: (0..d * d).map(|_| rng.i8()).collect() });
            cmds.push(Command::Matmul { src: t * m, n: m, dst: 0, accumulate: t > 0 });
        }
        cmds.push(Command::LoadBias { bias: (0..d).map(|_| rng.below(2001) as i32 - 1000).collect() });
        cmds.push(Command::SetQuant(Quant::new(1 + rng.below(1000) as u16, 10, true).expect("shift < 48")));
        cmds.push(Command::Activate { src: 0, n: m, dst: out });
        cmds.push(Command::ReadAct { src: out, n: m });
    }
    cmds.push(Command::Counters);
    cmds
}

/// Run `words` from a reset with no stalls, one tick at a time; `probe` sees the model after
/// every cycle (`sim.cycle()` = cycles completed). Returns the trace and every cycle's ports.
fn run_probed(
    sim: &mut NativeSim,
    words: &[u32],
    mut probe: impl FnMut(&NativeSim),
) -> (Trace, Vec<DeviceOut>) {
    let stalls = Stalls::none();
    sim.reset();
    let mut host = spec::stream::Host::new(words, &stalls, sim.dim, 100_000);
    let mut ports = Vec::new();
    loop {
        let drive = host.drive();
        let seen = sim.tick(drive);
        ports.push(seen);
        probe(sim);
        if let Some(done) = host.observe(drive, seen) {
            return (done.expect("not stuck"), ports);
        }
    }
}

#[test]
fn latencies_equal_the_rtls() {
    assert_eq!(ACT_LATENCY, hdl::activation::ActivationUnit::LATENCY);
    for d in 1..=32 {
        assert_eq!(array_latency(d), hdl::array::SystolicArray::latency(d), "DIM {d}");
    }
}

/// A MATMUL of n = 5 rows at DIM 4 (L = 7, one word per row), right after its weights, then a
/// SYNC. From the controller's FSM, with a word offered every cycle:
///
/// | cycle | front end | |
/// |---|---|---|
/// | 0, 1 | WRITE_ACT header, payload word 0 | |
/// | 2 | Exec (takes no word), sequencer idle | |
/// | 3..=7 | WriteRows: rows 0..4, one word each | row r written on the edge of 4 + r |
/// | 8 | LOAD_WEIGHTS header | |
/// | 9..=12 | Weights: rows k = 0..3 | shadow bank 1 |
/// | 13, 14, 15 | MATMUL header, word 0, word 1 | |
/// | 16 | Exec: swap (bank 1 current), sequencer loaded | |
/// | 17..=21 | (next header taken at 17) | row i issued (scratchpad read) at t0 + i, t0 = 17 |
/// | 17 + i + L + 1 = 25 + i | | row i written to the accumulators on that edge |
/// | 17, 18 | SYNC header, token | |
/// | 19..=29 | SyncWait: arr_cnt reloaded to L + 1 = 8 at the last issue (21), 0 at 30 | |
/// | 30 | SyncWait sees the array idle | |
/// | 31, 32 | response header, token | |
#[test]
fn matmul_then_sync_timing_by_hand() {
    let cfg = Config::new(4, 16, 8).unwrap();
    let x: Vec<Vec<i8>> = (0..5).map(|i| vec![i + 1, -2, 3 * i, 4]).collect();
    let w: Vec<i8> = (0..16).map(|i| (i as i8 - 8) * 3).collect();
    let cmds = [
        Command::WriteAct { dst: 0, rows: x.clone() },
        Command::LoadWeights { weights: w.clone() },
        Command::Matmul { src: 0, n: 5, dst: 2, accumulate: false },
        Command::Sync { token: 0xABCD },
    ];
    let words = program(&cmds, 4);
    let want = |i: usize| -> Vec<i32> {
        (0..4).map(|n| spec::arith::dot(x[i].iter().copied(), (0..4).map(|k| w[k * 4 + n]))).collect()
    };
    let mut landed = vec![None; 5];
    let mut sim = NativeSim::new(&cfg);
    let (trace, ports) = run_probed(&mut sim, &words, |s| {
        for (i, l) in landed.iter_mut().enumerate() {
            if l.is_none() && s.acc_row(2 + i) == want(i) {
                *l = Some(s.cycle() - 1); // written on the edge that ended this cycle
            }
        }
    });
    assert_eq!(landed, (0..5).map(|i| Some(25 + i as u64)).collect::<Vec<_>>());
    assert_eq!(trace.outputs, vec![(31, 0x8200_0001), (32, 0xABCD)]);
    assert_eq!(trace.last_input_cycle, 18);
    // in_ready is low exactly on the two Exec cycles and from SyncWait on
    let low: Vec<u64> = (0..33).filter(|&c| !ports[c].in_ready).map(|c| c as u64).collect();
    assert_eq!(low, [vec![2, 16], (19..33).collect()].concat());
    // the array is busy from the first issue (17) to the last write (29)
    assert_eq!(sim.activity().array_busy_cycles, 29 - 17 + 1);
    // the RTL agrees
    let rtl =
        hdl::stream::run_rust(&mut hdl::core::ProtobrainCore::new(&cfg), &words, &Stalls::none(), 10_000)
            .expect("rust-hdl run");
    assert_eq!(rtl, trace);
}

/// ACTIVATE of n = 3 rows at DIM 2 (A = 6), then READ_ACT of those rows and a SYNC:
///
/// | cycle | |
/// |---|---|
/// | 0, 1, 2 | ACTIVATE header, word 0, word 1 |
/// | 3 | Exec: array idle, engine idle: the engine is loaded, the front end is free |
/// | 4, 5, 6 | the engine reads row i at 4 + i, written to the scratchpad on the edge of 4 + i + 1 + A = 11 + i; READ_ACT header (4), word 0 (5) |
/// | 6..=13 | READ_ACT's Exec waits: its rows meet the engine's (act_cnt = A + 1 = 7 at 7, 0 at 14) |
/// | 14 | Exec (engine idle): the read-back starts |
/// | 15 | response header out; row 0 read |
/// | 16 | RowEmit: row 0 into the row buffer, row 1 read (no word yet) |
/// | 17, 18, 19 | rows 0, 1, 2 (one word each at DIM 2), each next row loaded as one leaves |
/// | 20, 21, 22 | SYNC header, token, SyncWait |
/// | 23, 24 | response header, token |
#[test]
fn activate_then_read_act_timing_by_hand() {
    let cfg = Config::new(2, 8, 8).unwrap();
    let cmds = [
        Command::Activate { src: 1, n: 3, dst: 4 },
        Command::ReadAct { src: 4, n: 3 },
        Command::Sync { token: 5 },
    ];
    let words = program(&cmds, 2);
    let mut sim = NativeSim::new(&cfg);
    sim.reset();
    // the accumulators as a MATMUL left them, identity quantisation, bias 0 (after the reset)
    sim.acc[2..8].copy_from_slice(&[5, -7, 300, -300, 0, 1]);
    sim.scales.fill(ColumnScale::new(1, 0).unwrap());
    let stalls = Stalls::none();
    let mut host = spec::stream::Host::new(&words, &stalls, 2, 10_000);
    let mut written = vec![None; 3];
    let trace = loop {
        let drive = host.drive();
        let seen = sim.tick(drive);
        for (i, w) in written.iter_mut().enumerate() {
            if w.is_none() && sim.scratch_row(4 + i) != [0, 0] {
                *w = Some(host.cycle()); // on the edge that ended this cycle
            }
        }
        if let Some(done) = host.observe(drive, seen) {
            break done.expect("not stuck");
        }
    };
    assert_eq!(written, vec![Some(11), Some(12), Some(13)]);
    let row = |a: i8, b: i8| u32::from(a as u8) | (u32::from(b as u8) << 8);
    assert_eq!(
        trace.outputs,
        vec![
            (15, 0xA100_0003),
            (17, row(5, -7)),
            (18, row(127, -128)),
            (19, row(0, 1)),
            (23, 0x8200_0001),
            (24, 5)
        ]
    );
    assert_eq!(trace.last_input_cycle, 21);
    assert_eq!(sim.activity().act_busy_cycles, 6 + 1 + 3); // rows read 4..=6, last written at 13
}
/// The shadow-bank interlock at DIM 2 (L = 3, drain count L + 1 = 4):
///
/// | cycle | |
/// |---|---|
/// | 0..=2 | LOAD_WEIGHTS #1 (header, 2 rows) into bank 1 |
/// | 3..=5, 6 | MATMUL #1 (6 rows) header and words, Exec: swap, bank 1 current |
/// | 7..=12 | its rows issued, each reloading bank1_cnt to 4 |
/// | 7..=9 | LOAD_WEIGHTS #2 into bank 0 (idle: no wait) |
/// | 10..=12, 13 | MATMUL #2 (1 row), Exec waits for the sequencer: idle at 13, swap, bank 0 current |
/// | 14 | its row issued; LOAD_WEIGHTS #3 header (into bank 1) |
/// | 15, 16 | Weights, bank1_cnt = 2, 1: **in_ready low** |
/// | 17, 18 | bank1_cnt = 0: rows taken |
/// | 19, 20, 21 | SYNC header, token, SyncWait: array idle (arr_cnt 0 from 18) |
/// | 22, 23 | response |
#[test]
fn shadow_bank_interlock_timing_by_hand() {
    let cfg = Config::new(2, 8, 8).unwrap();
    let lw = |v: i8| Command::LoadWeights { weights: vec![v, 1, 2, v] };
    let cmds = [
        lw(3),
        Command::Matmul { src: 0, n: 6, dst: 0, accumulate: false },
        lw(-4),
        Command::Matmul { src: 6, n: 1, dst: 7, accumulate: true },
        lw(5),
        Command::Sync { token: 9 },
    ];
    let words = program(&cmds, 2);
    let mut sim = NativeSim::new(&cfg);
    let (trace, ports) = run_probed(&mut sim, &words, |_| {});
    let low: Vec<u64> = (0..24).filter(|&c| !ports[c].in_ready).map(|c| c as u64).collect();
    assert_eq!(low, [vec![6, 13, 15, 16], (21..24).collect()].concat());
    assert_eq!(trace.outputs, vec![(22, 0x8200_0001), (23, 9)]);
    assert_eq!(sim.activity().bank_swaps, 2);
    let rtl =
        hdl::stream::run_rust(&mut hdl::core::ProtobrainCore::new(&cfg), &words, &Stalls::none(), 10_000)
            .expect("rust-hdl run");
    assert_eq!(rtl, trace);
}

/// A refused command and an INFO: unknown opcode 0x77 with 2 payload words is skipped whole.
///
/// | cycle | |
/// |---|---|
/// | 0 | header (unknown, length 2): Skip |
/// | 1, 2 | payload skipped; ErrHeader next |
/// | 3, 4 | 0xFF header, error word `0x77 << 8 \| 1` |
/// | 5 | INFO header |
/// | 6..=10 | response header and 4 words |
#[test]
fn refused_command_timing_by_hand() {
    let cfg = Config::new(3, 64, 32).unwrap();
    let mut words = vec![0x7700_0002, 0xDEAD, 0xBEEF];
    words.extend(program(&[Command::Info, Command::Counters], 3));
    let mut sim = NativeSim::new(&cfg);
    let (trace, _) = run_probed(&mut sim, &words, |_| {});
    assert_eq!(
        trace.outputs[..7],
        [(3, 0xFF00_0001), (4, 0x7701), (6, 0x8100_0004), (7, spec::VERSION), (8, 3), (9, 64), (10, 32)]
    );
    // COUNTERS: header at 11, SyncWait (snapshot) at 12, response from 13
    let c: Vec<u32> = trace.outputs[8..].iter().map(|&(_, w)| w).collect();
    assert_eq!(trace.outputs[7], (13, 0xC000_0009));
    let c = Counters::from_words(&c.try_into().expect("9 counter words"));
    assert_eq!(
        c,
        Counters {
            cycles: 12,
            macs: 0,
            array_busy_cycles: 0,
            in_stall_cycles: 0,
            out_stall_cycles: 0,
            commands: 2,
            errors: 1
        }
    );
}

/// COUNTERS at the end of a GEMM program with input and output stalls: every field equals the
/// RTL's (rust-hdl), and the untimed ones are what the program implies.
#[test]
fn counters_after_a_gemm_match_the_rtl() {
    let cfg = Config::new(2, 64, 16).unwrap();
    let cmds = gemm_program(&cfg, 3, 6, 3, 2);
    let words = program(&cmds, 2);
    let stalls = Stalls { input: vec![false, false, true], output: vec![false, true, false, false, false] };
    let mut sim = NativeSim::new(&cfg);
    let native = sim.run_stream(&words, &stalls, 1_000_000).expect("native run");
    let rtl = hdl::stream::run_rust(&mut hdl::core::ProtobrainCore::new(&cfg), &words, &stalls, 1_000_000)
        .expect("rust-hdl run");
    assert_eq!(native, rtl);
    let counters = |t: &Trace| match spec::isa::decode_responses(2, &t.words()).expect("responses").last() {
        Some(Response::Counters(c)) => *c,
        other => panic!("last response is not COUNTERS: {other:?}"),
    };
    let (n, r) = (counters(&native), counters(&rtl));
    assert_eq!(n, r);
    let rows = 6 * 3 * 2; // m rows x k_tiles x n_tiles
    assert_eq!(n.macs, rows * 4);
    // busy: every issue cycle, plus a drain after each run of rows; the counter is sampled
    // with the array drained, so it equals the activity's count of the whole run
    assert_eq!(u64::from(n.array_busy_cycles), sim.activity().array_busy_cycles);
    assert!(n.array_busy_cycles > rows as u32, "{n:?}");
    assert_eq!(n.commands as usize, cmds.len() - 1);
    assert_eq!(n.errors, 0);
    assert!(n.in_stall_cycles > 0 && n.out_stall_cycles > 0, "{n:?}");
    // the snapshot is taken in SyncWait, the cycle before the response header is offered; the
    // header goes out on the first cycle after that the host is ready
    let hdr = native.outputs.iter().rposition(|&(_, w)| w == 0xC000_0009).expect("COUNTERS header");
    let first_ready = (n.cycles + 1..).find(|&c| !stalls.output_at(c)).expect("a ready cycle");
    assert_eq!(native.outputs[hdr].0, first_ready);
}

/// Activity equals what the commands imply, on random streams (malformed commands included):
/// rows per memory, MACs and zero-operand MACs (from the golden device's state), swaps, words.
#[test]
fn activity_is_what_the_commands_imply() {
    for seed in 0..40u64 {
        let dim = [2, 3, 4, 8][(seed % 4) as usize];
        let cfg = Config::new(dim, 32, 16).unwrap();
        let (words, stalls) = super::lockstep::random_case(&cfg, 3000 + seed, 40, 8);
        let mut sim = NativeSim::new(&cfg);
        let trace = sim.run_stream(&words, &stalls, 1_000_000).expect("native run");
        let d = dim as u64;
        let mut want = Activity { cycles: trace.cycles, words_in: words.len() as u64, ..Activity::default() };
        want.words_out = trace.outputs.len() as u64;
        let mut dev = GoldenDevice::new(cfg);
        let mut dec = spec::CommandDecoder::new(cfg);
        let mut loaded = false;
        for &w in &words {
            let Some(Ok(cmd)) = dec.push(w) else { continue };
            dev.execute(&cmd);
            match cmd {
                Command::WriteAct { rows, .. } => want.scratch_writes += rows.len() as u64,
                Command::ReadAct { n, .. } => want.scratch_reads += u64::from(n),
                Command::ReadAcc { n, .. } => want.acc_reads += u64::from(n),
                Command::LoadWeights { .. } => {
                    want.weight_row_writes += d;
                    loaded = true;
                }
                Command::LoadTile { .. } => {
                    // DIM scratchpad rows read into the shadow bank
                    want.scratch_reads += d;
                    want.weight_row_writes += d;
                    loaded = true;
                }
                Command::LoadBias { .. } => want.bias_writes += d,
                Command::Matmul { src, n, .. } => {
                    let n64 = u64::from(n);
                    want.bank_swaps += u64::from(std::mem::take(&mut loaded));
                    want.macs += n64 * d * d;
                    want.scratch_reads += n64;
                    want.acc_reads += n64;
                    want.acc_writes += n64;
                    let w = dev.active_weights();
                    for i in 0..usize::from(n) {
                        let x = dev.scratch_row(usize::from(src) + i);
                        want.zero_operand_macs +=
                            (0..dim * dim).filter(|&j| x[j / dim] == 0 || w[j] == 0).count() as u64;
                    }
                }
                Command::Activate { n, .. } => {
                    want.acc_reads += u64::from(n);
                    want.act_rows += u64::from(n);
                    want.scratch_writes += u64::from(n);
                }
                _ => {}
            }
        }
        let got = sim.activity();
        assert_eq!(
            Activity { array_busy_cycles: 0, act_busy_cycles: 0, ..got },
            want,
            "{cfg}, seed {}",
            3000 + seed
        );
        assert!(got.array_busy_cycles >= got.macs / (d * d) && got.act_busy_cycles >= got.act_rows);
    }
}

#[test]
fn memories_are_zero_at_construction_and_survive_reset() {
    let cfg = Config::new(4, 8, 4).unwrap();
    let mut sim = NativeSim::new(&cfg);
    assert!((0..8).all(|r| sim.scratch_row(r) == [0; 4]) && (0..4).all(|r| sim.acc_row(r) == [0; 4]));
    let words = program(
        &[
            Command::WriteAct { dst: 7, rows: vec![vec![1, 2, 3, 4]] },
            Command::LoadWeights { weights: (0..16).map(|i| i as i8).collect() },
            Command::Matmul { src: 7, n: 1, dst: 3, accumulate: false },
        ],
        4,
    );
    sim.run_stream(&words, &Stalls::none(), 10_000).expect("run");
    let acc = sim.acc_row(3).to_vec();
    assert_eq!(acc, [80, 90, 100, 110]);
    assert!(sim.is_quiescent());
    sim.reset();
    assert_eq!((sim.scratch_row(7), sim.acc_row(3)), (&[1, 2, 3, 4][..], &acc[..]));
    assert_eq!((sim.cycle(), sim.counters(), sim.activity()), (0, Counters::default(), Activity::default()));
}

/// Every preset, up to DIM 256 (64 words per row, the generic kernel), against the golden
/// device on a small GEMM with a malformed command in the middle.
#[test]
fn presets_answer_like_the_golden_device() {
    for name in Config::PRESET_NAMES {
        let cfg = Config::preset(name).unwrap();
        let cmds = gemm_program(&cfg, 9, 5, 2, 2);
        let mut words = program(&cmds[..2], cfg.dim());
        words.extend([0x3000_0001, 7]); // MATMUL with one payload word: bad length
        words.extend(program(&cmds[2..], cfg.dim()));
        let trace = NativeSim::new(&cfg).run_stream(&words, &Stalls::none(), 10_000_000).expect("run");
        let golden = GoldenDevice::run(cfg, &words);
        let dim = cfg.dim();
        assert_eq!(
            super::lockstep::untimed(dim, &trace.words()),
            super::lockstep::untimed(dim, &golden),
            "{name}"
        );
    }
}

#[test]
#[should_panic(expected = "scratchpad row 8 of 8")]
fn rows_past_the_end_are_refused_loudly() {
    NativeSim::new(&Config::new(4, 8, 4).unwrap()).scratch_row(8);
}

/// Simulated cycles per second of `run_stream` on two large GEMM programs at DIM 4, 8 and 16:
/// [`gemm_program`] (read-backs after every output tile: a third of the cycles stream words
/// out) and a MATMUL-bound one (one 256-row activation tile times 512 weight tiles); at LANES 1
/// and then at LANES 4 (the same programs framed in beats; "words" counts the flattened beats).
/// `cargo test --release -p protobrain-sim throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput_on_large_gemm() {
    for (lanes, dim) in [1usize, 4].into_iter().flat_map(|l| [4usize, 8, 16].map(|d| (l, d))) {
        let cfg = Config::new(dim, 16384, 1024).unwrap().with_lanes(spec::lanes::Lanes::new(lanes).unwrap());
        let beats =
            |words: Vec<u32>| spec::lanes::frame(&words, spec::lanes::Stream::Commands, &cfg, cfg.lanes());
        let m = (4096 / dim) as u16;
        let tiled = program(&gemm_program(&cfg, 1, m, 8, 8), dim);
        let bound = {
            // one activation tile against 512 weight tiles, accumulating: the array busy
            // almost every cycle, weight loads hidden behind it
            let mut cmds = gemm_program(&cfg, 2, 256, 1, 1);
            let (load, mm) = (cmds[1].clone(), cmds[2].clone());
            let tail = cmds.split_off(3);
            for _ in 0..511 {
                cmds.push(load.clone());
                cmds.push(Command::Matmul { src: 0, n: 256, dst: 0, accumulate: true });
            }
            assert!(matches!(mm, Command::Matmul { n: 256, .. }));
            cmds.extend(tail);
            program(&cmds, dim)
        };
        for (name, words) in [("tiled GEMM", beats(tiled)), ("MATMUL-bound", beats(bound))] {
            let mut sim = NativeSim::new(&cfg);
            let stalls = Stalls::none();
            // best of several runs: the machine is shared
            let (mut best, mut cycles) = (f64::INFINITY, 0);
            let t0 = std::time::Instant::now();
            while t0.elapsed().as_secs_f64() < 1.0 {
                let t = std::time::Instant::now();
                cycles = sim.run_stream(&words, &stalls, u64::MAX).unwrap().cycles;
                best = best.min(t.elapsed().as_secs_f64());
            }
            let a = sim.activity();
            let lanes = if lanes == 1 { String::new() } else { format!(" LANES {lanes}") };
            eprintln!(
                "DIM {dim:2}{lanes} {name:12}: {:6} words, {:7} cycles, array utilization {:.2}: {:6.1} M cycles/s, {:5.2} GMAC/s",
                words.len(),
                cycles,
                a.array_utilization(dim),
                cycles as f64 / best / 1e6,
                a.macs as f64 / best / 1e9,
            );
        }
    }
}

/// The longest response of the contract, READ_ACC of 65535 rows at DIM 256, announces
/// 0xFFFF00 words in its 24-bit length (the opcode byte untouched), and its first row follows
/// at one word per cycle.
#[test]
fn longest_read_acc_header_fits_at_dim_256() {
    let cfg = Config::new(256, 16, 65536).unwrap();
    let words = program(&[Command::ReadAcc { src: 1, n: 65535 }], 256);
    let mut sim = NativeSim::new(&cfg);
    sim.reset();
    sim.acc[256..512].iter_mut().enumerate().for_each(|(i, a)| *a = i as i32 - 7);
    let mut out = vec![];
    for c in 0..300 {
        let inp = HostOut {
            in_valid: c < words.len(),
            in_data: words.get(c).copied().unwrap_or(0),
            out_ready: true,
        };
        let o = sim.tick(inp);
        if o.out_valid {
            out.push((c, o.out_data));
        }
    }
    assert_eq!(out[0], (3, 0xB2FF_FF00));
    // one load cycle, then row 1's 256 words back to back
    let row: Vec<(usize, u32)> = (0..256).map(|i| (5 + i, (i as i32 - 7) as u32)).collect();
    assert_eq!(&out[1..257], &row[..]);
}

/// A model that skips the sums runs every stream exactly as one that computes them: the same
/// response cycles, counters and activity, except the zero-operand count of operands an
/// ACTIVATE computed on chip; without ACTIVATE, all of it (random commands and GEMM blocks,
/// DIM 1..=9 with the const and generic kernels, stalls on both streams). Only the values read
/// back differ. A model that keeps time alone (`timing_only`) does the same and counts no
/// zero-operand product.
#[test]
fn skipping_the_sums_changes_no_cycle_and_no_count() {
    use spec::stimulus::{random_command, random_gemm_block, random_stalls};
    let mut rng = Rng::new(0x5c1b);
    for case in 0..160 {
        let dim = 1 + rng.below(9) as usize;
        let cfg = Config::new(dim, 16 << rng.below(2), 8 << rng.below(2)).unwrap();
        let with_activate = case % 2 == 0;
        let mut cmds = Vec::new();
        for _ in 0..10 + rng.below(40) {
            if rng.chance(0.2) {
                cmds.extend(random_gemm_block(&cfg, &mut rng, 8));
            } else {
                cmds.push(random_command(&cfg, &mut rng, 8));
            }
        }
        cmds.retain(|c| with_activate || !matches!(c, Command::Activate { .. }));
        let words = program(&cmds, dim);
        let p = [0.0, 0.3][rng.below(2) as usize];
        let stalls = Stalls { input: random_stalls(&mut rng, 37, p), output: random_stalls(&mut rng, 23, p) };
        let (mut a, mut b, mut t) = (NativeSim::new(&cfg), NativeSim::new(&cfg), NativeSim::new(&cfg));
        b.skip_sums();
        t.timing_only();
        let ta = a.run_stream(&words, &stalls, 1 << 22).unwrap();
        let tb = b.run_stream(&words, &stalls, 1 << 22).unwrap();
        let tt = t.run_stream(&words, &stalls, 1 << 22).unwrap();
        let what = format!("case {case} on {cfg}");
        let cycles = |t: &Trace| t.outputs.iter().map(|&(c, _)| c).collect::<Vec<_>>();
        assert_eq!(cycles(&ta), cycles(&tb), "{what}");
        assert_eq!(cycles(&ta), cycles(&tt), "{what}");
        assert_eq!((ta.cycles, ta.last_input_cycle), (tb.cycles, tb.last_input_cycle), "{what}");
        assert_eq!((ta.cycles, ta.last_input_cycle), (tt.cycles, tt.last_input_cycle), "{what}");
        assert_eq!(a.counters(), b.counters(), "{what}");
        assert_eq!(a.counters(), t.counters(), "{what}");
        let (mut aa, ab, mut at) = (a.activity(), b.activity(), t.activity());
        if with_activate {
            aa.zero_operand_macs = ab.zero_operand_macs;
        }
        assert_eq!(aa, ab, "{what}");
        assert_eq!(at.zero_operand_macs, 0, "{what}");
        at.zero_operand_macs = ab.zero_operand_macs;
        assert_eq!(at, ab, "{what}");
    }
}
