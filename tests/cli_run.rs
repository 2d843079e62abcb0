//! `protobrain run`: device refusals fail the command, config flags cannot contradict a .json
//! program, long valid programs are not cut short, and `cycles` means what `matmul` means.

mod common;

use std::fs;
use std::path::Path;

use common::{protobrain, write_npy};
use npyz::Order;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn words_to_bin(path: &Path, words: &[u32]) {
    fs::write(path, words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

/// X (64, 32) and W (32, 16) compiled for the default preset (DIM 8) as p.json and p.bin.
fn compiled(d: &Path) {
    let x: Vec<i8> = (0..64 * 32).map(|i| (i % 200 - 100) as i8).collect();
    let w: Vec<i8> = (0..32 * 16).map(|i| (i % 7 - 3) as i8).collect();
    write_npy(&d.join("X.npy"), &[64, 32], Order::C, &x);
    write_npy(&d.join("W.npy"), &[32, 16], Order::C, &w);
    let r = protobrain(&[
        "compile",
        "layer",
        "-i",
        s(&d.join("X.npy")),
        "-w",
        s(&d.join("W.npy")),
        "-o",
        s(&d.join("p.json")),
        "--bin",
        s(&d.join("p.bin")),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn refused_commands_fail_with_one_line_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    compiled(d);
    // a DIM 8 stream on a DIM 4 device: its LOAD_WEIGHTS, WRITE_ACT and LOAD_BIAS have the
    // wrong lengths
    for backend in ["golden", "native"] {
        let r = protobrain(&["run", "-p", s(&d.join("p.bin")), "--dim", "4", "--backend", backend]);
        assert_eq!(r.code, Some(2), "{backend}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 4, "{}", r.stderr);
        assert!(lines[0]
            .starts_with("error: device: refused 8 command(s) with opcode LOAD_WEIGHTS (0x10): bad length"));
        assert!(lines[1].starts_with("error: device: refused 4 command(s) with opcode WRITE_ACT (0x20)"));
        assert!(lines[2].starts_with("error: device: refused 2 command(s) with opcode LOAD_BIAS (0x11)"));
        assert!(lines[3].starts_with("error: device: refused 14 of the 28 commands of"), "{}", lines[3]);
        assert!(!r.stderr.contains("CommandError"), "no Rust debug text: {}", r.stderr);
    }
}

#[test]
fn config_flags_may_only_repeat_a_json_programs_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    compiled(d);
    let p = d.join("p.json");
    let r = protobrain(&["run", "-p", s(&p), "--dim", "4"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.starts_with("error: --dim: the program was compiled for DIM 8"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    let r = protobrain(&["run", "-p", s(&p), "--preset", "ecp5-25k"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    // repeating the program's own configuration is fine
    let r = protobrain(&["run", "-p", s(&p), "--dim", "8"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// The number before "cycles" on the last line of `run`'s report.
fn run_cycles(stdout: &str) -> u64 {
    let last = stdout.lines().last().unwrap();
    last.split_whitespace().rev().nth(1).unwrap().parse().unwrap()
}

#[test]
fn cycles_mean_first_word_in_to_last_response_word_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    compiled(d);
    let r = protobrain(&["run", "-p", s(&d.join("p.json")), "--backend", "native"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let run = run_cycles(&r.stdout);
    let rep = d.join("r.json");
    let r = protobrain(&[
        "matmul",
        "-i",
        s(&d.join("X.npy")),
        "-w",
        s(&d.join("W.npy")),
        "--backend",
        "native",
        "--report",
        s(&rep),
        "-o",
        s(&d.join("Y.npy")),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&fs::read_to_string(&rep).unwrap()).unwrap();
    // matmul's stream is the same program after the INFO the driver sends on opening the
    // device, which takes 6 cycles (docs/architecture.md, cycle table); no idle tail in either
    assert_eq!(report["cycles"].as_u64().unwrap(), run + 6, "run: {run}, matmul: {report}");
}

#[test]
fn long_valid_programs_are_not_cut_short() {
    // 20,000 MATMULs of 512 rows: 10.2 M cycles, far past the old limit of
    // 1,000,000 + 64 per word (4.8 M)
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("long.bin");
    let mut words = Vec::new();
    for _ in 0..20_000 {
        words.extend([0x3000_0002, 512 << 16, 1 << 16]);
    }
    words.extend([0x0200_0001, 7]);
    words_to_bin(&bin, &words);
    let r = protobrain(&["run", "-p", s(&bin), "--backend", "native"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("SYNC: token 0x00000007"), "{}", r.stdout);
    assert!(run_cycles(&r.stdout) > 20_000 * 512, "{}", r.stdout);
}

/// A simulated board behind a pseudo-terminal: the Verilator model of the UART top (bridge +
/// core), driven bit by bit, on the master side; the CLI opens the slave as its serial port, so
/// `--backend serial` runs exactly as on a board (minus the wire). Needs the Verilator model.
#[cfg(feature = "verilator")]
struct PtyBoard {
    path: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<sim::uart_board::SimulatedBoard>>,
    _slave: serialport::TTYPort,
}

#[cfg(feature = "verilator")]
impl PtyBoard {
    fn new(cfg: &spec::Config) -> Self {
        use serialport::SerialPort;
        use std::io::{ErrorKind, Read, Write};
        use std::sync::atomic::Ordering;
        let (mut master, slave) = serialport::TTYPort::pair().expect("a pseudo-terminal pair");
        let path = slave.name().expect("the slave's path");
        master.set_timeout(std::time::Duration::from_millis(1)).unwrap();
        let mut board = sim::uart_board::SimulatedBoard::new(cfg, 4, 8192).expect("the UART model");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                match master.read(&mut buf) {
                    Ok(n) => board.write_all(&buf[..n]).unwrap(),
                    Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
                    Err(e) => panic!("pty master: {e}"),
                }
                match board.read(&mut buf) {
                    Ok(n) => master.write_all(&buf[..n]).unwrap(),
                    Err(e) if e.kind() == ErrorKind::TimedOut => {}
                    Err(e) => panic!("simulated board: {e}"),
                }
            }
            board
        });
        PtyBoard { path, stop, thread: Some(thread), _slave: slave }
    }

    /// Stop the board; its byte counts.
    fn finish(mut self) -> sim::uart_board::SimulatedBoard {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the board thread")
    }
}

/// `run --backend serial` sends a compiled program to a board (here the bit-level UART model
/// behind a pty) and prints the same responses as the golden device; a program for another
/// configuration is refused by the board's INFO (exit 2).
#[cfg(feature = "verilator")]
#[test]
fn a_program_runs_on_a_board_over_its_serial_port() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = spec::Config::new(2, 16, 8).unwrap();
    let x: Vec<i8> = (0..5 * 6).map(|i| (i * 7 % 23 - 11) as i8).collect();
    let w: Vec<i8> = (0..6 * 3).map(|i| (i % 5 - 2) as i8).collect();
    write_npy(&d.join("X.npy"), &[5, 6], Order::C, &x);
    write_npy(&d.join("W.npy"), &[6, 3], Order::C, &w);
    let config = ["--dim", "2", "--scratch-rows", "16", "--acc-rows", "8"];
    let (xp, wp, pj, pb) = (d.join("X.npy"), d.join("W.npy"), d.join("p.json"), d.join("p.bin"));
    let mut args = vec!["compile", "layer", "-i", s(&xp), "-w", s(&wp), "--raw"];
    args.extend(config);
    args.extend(["-o", s(&pj), "--bin", s(&pb)]);
    let r = protobrain(&args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let golden = protobrain(&["run", "-p", s(&d.join("p.json"))]);
    assert_eq!(golden.code, Some(0), "{}", golden.stderr);

    let board = PtyBoard::new(&cfg);
    let port = board.path.clone();
    let r = protobrain(&["run", "-p", s(&d.join("p.json")), "--backend", "serial", "--port", &port]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // the same responses, line for line (the summary line differs: no cycles on a board)
    let body = |out: &str| {
        out.lines().skip(1).filter(|l| !l.contains(" responses (")).map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(body(&r.stdout), body(&golden.stdout));
    assert!(r.stdout.contains("to serial on") && r.stdout.contains("a board counts its own"), "{}", r.stdout);
    // a .bin for DIM 4 on this DIM 2 board: its INFO disagrees, refused before any word
    let r =
        protobrain(&["run", "-p", s(&d.join("p.bin")), "--dim", "4", "--backend", "serial", "--port", &port]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--backend serial: the device is"), "{}", r.stderr);
    let sim = board.finish();
    let words = std::fs::metadata(d.join("p.bin")).unwrap().len() / 4;
    // INFO twice (1 word each) and the program once
    assert_eq!(sim.bytes_written(), 4 * (words + 2), "the board got the program's words");
}
