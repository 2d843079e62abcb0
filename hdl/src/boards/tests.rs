//! Board tops and flows: names, parameters, a board top booting and answering over its serial
//! line (rust-hdl and Icarus, with the PLL models), report parsing, and the real flows.

use super::flow::{
    build_bitstream, parse_nextpnr_report, parse_yosys_stat_json, ClockTiming, FlowError, Utilisation,
};
use super::*;
use crate::replay::{replay, simulate, Port};
use crate::uart::{LineDecoder, LineEncoder, Received};
use spec::isa::Command;
use spec::GoldenDevice;

#[test]
fn board_names_parse_and_unknown_ones_are_explained() {
    for b in Board::ALL {
        assert_eq!(b.name().parse::<Board>(), Ok(b));
        assert_eq!(b.to_string(), b.name());
    }
    assert_eq!(
        "ulx3s".parse::<Board>().unwrap_err().to_string(),
        "unknown board `ulx3s`: expected one of icebreaker, ulx3s-25f, ulx3s-85f"
    );
}

/// Each board's PLL produces exactly its core clock, the UART rate is exact, the preset is the
/// one the board was sized for, and the top emits with the right primitive.
#[test]
fn every_board_spec_is_consistent_and_emits() {
    for b in Board::ALL {
        let s = b.spec();
        let out = match s.pll {
            PllKind::Ice40(p) => p.output_hz(b.osc_hz() as f64),
            PllKind::Ecp5 { params, f_in_mhz } => params.output_hz(f_in_mhz * 1e6),
        };
        assert_eq!(out, b.core_hz() as f64, "{b}");
        assert_eq!(s.clocks_per_bit as u64 * BOARD_BAUD, s.core_hz, "{b}: exact baud");
        assert_eq!(s.config, Config::preset(b.preset()).unwrap());
        let v = board_verilog(&s).unwrap();
        let prim = if b.family() == Family::Ice40 { "SB_PLL40_PAD #(" } else { "EHXPLLL #(" };
        assert_eq!(v.matches(prim).count(), 1, "{b}");
        assert!(v.contains(&format!(
            "module {BOARD_TOP}(clk_osc,btn_n,uart_rx,uart_tx,led_heartbeat,led_overflow);"
        )));
        let (name, text) = b.constraints();
        for port in ["clk_osc", "btn_n", "uart_rx", "uart_tx", "led_heartbeat", "led_overflow"] {
            assert!(
                text.contains(&format!(" {port} ")) || text.contains(&format!("\"{port}\"")),
                "{name}: {port}"
            );
        }
    }
}

