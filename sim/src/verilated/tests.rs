//! The Verilator model against the golden device, against Icarus on the same emitted Verilog,
//! and its C++ host loop against the trait's default loop over `tick`; run-time builds, the
//! cache, waveforms and error messages.

use std::time::Instant;

use spec::isa::{decode_responses, Command, Response};
use spec::lanes::{frame, Lanes, Stream};
use spec::stimulus::{random_gemm_block, random_stalls, random_stream, Rng, StreamShape};
use spec::stream::{HostOut, Stalls, Stuck, Trace};
use spec::{Config, GoldenDevice};

use super::{cache, ModelSource, VerilatedSim, VerilatorError};
use crate::{CycleSim, Ticked};

const LIMIT: u64 = 400_000;

/// Decode a response stream and zero the timed COUNTERS fields, which the untimed golden
/// device answers as 0 (as hdl/src/core_tests.rs does).
fn untimed(dim: usize, words: &[u32]) -> Vec<Response> {
    spec::isa::decode_untimed(dim, words)
        .unwrap_or_else(|e| panic!("undecodable response stream: {e}: {words:x?}"))
}

/// A random stream and stall pattern from `seed`.
fn case(cfg: &Config, seed: u64, commands: usize) -> (Vec<u32>, Stalls) {
    let mut rng = Rng::new(seed);
    let words = random_stream(cfg, &mut rng, StreamShape { commands, max_rows: 4, malformed: 0.2 });
    let p_in = [0.0, 0.3, 0.7][rng.below(3) as usize];
    let p_out = [0.0, 0.3, 0.7][rng.below(3) as usize];
    let (len_in, len_out) = (1 + rng.below(64) as usize, 1 + rng.below(64) as usize);
    let mut stalls = Stalls {
        input: random_stalls(&mut rng, len_in, p_in),
        output: random_stalls(&mut rng, len_out, p_out),
    };
    // a pattern that always stalls would stop the stream for good
    stalls.input[0] = false;
    stalls.output[0] = false;
    (words, stalls)
}

/// Verilator against the golden device on `cases` random streams, and against Icarus on every
/// `icarus_every`-th one (identical traces: same words on the same cycles).
fn lockstep(cfg: Config, seeds: std::ops::Range<u64>, commands: usize, icarus_every: u64) {
    assert_eq!(VerilatedSim::new(&cfg).unwrap().source(), &ModelSource::Prebuilt, "{cfg} should be prebuilt");
    let verilog = hdl::emit::verilog(&cfg).unwrap();
    let (mut outputs, mut compared) = (0, 0);
    for seed in seeds {
        let (words, stalls) = case(&cfg, seed, commands);
        // a fresh model each time: reset keeps the memories, the golden device starts at zero
        let mut sim = VerilatedSim::new(&cfg).unwrap();
        let trace =
            sim.run_stream(&words, &stalls, LIMIT).unwrap_or_else(|e| panic!("{cfg}, seed {seed}: {e}"));
        assert_eq!(sim.cycle(), trace.cycles);
        let golden = GoldenDevice::run(cfg, &words);
        assert_eq!(
            untimed(cfg.dim(), &trace.words()),
            untimed(cfg.dim(), &golden),
            "Verilator vs golden, {cfg}, seed {seed}"
        );
        assert!(trace.outputs.windows(2).all(|w| w[0].0 < w[1].0), "one word per cycle at most");
        outputs += trace.outputs.len();
        if seed % icarus_every == 0 {
            let rtl = hdl::stream::run_icarus(&verilog, cfg.dim(), &words, &stalls, LIMIT)
                .unwrap_or_else(|e| panic!("Icarus, {cfg}, seed {seed}: {e}"));
            assert_eq!(trace, rtl, "Verilator vs Icarus, {cfg}, seed {seed}");
            compared += 1;
        }
    }
    assert!(outputs > 100, "the streams produced only {outputs} output words");
    assert!(compared > 0);
}