/// A board top with a small core, 4 clocks per bit and a short heartbeat, simulated with the
/// PLL models: held in reset until the PLL locks (8 clocks) plus 3, then the heartbeat toggles
/// every 20 clocks (LEDs active low here), the button resets, and INFO + SYNC sent over
/// `uart_rx` are answered on `uart_tx` exactly as the golden device answers.
#[test]
fn board_top_boots_blinks_and_answers_over_serial() {
    let cpb = 4;
    let cfg = Config::new(2, 16, 8).unwrap();
    let spec = BoardSpec {
        config: cfg,
        clocks_per_bit: cpb,
        fifo_depth: 32,
        heartbeat_half_period: 20,
        ..Board::Icebreaker.spec()
    };
    let mut words = vec![];
    for c in [Command::Info, Command::Sync { token: 0xABCD_0123 }] {
        c.encode_into(2, &mut words).unwrap();
    }
    let golden = GoldenDevice::run(cfg, &words);
    // inputs: btn_n, uart_rx
    let mut stimulus: Vec<Vec<u128>> = (0..30).map(|_| vec![1, 1]).collect();
    let mut enc = LineEncoder::new(cpb as f64);
    enc.send(&words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>());
    while !enc.is_idle() {
        stimulus.push(vec![1, enc.next_level() as u128]);
    }
    stimulus.extend((0..(golden.len() * 4 + 2) * 10 * cpb).map(|_| vec![1, 1]));
    let press = stimulus.len();
    stimulus.extend((0..6).map(|_| vec![0, 1]));
    stimulus.extend((0..10).map(|_| vec![1, 1]));

    let inputs = [Port::new("btn_n", 1), Port::new("uart_rx", 1)];
    let outputs = [Port::new("uart_tx", 1), Port::new("led_heartbeat", 1), Port::new("led_overflow", 1)];
    let mut uut = BoardTop::new(&spec);
    let rust = simulate(
        &mut uut,
        |u| &mut u.clk_osc,
        &stimulus,
        |u, r| {
            u.btn_n.next = r[0] != 0;
            u.uart_rx.next = r[1] != 0;
        },
        |u| vec![u.uart_tx.val() as u128, u.led_heartbeat.val() as u128, u.led_overflow.val() as u128],
    )
    .unwrap();
    let verilog = format!("{}\n{VENDOR_SIM_MODELS}", board_verilog(&spec).unwrap());
    let icarus = replay(&verilog, BOARD_TOP, "clk_osc", &inputs, &outputs, &stimulus)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(c) = (0..rust.len()).find(|&c| rust[c] != icarus[c]) {
        panic!(
            "rust-hdl {:?} and Icarus {:?} (with vendor_sim.v) differ first at cycle {c}",
            rust[c], icarus[c]
        );
    }

    // active-low LEDs: 1 = off
    assert!(icarus.iter().all(|t| t[2] == 1), "overflow LED lit");
    let hb: Vec<bool> = icarus.iter().map(|t| t[1] == 0).collect();
    let toggles: Vec<usize> = (1..press).filter(|&c| hb[c] != hb[c - 1]).collect();
    // lock after 8 edges, 3 synchroniser stages, then 20 clocks per half period
    assert_eq!(toggles[0], 8 + 3 + 20, "first toggle: {toggles:?}");
    assert!(toggles.windows(2).all(|w| w[1] - w[0] == 20), "{toggles:?}");
    assert!(hb[press + 4..press + 9].iter().all(|&on| !on), "the button resets the heartbeat");

    let mut dec = LineDecoder::new(cpb);
    let bytes: Vec<u8> = icarus
        .iter()
        .filter_map(|t| dec.sample(t[0] == 1))
        .map(|r| match r {
            Received::Byte(b) => b,
            Received::FrameError => panic!("framing error on uart_tx"),
        })
        .collect();
    let got: Vec<u32> = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(got, golden);
}

/// nextpnr's `--report` JSON, as nextpnr-ice40 0.4 writes it (critical paths shortened) and
/// with two clocks as nextpnr-ecp5 writes it: Fmax and utilisation come from the keys, not
/// from the log's wording.
/// A run that missed only the clock gives its Fmax (the slowest clock's); any other failure
/// gives nothing, so the flow stops instead of trying another seed.
#[test]
fn a_timing_miss_is_told_from_other_nextpnr_failures() {
    let miss = "ERROR: Max frequency for clock 'beat.clock_$glb_clk': 28.35 MHz (FAIL at 30.00 MHz)\n\
                ERROR: Max frequency for clock 'uart.clk': 29.10 MHz (FAIL at 30.00 MHz)\nInfo: done";
    assert_eq!(super::flow::missed_clock(miss), Some(28.35));
    assert_eq!(super::flow::missed_clock("ERROR: Unable to place cell 'x'\nInfo: Program finished"), None);
    assert_eq!(
        super::flow::missed_clock("Info: Max frequency for clock 'c': 31.00 MHz (PASS at 30.00 MHz)"),
        None
    );
}

/// Each nextpnr seed's time limit: an iCE40 seed that does not finish routing in 10 min moves
/// on (a routing run takes 1-4 min here), while an ECP5 run under WebAssembly, which takes
/// 10-30 min, keeps the hour every tool gets.
#[test]
fn nextpnr_seed_limits_fit_each_family() {
    use super::flow::{nextpnr_seed_timeout, FLOW_TOOL_TIMEOUT};
    assert_eq!(nextpnr_seed_timeout(Family::Ice40), std::time::Duration::from_secs(600));
    assert_eq!(nextpnr_seed_timeout(Family::Ecp5), FLOW_TOOL_TIMEOUT);
    assert!(FLOW_TOOL_TIMEOUT >= std::time::Duration::from_secs(30 * 60));
}

#[test]
fn nextpnr_reports_parse() {
    let ice40 = r#"{"critical_paths": [{"from": "posedge clk", "path": [], "to": "posedge clk"}],
        "fmax": {"clk$SB_IO_IN_$glb_clk": {"achieved": 31.25, "constraint": 30}},
        "utilization": {"ICESTORM_DSP": {"available": 8, "used": 8},
                        "ICESTORM_LC": {"available": 5280, "used": 3401},
                        "ICESTORM_RAM": {"available": 30, "used": 24}}}"#;
    let (clocks, util) = parse_nextpnr_report(ice40).unwrap();
    assert_eq!(
        clocks,
        vec![ClockTiming { name: "clk$SB_IO_IN_$glb_clk".into(), fmax_mhz: 31.25, target_mhz: 30.0 }]
    );
    assert_eq!(
        util,
        vec![
            Utilisation { resource: "ICESTORM_DSP".into(), used: 8, available: 8 },
            Utilisation { resource: "ICESTORM_LC".into(), used: 3401, available: 5280 },
            Utilisation { resource: "ICESTORM_RAM".into(), used: 24, available: 30 },
        ]
    );
    let ecp5 = r#"{"fmax": {"$glbnet$clk": {"achieved": 71.3, "constraint": 50.0},
                            "clk_osc$TRELLIS_IO_IN": {"achieved": 250.0, "constraint": 25.0}},
                   "utilization": {"MULT18X18D": {"available": 28, "used": 22},
                                   "TRELLIS_COMB": {"available": 24288, "used": 4321}},
                   "detailed_net_timings": []}"#;
    let (clocks, util) = parse_nextpnr_report(ecp5).unwrap();
    assert_eq!(clocks.len(), 2);
    assert_eq!(clocks[0].name, "$glbnet$clk");
    assert_eq!((clocks[0].fmax_mhz, clocks[0].target_mhz), (71.3, 50.0));
    assert_eq!(util[0], Utilisation { resource: "MULT18X18D".into(), used: 22, available: 28 });
    assert!((util[0].percent() - 78.57).abs() < 0.01);
    // a log instead of the report is an error, not an empty report
    assert!(parse_nextpnr_report("Info: Max frequency for clock 'clk': 31.25 MHz").is_err());
}

/// Yosys 0.23's `stat -json` (its own indentation): the design's cells by type.
#[test]
fn yosys_stat_json_parses() {
    let stat = r#"{
   "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
   "invocation": "stat -json ",
   "modules": {
      "\\protobrain_top": {
         "num_wires":         10,
         "num_cells":         3277,
         "num_cells_by_type": {
            "SB_CARRY": 814,
            "SB_LUT4": 2455,
            "SB_MAC16": 8
         }
      }
   },
      "design": {
         "num_cells":         3277,
         "num_cells_by_type": {
            "SB_CARRY": 814,
            "SB_LUT4": 2455,
            "SB_MAC16": 8
         }
      }
}"#;
    let cells = parse_yosys_stat_json(stat, "protobrain_top").unwrap();
    assert_eq!(cells.len(), 3);
    assert_eq!(cells["SB_LUT4"], 2455);
    assert_eq!(cells["SB_MAC16"], 8);
    // without the design total, the top module's
    let no_design =
        stat.split("\n      \"design\"").next().unwrap().trim_end().trim_end_matches(',').to_string() + "\n}";
    assert_eq!(parse_yosys_stat_json(&no_design, "protobrain_top").unwrap()["SB_CARRY"], 814);
    assert!(parse_yosys_stat_json("Number of cells: 3", "top").is_err());
}