#[test]
fn dim2_matches_golden_and_icarus_on_random_streams() {
    lockstep(Config::new(2, 16, 8).unwrap(), 0..200, 40, 25);
}

#[test]
fn dim4_matches_golden_and_icarus_on_random_streams() {
    lockstep(Config::new(4, 16, 8).unwrap(), 1000..1120, 40, 30);
}

#[test]
fn dim8_matches_golden_and_icarus_on_random_streams() {
    lockstep(Config::new(8, 32, 16).unwrap(), 2000..2060, 30, 30);
}

#[test]
fn presets_are_prebuilt_and_match_golden() {
    for name in ["default", "ecp5-25k", "ecp5-85k"] {
        let cfg = Config::preset(name).unwrap();
        assert!(VerilatedSim::prebuilt().contains(&cfg), "{name}");
        assert_eq!(VerilatedSim::new(&cfg).unwrap().source(), &ModelSource::Prebuilt);
        for seed in 0..6 {
            let (words, stalls) = case(&cfg, 7000 + seed, 30);
            let mut sim = VerilatedSim::new(&cfg).unwrap();
            let trace = sim.run_stream(&words, &stalls, LIMIT).unwrap();
            assert_eq!(
                untimed(cfg.dim(), &trace.words()),
                untimed(cfg.dim(), &GoldenDevice::run(cfg, &words))
            );
        }
    }
}

#[test]
fn the_linked_tables_match_this_abi() {
    assert_eq!(super::PREBUILT.len(), VerilatedSim::prebuilt().len());
    for p in super::PREBUILT {
        // SAFETY: a static table of a linked model.
        let api = unsafe { (p.api)().as_ref() }.unwrap();
        assert_eq!((api.abi_version, api.traced, api.lanes), (super::ABI_VERSION, 0, 1), "{:?}", p.dims);
    }
}

#[test]
fn the_cpp_host_loop_equals_the_default_loop_over_tick() {
    for cfg in
        [Config::new(2, 16, 8).unwrap(), Config::new(4, 16, 8).unwrap(), Config::new(8, 32, 16).unwrap()]
    {
        for seed in 0..40 {
            let (words, stalls) = case(&cfg, 5000 + seed, 30);
            // two fresh models (a reset keeps the memories)
            let mut sim = VerilatedSim::new(&cfg).unwrap();
            let mut other = VerilatedSim::new(&cfg).unwrap();
            let fast = sim.run_stream(&words, &stalls, LIMIT);
            let slow = Ticked(&mut other).run_stream(&words, &stalls, LIMIT);
            assert!(fast.is_ok(), "{cfg}, seed {seed}: {fast:?}");
            assert_eq!(fast, slow, "{cfg}, seed {seed}");
            assert_eq!(sim.cycle(), fast.unwrap().cycles);
            assert_eq!(other.cycle(), sim.cycle());
        }
        let mut sim = VerilatedSim::new(&cfg).unwrap();
        let mut other = VerilatedSim::new(&cfg).unwrap();
        // empty stall patterns never stall, and an empty stream is only the quiet tail
        let none = Stalls { input: vec![], output: vec![] };
        let (words, _) = case(&cfg, 77, 10);
        assert_eq!(sim.run_stream(&words, &none, LIMIT), Ticked(&mut other).run_stream(&words, &none, LIMIT));
        let empty = sim.run_stream(&[], &Stalls::none(), LIMIT).unwrap();
        assert_eq!(
            empty,
            Trace {
                outputs: vec![],
                last_input_cycle: 0,
                cycles: spec::stream::quiet_cycles(cfg.dim(), &[])
            }
        );
    }
}

#[test]
fn a_limit_too_small_is_stuck_in_both_loops() {
    let cfg = Config::new(4, 16, 8).unwrap();
    let (words, stalls) = case(&cfg, 99, 30);
    // the whole stream never enters in fewer cycles than it has words
    let limit = words.len() as u64 / 2;
    let fast = VerilatedSim::new(&cfg).unwrap().run_stream(&words, &stalls, limit);
    let slow = Ticked(&mut VerilatedSim::new(&cfg).unwrap()).run_stream(&words, &stalls, limit);
    assert_eq!(fast, slow);
    let Err(Stuck { taken, total, limit: l }) = fast else { panic!("not stuck: {fast:?}") };
    assert!(taken < total && total == words.len() && l == limit);
}