/// A missing tool is a clear error, not a panic (checked with a name no machine has).
#[test]
fn a_missing_tool_says_what_to_install() {
    assert_eq!(flow::find_tool(&["protobrain-no-such-tool"]), None);
    let err = FlowError::ToolMissing { tool: "nextpnr-ecp5".into(), hint: "install it" };
    assert_eq!(err.to_string(), "`nextpnr-ecp5` not found on PATH or in $PROTOBRAIN_TOOLS_DIR: install it");
}

/// The whole iCEBreaker flow (emit, Yosys, nextpnr-ice40, icepack; ~1-2 minutes here): the
/// design fits, meets its target clock, uses the 8 DSPs, block RAM for the core and the two
/// SPRAMs for the UART FIFOs, and the report files are written and parse.
#[test]
fn icebreaker_flow_builds_fits_and_meets_timing() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![];
    let report = build_bitstream(Board::Icebreaker, dir.path(), |l| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", lines.join("\n"));
    eprintln!("{}", report.to_markdown());
    for stage in ["emit", "yosys", "nextpnr", "pack"] {
        assert!(lines.iter().any(|l| l.starts_with(&format!("[icebreaker] {stage}: done in "))), "{lines:?}");
    }
    assert!(report.meets_timing(), "Fmax {:.1} MHz < {:.1} MHz", report.fmax_mhz(), report.target_mhz);
    let lc = report.resource("ICESTORM_LC").expect("LC utilisation");
    assert!(lc.used > 0 && lc.used <= lc.available, "{lc:?}");
    assert_eq!(report.dsps(), 8, "{:?}", report.cells);
    assert_eq!(report.sprams(), 2, "UART FIFOs in SPRAM: {:?}", report.cells);
    assert_eq!(report.block_rams(), 24, "scratchpad 16 + accumulators 8: {:?}", report.cells);
    assert_eq!(report.resource("ICESTORM_PLL").map(|u| u.used), Some(1));
    // a UP5K bitstream is always 104090 bytes
    assert_eq!(std::fs::metadata(&report.bitstream).unwrap().len(), 104_090);
    let json = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    assert_eq!(json, report.to_json());
    assert!(json.contains("\"board\": \"icebreaker\"") && json.contains("\"meets_timing\": true"), "{json}");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("protobrain bitstream --board icebreaker"), "{md}");
}

/// Both ULX3S flows (Yosys `synth_ecp5`, nextpnr-ecp5 and ecppack from YoWASP, i.e.
/// WebAssembly: measured 9.5 min for the 25F and 29 min for the 85F on this project's 2-core
/// machine). Ignored by default; run with
/// `PROTOBRAIN_TOOLS_DIR=~/.local/yowasp/bin cargo test -p protobrain-hdl --release ecp5_flows -- --ignored`.
#[test]
#[ignore]
fn ecp5_flows_build_fit_and_meet_timing() {
    for board in [Board::Ulx3s25f, Board::Ulx3s85f] {
        let dir = tempfile::tempdir().unwrap();
        let report =
            build_bitstream(board, dir.path(), |l| eprintln!("{l}")).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{}", report.to_markdown());
        assert!(report.meets_timing(), "{board}: Fmax {:.1} MHz", report.fmax_mhz());
        let dim = report.config.dim() as u64;
        assert!(report.dsps() >= dim * dim, "{board}: {:?}", report.cells);
        let comb = report.resource("TRELLIS_COMB").expect("TRELLIS_COMB utilisation");
        assert!(comb.used <= comb.available);
        assert!(std::fs::metadata(&report.bitstream).unwrap().len() > 10_000);
    }
}