#[test]
fn ticks_answer_info_and_reset_restarts_the_cycle_count() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let mut sim = VerilatedSim::new(&cfg).unwrap();
    assert_eq!(sim.cycle(), 0);
    let mut words = Vec::new();
    Command::Info.encode_into(2, &mut words).unwrap();
    let mut out = Vec::new();
    let mut sent = 0;
    for _ in 0..200 {
        let drive = HostOut {
            in_valid: sent < words.len(),
            in_data: words.get(sent).copied().unwrap_or(0),
            out_ready: true,
        };
        let seen = sim.tick(drive);
        if drive.in_valid && seen.in_ready {
            sent += 1;
        }
        if seen.out_valid {
            out.push(seen.out_data);
        }
    }
    assert_eq!(sim.cycle(), 200);
    assert_eq!(
        decode_responses(2, &out).unwrap(),
        vec![Response::Info { version: spec::VERSION, dim: 2, scratch_rows: 16, acc_rows: 8 }]
    );
    sim.idle(5);
    assert_eq!(sim.cycle(), 205);
    sim.reset();
    assert_eq!(sim.cycle(), 0);
}

#[test]
fn models_are_independent_and_move_between_threads() {
    let cfg = Config::new(4, 16, 8).unwrap();
    let (words, stalls) = case(&cfg, 4242, 40);
    let expected = VerilatedSim::new(&cfg).unwrap().run_stream(&words, &stalls, LIMIT).unwrap();
    let sims: Vec<VerilatedSim> = (0..3).map(|_| VerilatedSim::new(&cfg).unwrap()).collect();
    let traces: Vec<Trace> = std::thread::scope(|s| {
        let handles: Vec<_> = sims
            .into_iter()
            .map(|mut sim| {
                let (w, st) = (&words, &stalls);
                s.spawn(move || sim.run_stream(w, st, LIMIT).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for t in traces {
        assert_eq!(t, expected);
    }
}

#[test]
fn a_config_that_is_not_prebuilt_is_built_at_run_time_and_cached() {
    let cfg = Config::new(3, 8, 16).unwrap();
    assert!(!VerilatedSim::prebuilt().contains(&cfg));
    let sim = VerilatedSim::new(&cfg).unwrap();
    assert!(
        matches!(sim.source(), ModelSource::Built { .. } | ModelSource::Cached { .. }),
        "{:?}",
        sim.source()
    );
    for seed in 0..20 {
        let (words, stalls) = case(&cfg, 300 + seed, 30);
        let mut sim = VerilatedSim::new(&cfg).unwrap();
        let trace = sim.run_stream(&words, &stalls, LIMIT).unwrap();
        assert_eq!(untimed(3, &trace.words()), untimed(3, &GoldenDevice::run(cfg, &words)), "seed {seed}");
        if seed < 2 {
            let rtl = hdl::stream::run_icarus(&hdl::emit::verilog(&cfg).unwrap(), 3, &words, &stalls, LIMIT)
                .unwrap();
            assert_eq!(trace, rtl, "Verilator vs Icarus, seed {seed}");
        }
    }
    let t0 = Instant::now();
    let again = VerilatedSim::new(&cfg).unwrap();
    assert!(matches!(again.source(), ModelSource::Cached { .. }), "{:?}", again.source());
    assert!(t0.elapsed().as_secs_f64() < 1.0, "a cache hit took {:?}", t0.elapsed());
}

#[test]
fn a_fresh_cache_builds_once_and_then_hits_on_disk() {
    let root = tempfile::tempdir().unwrap();
    let cfg = Config::new(2, 4, 2).unwrap();
    let (_, first) = cache::load_in(root.path(), &cfg, false).unwrap();
    let ModelSource::Built { dir, seconds } = first else { panic!("{first:?}") };
    assert!(dir.join("libpbmodel.so").is_file() && dir.join("src/core.v").is_file());
    eprintln!("run-time build of {cfg}: {seconds:.1} s (Verilator's library included)");
    // a second run of this executable finds it through the index, without emitting
    cache::forget(root.path());
    let t0 = Instant::now();
    let (_, second) = cache::load_in(root.path(), &cfg, false).unwrap();
    assert_eq!(second, ModelSource::Cached { dir: dir.clone() });
    assert!(t0.elapsed().as_secs_f64() < 0.5, "a cache hit took {:?}", t0.elapsed());
    assert_eq!(std::fs::read_dir(root.path().join("index")).unwrap().count(), 1);
    // another executable emits the same Verilog and finds it by its hash
    std::fs::remove_dir_all(root.path().join("index")).unwrap();
    cache::forget(root.path());
    let (api, third) = cache::load_in(root.path(), &cfg, false).unwrap();
    assert_eq!(third, ModelSource::Cached { dir: dir.clone() });
    let second = third;
    // the loaded model works
    let mut sim = VerilatedSim::start(&cfg, api, second, None).unwrap();
    let (words, stalls) = case(&cfg, 11, 20);
    let trace = sim.run_stream(&words, &stalls, LIMIT).unwrap();
    assert_eq!(untimed(2, &trace.words()), untimed(2, &GoldenDevice::run(cfg, &words)));
    // nothing half-built is left behind
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn publishing_onto_an_entry_another_process_finished_keeps_theirs() {
    let root = tempfile::tempdir().unwrap();
    let (ours, theirs) = (root.path().join("tmp-x"), root.path().join("entry"));
    for (d, text) in [(&ours, "ours"), (&theirs, "theirs")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("libpbmodel.so"), text).unwrap();
    }
    cache::publish(&ours, &theirs, "libpbmodel.so").unwrap();
    assert!(!ours.exists());
    assert_eq!(std::fs::read_to_string(theirs.join("libpbmodel.so")).unwrap(), "theirs");
    // onto nothing: a plain rename
    let fresh = root.path().join("tmp-y");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join("libpbmodel.so"), "y").unwrap();
    cache::publish(&fresh, &root.path().join("entry2"), "libpbmodel.so").unwrap();
    assert!(root.path().join("entry2/libpbmodel.so").is_file());
}

#[test]
fn a_waveform_is_written_on_request() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vcd = dir.path().join("wave.vcd");
    let trace = {
        let mut sim = VerilatedSim::with_trace(&cfg, &vcd).unwrap();
        assert_eq!(sim.trace_path(), Some(vcd.as_path()));
        let mut rng = Rng::new(5);
        let mut words = Vec::new();
        for c in random_gemm_block(&cfg, &mut rng, 3) {
            c.encode_into(2, &mut words).unwrap();
        }
        let trace = sim.run_stream(&words, &Stalls::none(), LIMIT).unwrap();
        assert_eq!(untimed(2, &trace.words()), untimed(2, &GoldenDevice::run(cfg, &words)));
        trace
    }; // dropped: the file is closed
    let text = std::fs::read_to_string(&vcd).unwrap();
    let (header, body) = text.split_once("$enddefinitions").expect("a VCD header");
    assert!(header.contains("$timescale 1ns $end"), "{}", &header[..200.min(header.len())]);
    for signal in ["clk", "rst", "in_data", "in_valid", "in_ready", "out_data", "out_valid", "out_ready"] {
        assert!(
            header.lines().any(|l| l.contains("$var") && l.split_whitespace().any(|w| w == signal)),
            "no {signal} in the VCD header"
        );
    }
    // 10 ns cycles, clock low then high: the reset in `new`, the reset in run_stream, the run
    let times: Vec<u64> =
        body.lines().filter_map(|l| l.strip_prefix('#')).filter_map(|t| t.parse().ok()).collect();
    assert_eq!(times.iter().max(), Some(&(10 * (2 + trace.cycles) - 5)));
    assert!(times.windows(2).all(|w| w[1] - w[0] == 5), "a dump every half cycle");
}

/// Run by [`the_trace_env_var_traces_every_model`] in a child process with the variable set.
#[test]
#[ignore = "run in a child process by the_trace_env_var_traces_every_model"]
fn trace_env_child() {
    if std::env::var_os(super::TRACE_ENV).is_none() {
        return;
    }
    let cfg = Config::new(2, 16, 8).unwrap();
    for _ in 0..2 {
        let mut sim = VerilatedSim::new(&cfg).unwrap();
        assert!(sim.trace_path().is_some());
        sim.idle(3);
    }
}

#[test]
fn the_trace_env_var_traces_every_model() {
    let dir = tempfile::tempdir().unwrap();
    let vcd = dir.path().join("env.vcd");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["verilated::tests::trace_env_child", "--exact", "--ignored", "--test-threads", "1"])
        .env(super::TRACE_ENV, &vcd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    for f in ["env.vcd", "env.1.vcd"] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains("$enddefinitions") && text.contains(" in_valid "), "{f}");
    }
}

#[test]
fn a_bad_waveform_path_is_a_clear_error() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let err = VerilatedSim::with_trace(&cfg, "/nonexistent-dir/x/wave.vcd").unwrap_err();
    assert!(matches!(err, VerilatorError::Trace { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent-dir/x/wave.vcd"), "{err}");
}

#[test]
fn a_missing_tool_says_how_to_install_it() {
    let cfg = Config::new(3, 8, 16).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = cache::run_logged(
        &mut std::process::Command::new("verilator-not-installed-here"),
        "verilator",
        "verilator",
        &dir.path().join("log"),
        &cfg,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, VerilatorError::ToolMissing { .. }));
    assert!(text.contains("`verilator` not found") && text.contains("apt-get install verilator"), "{text}");
    assert!(text.contains("scripts/setup.sh") && text.contains("DIM 3"), "{text}");
    // a failing tool points at its log and shows its last lines
    let err = cache::run_logged(
        std::process::Command::new("sh").args(["-c", "echo first; echo 'bad thing' >&2; exit 3"]),
        "verilator",
        "verilator",
        &dir.path().join("log"),
        &cfg,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("verilator failed") && text.contains("bad thing") && text.contains("log"),
        "{text}"
    );
    assert!(std::fs::read_to_string(dir.path().join("log")).unwrap().contains("first"));
}

// ---- LANES > 1: beats of LANES words (docs/design.md "A wider link: LANES") ----

fn with_lanes(d: usize, l: usize) -> Config {
    Config::new(d, 16, 8).unwrap().with_lanes(Lanes::new(l).unwrap())
}

/// Every output word (padding lanes included) equal to `GoldenDevice::run_lanes`, except the
/// timed COUNTERS words.
fn assert_matches_run_lanes(cfg: &Config, beats: &[u32], got: &[u32], what: &str) {
    let want = GoldenDevice::run_lanes_untimed(*cfg, cfg.lanes(), beats);
    assert_eq!(got.len(), want.len(), "{what}: {} output words, want {}", got.len(), want.len());
    let l = cfg.lanes().get();
    for (i, (&g, w)) in got.iter().zip(&want).enumerate() {
        if let Some(w) = *w {
            assert_eq!(g, w, "{what}: beat {} lane {}: {g:#x}, want {w:#x}", i / l, i % l);
        }
    }
}

/// A random stream (malformed commands included) framed at the config's LANES, and a stall
/// pattern, from `seed`.
fn lanes_case_of(cfg: &Config, seed: u64, commands: usize) -> (Vec<u32>, Vec<u32>, Stalls) {
    let (words, stalls) = case(cfg, seed, commands);
    let beats = frame(&words, Stream::Commands, cfg, cfg.lanes());
    (words, beats, stalls)
}

/// spec::stream::Host's rules on beats, one [`VerilatedSim::tick_beat`] per cycle: what the C++
/// host loop must equal.
fn run_beats_by_tick(sim: &mut VerilatedSim, words: &[u32], beats: &[u32], stalls: &Stalls) -> Trace {
    let l = sim.config().lanes().get();
    let n = beats.len() / l;
    let quiet = spec::stream::quiet_cycles(sim.config().dim(), words);
    sim.reset();
    let (zero, mut out) = (vec![0u32; l], vec![0u32; l]);
    let (mut ip, mut idle, mut held) = (0usize, 0u64, false);
    let mut trace = Trace::default();
    loop {
        let cycle = sim.cycle();
        let more = ip < n;
        let stall = |p: &[bool]| !p.is_empty() && p[cycle as usize % p.len()];
        let in_valid = more && (held || !stall(&stalls.input));
        let out_ready = !stall(&stalls.output);
        let beat = if more { &beats[ip * l..(ip + 1) * l] } else { &zero[..] };
        let (in_ready, out_valid) = sim.tick_beat(in_valid, beat, out_ready, &mut out);
        if out_valid && out_ready {
            trace.outputs.extend(out.iter().map(|&w| (cycle, w)));
            idle = 0;
        } else if !more {
            idle += 1;
        }
        held = in_valid && !in_ready;
        if in_valid && in_ready {
            trace.last_input_cycle = cycle;
            ip += 1;
        }
        assert!(sim.cycle() < LIMIT, "stuck");
        if ip >= n && idle >= quiet {
            trace.cycles = sim.cycle();
            return trace;
        }
    }
}

/// Verilator at LANES > 1 against `GoldenDevice::run_lanes` on random streams with stalls,
/// against Icarus on the same emitted Verilog (identical traces: the same words on the same
/// cycles) on every `icarus_every`-th seed, and its C++ host loop against a loop over
/// `tick_beat` on the others.
fn lanes_lockstep(cfg: Config, seeds: std::ops::Range<u64>, commands: usize, icarus_every: u64) {
    let l = cfg.lanes().get();
    let verilog = hdl::emit::verilog(&cfg).unwrap();
    let (mut beats_out, mut compared) = (0, 0);
    for seed in seeds {
        let (words, beats, stalls) = lanes_case_of(&cfg, seed, commands);
        let what = format!("{cfg}, seed {seed}");
        // a fresh model each time: reset keeps the memories, the golden device starts at zero
        let mut sim = VerilatedSim::new(&cfg).unwrap();
        let trace = sim.run_stream(&beats, &stalls, LIMIT).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(sim.cycle(), trace.cycles);
        assert_matches_run_lanes(&cfg, &beats, &trace.words(), &what);
        // LANES words per beat, all on the beat's cycle; one beat per cycle at most
        assert!(trace.outputs.chunks(l).all(|b| b.iter().all(|o| o.0 == b[0].0)), "{what}");
        assert!(trace.outputs.chunks(l).collect::<Vec<_>>().windows(2).all(|w| w[0][0].0 < w[1][0].0));
        beats_out += trace.outputs.len() / l;
        if seed % icarus_every == 0 {
            let rtl = hdl::stream::run_icarus_beats(&verilog, cfg.dim(), l, &words, &beats, &stalls, LIMIT)
                .unwrap_or_else(|e| panic!("Icarus, {what}: {e}"));
            assert_eq!(trace, rtl, "Verilator vs Icarus, {what}");
            compared += 1;
        } else {
            let mut other = VerilatedSim::new(&cfg).unwrap();
            assert_eq!(run_beats_by_tick(&mut other, &words, &beats, &stalls), trace, "tick_beat, {what}");
        }
    }
    assert!(beats_out > 50, "{cfg}: the streams produced only {beats_out} output beats");
    assert!(compared > 0);
}

#[test]
fn lanes_dim2_matches_run_lanes_and_icarus_on_random_streams() {
    for (l, seeds) in [(2, 0..12), (4, 100..112), (8, 200..212)] {
        lanes_lockstep(with_lanes(2, l), seeds, 30, 6);
    }
}

#[test]
fn lanes_dim4_matches_run_lanes_and_icarus_on_random_streams() {
    for (l, seeds) in [(2, 300..312), (4, 400..412), (8, 500..512)] {
        lanes_lockstep(with_lanes(4, l), seeds, 30, 6);
    }
}

#[test]
fn lanes_dim8_matches_run_lanes_and_icarus_on_random_streams() {
    for (l, seeds) in [(2, 600..610), (4, 700..710), (8, 800..810)] {
        lanes_lockstep(with_lanes(8, l), seeds, 25, 5);
    }
}

#[test]
fn lanes_dim16_matches_run_lanes_and_icarus_on_random_streams() {
    lanes_lockstep(with_lanes(16, 4), 900..908, 20, 4);
}

/// By hand: INFO at DIM 8, LANES 4 is one response-header beat, then one beat of its four
/// words.
#[test]
fn tick_beat_answers_info_at_lanes_4() {
    let cfg = with_lanes(8, 4);
    let mut sim = VerilatedSim::new(&cfg).unwrap();
    assert_ne!(sim.source(), &ModelSource::Prebuilt);
    let info = [0x0100_0000, 0, 0, 0];
    let mut out = [0u32; 4];
    let mut sent = false;
    let mut beats = Vec::new();
    for _ in 0..200 {
        let (in_ready, out_valid) = sim.tick_beat(!sent, &info, true, &mut out);
        sent |= in_ready;
        if out_valid {
            beats.push(out);
        }
    }
    assert!(sent);
    assert_eq!(sim.cycle(), 200);
    assert_eq!(beats, vec![[0x8100_0004, 0, 0, 0], [spec::VERSION, 8, 16, 8]]);
    // the same through the C++ host loop, and the golden device
    let trace = sim.run_stream(&info, &Stalls::none(), LIMIT).unwrap();
    assert_eq!(trace.words(), [0x8100_0004, 0, 0, 0, spec::VERSION, 8, 16, 8]);
    assert_eq!(trace.words(), GoldenDevice::run_lanes(cfg, cfg.lanes(), &info));
    sim.idle(3);
    assert_eq!(sim.cycle(), trace.cycles + 3);
}

/// At LANES 1 a beat is one word: tick_beat and tick are the same cycle.
#[test]
fn tick_beat_at_lanes_1_is_tick() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let mut words = Vec::new();
    Command::Info.encode_into(2, &mut words).unwrap();
    Command::Sync { token: 9 }.encode_into(2, &mut words).unwrap();
    let (mut a, mut b) = (VerilatedSim::new(&cfg).unwrap(), VerilatedSim::new(&cfg).unwrap());
    let (mut sa, mut sb) = (0, 0);
    let mut out = [0u32];
    let mut got = Vec::new();
    for c in 0..100 {
        let ready = c % 3 != 1;
        let seen = a.tick(HostOut {
            in_valid: sa < words.len(),
            in_data: *words.get(sa).unwrap_or(&0),
            out_ready: ready,
        });
        let beat = [*words.get(sb).unwrap_or(&0)];
        let (in_ready, out_valid) = b.tick_beat(sb < words.len(), &beat, ready, &mut out);
        assert_eq!((seen.in_ready, seen.out_valid), (in_ready, out_valid), "cycle {c}");
        if seen.out_valid {
            assert_eq!(seen.out_data, out[0], "cycle {c}");
            if ready {
                got.push(out[0]);
            }
        }
        sa += usize::from(sa < words.len() && seen.in_ready);
        sb += usize::from(sb < words.len() && in_ready);
    }
    assert_eq!(got, GoldenDevice::run(cfg, &words));
    assert_eq!(a.cycle(), b.cycle());
}

/// A beat of the wrong length is refused before it reaches the model.
#[test]
#[should_panic(expected = "beats of 4 words, got 3 in and 4 out")]
fn tick_beat_refuses_a_short_beat() {
    let mut sim = VerilatedSim::new(&with_lanes(8, 4)).unwrap();
    sim.tick_beat(true, &[0x0100_0000, 0, 0], true, &mut [0; 4]);
}

#[test]
#[should_panic(expected = "beats of 2 words, got 2 in and 1 out")]
fn tick_beat_refuses_a_short_output_beat() {
    let mut sim = VerilatedSim::new(&with_lanes(2, 2)).unwrap();
    sim.tick_beat(true, &[0x0100_0000, 0], true, &mut [0; 1]);
}

#[test]
#[should_panic(expected = "are not whole beats of 4")]
fn run_stream_refuses_a_partial_beat() {
    let mut sim = VerilatedSim::new(&with_lanes(8, 4)).unwrap();
    let _ = sim.run_stream(&[0x0100_0000, 0, 0, 0, 0x0100_0000], &Stalls::none(), LIMIT);
}

/// The word-wide `tick` at LANES > 1 drives lane 0 (zeros on the others) and shows lane 0, as
/// the native model's does: the same ports on every cycle of an INFO and a SYNC.
#[test]
fn word_tick_at_lanes_above_1_is_lane_0_as_in_the_native_model() {
    let cfg = with_lanes(2, 2);
    let mut sim = VerilatedSim::new(&cfg).unwrap();
    let mut native = crate::native::NativeSim::new(&cfg);
    sim.reset();
    native.reset();
    let words = [0x0100_0000, 0x0200_0001, 0x77];
    let (mut i, mut got) = (0, Vec::new());
    for c in 0..20 {
        let drive = HostOut {
            in_valid: i < words.len(),
            in_data: words.get(i).copied().unwrap_or(0),
            out_ready: true,
        };
        let (a, b) = (sim.tick(drive), native.tick(drive));
        assert_eq!(a, b, "cycle {c}");
        i += usize::from(drive.in_valid && a.in_ready);
        if a.out_valid {
            got.push(a.out_data);
        }
    }
    // INFO (a one-beat header, the four words in two beats: lane 0 of each), SYNC
    assert_eq!(got, [0x8100_0004, 3, 16, 0x8200_0001, 0x77]);
}

/// LANES 1 and LANES 2, 4 of one DIM and memories are different models (different Verilog,
/// different cache entries and index keys); the LANES 1 one stays the prebuilt one.
#[test]
fn lanes_are_part_of_the_model_cache_keys() {
    let one = VerilatedSim::new(&with_lanes(4, 1)).unwrap();
    assert_eq!(one.source(), &ModelSource::Prebuilt);
    let two = VerilatedSim::new(&with_lanes(4, 2)).unwrap();
    let four = VerilatedSim::new(&with_lanes(4, 4)).unwrap();
    let (d2, d4) = (two.source().location(), four.source().location());
    assert_ne!(d2, d4);
    assert!(d2.join("libpbmodel.so").is_file() && d4.join("libpbmodel.so").is_file());
    let root = cache::cache_dir().join("runtime");
    let keys: Vec<_> = [1, 2, 4]
        .iter()
        .map(|&l| {
            cache::index_entry(
                &root,
                &Config::new(4, 8, 8).unwrap().with_lanes(Lanes::new(l).unwrap()),
                false,
            )
        })
        .collect();
    assert!(keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2], "{keys:?}");
    // a model of another width than the configuration's is refused before it is driven
    let e = VerilatedSim::start(&with_lanes(4, 4), two.api, two.source().clone(), None).unwrap_err();
    assert!(e.to_string().contains("the model has 2 lanes, the configuration 4"), "{e}");
}

/// The UART board's model still moves one word at a time: LANES > 1 is refused, never run as
/// the 32-bit link.
#[test]
fn the_uart_model_refuses_lanes_above_one() {
    let cfg = Config::preset("ice40-up5k").unwrap().with_lanes(Lanes::new(2).unwrap());
    let e = super::UartModel::new(&cfg, 16, 16).unwrap_err();
    assert!(matches!(e, VerilatorError::Lanes { .. }), "{e}");
    assert!(e.to_string().contains("does not implement LANES > 1"), "{e}");
    assert!(e.to_string().contains("LANES 2"), "{e}");
}
