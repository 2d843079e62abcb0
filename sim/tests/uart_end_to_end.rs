//! The driver talking to a simulated board exactly as it talks to a real one: `Device` over
//! `SerialTransport` over `SimulatedBoard`, i.e. 4 bytes per word, each byte serialised bit by
//! bit (8N1, 4 clocks per bit) into the Verilator model of `protobrain_uart` (UART bridge +
//! core), and the answers decoded bit by bit from its `tx` line.

use std::time::Instant;

use driver::{Device, DriverError, Layer, OutputKind, SerialTransport};
use nalgebra::{DMatrix, DVector};
use sim::uart_board::SimulatedBoard;
use spec::isa::{header, opcode};
use spec::{golden, Command, CommandError, Config, ErrorCode, Quant, Response};

const CLOCKS_PER_BIT: usize = 4;
/// Smaller than the boards' 16 KiB, still above the driver's 4 KiB window of responses.
const FIFO_DEPTH: usize = 8192;

fn cfg() -> Config {
    Config::new(2, 16, 8).unwrap()
}

fn board() -> Device<SerialTransport<SimulatedBoard>> {
    let cfg = cfg();
    let board = SimulatedBoard::new(&cfg, CLOCKS_PER_BIT, FIFO_DEPTH).expect("Verilator model of the board");
    Device::open(SerialTransport::new(board), &cfg).expect("the board answers INFO")
}

fn report(what: &str, dev: &Device<SerialTransport<SimulatedBoard>>, t0: Instant) {
    let b = dev.transport().port();
    eprintln!(
        "{what}: {} cycles, {} bytes out, {} bytes back, {:.2} s",
        b.model().cycle(),
        b.bytes_written(),
        b.bytes_read(),
        t0.elapsed().as_secs_f64()
    );
}

fn problem() -> (DMatrix<i8>, DMatrix<i8>, DVector<i32>) {
    let mut rng = spec::rng::SplitMix64::new(11);
    let x = DMatrix::from_fn(7, 9, |_, _| rng.i8());
    let w = DMatrix::from_fn(9, 5, |_, _| rng.i8());
    let b = DVector::from_fn(5, |n, _| (n as i32 - 2) * 3001);
    (x, w, b)
}

#[test]
fn a_gemm_with_bias_quant_and_relu_over_the_serial_line_equals_the_golden_model() {
    let t0 = Instant::now();
    let mut dev = board();
    let (x, w, b) = problem();
    let q = Quant::new(3, 10, true).unwrap();
    let layer = Layer::new(w.clone(), b.clone(), q).unwrap();
    let y = dev.layer(&x, &layer, OutputKind::Int8).unwrap();
    let want = golden::layer(&x, &w, &b, q).unwrap();
    assert_eq!(y.as_int8(), Some(&want));
    // ReLU did something and the result is not trivially zero
    assert!(want.iter().any(|&v| v == 0) && want.iter().any(|&v| v > 0), "{want}");
    let board = dev.transport().port();
    assert!(!board.model().overflow());
    assert_eq!(board.bytes_waiting(), 0, "no stray bytes left on the line");
    report("int8 7x9x5", &dev, t0);
}

#[test]
fn a_raw_gemm_read_back_as_int32_equals_layer_raw() {
    let t0 = Instant::now();
    let mut dev = board();
    let (x, w, b) = problem();
    let layer = Layer::new(w.clone(), b.clone(), Quant::new(1, 0, false).unwrap()).unwrap();
    let y = dev.layer(&x, &layer, OutputKind::Raw).unwrap();
    assert_eq!(y.as_raw(), Some(&golden::layer_raw(&x, &w, &b).unwrap()));
    // every word of the session crossed the line as 4 bytes, both ways
    let stats = dev.stats();
    let board = dev.transport().port();
    assert_eq!(board.bytes_written(), 4 * stats.words_sent);
    assert_eq!(board.bytes_read(), 4 * stats.words_received);
    assert!(board.model().cycle() >= 40 * board.bytes_written(), "each byte takes 10 bits of 4 clocks");
    report("raw 7x9x5", &dev, t0);
}

#[test]
fn malformed_commands_get_their_0xff_answer_and_the_link_stays_in_step() {
    let mut dev = board();
    // an unknown opcode with two payload words: skipped whole, answered with code 1
    dev.send_words(&[header(0x77, 2), 0xDEAD_BEEF, 0x0102_0304]).unwrap();
    assert_eq!(
        dev.read_response().unwrap(),
        Response::Error(CommandError { opcode: 0x77, code: ErrorCode::UnknownOpcode })
    );
    // SYNC with no token: bad length, code 2
    dev.send_words(&[header(opcode::SYNC, 0)]).unwrap();
    assert_eq!(
        dev.read_response().unwrap(),
        Response::Error(CommandError { opcode: opcode::SYNC, code: ErrorCode::BadLength })
    );
    // rows past the end of the accumulator memory: out of range, code 3, through `execute`
    match dev.execute(&Command::ReadAcc { src: 7, n: 2 }) {
        Err(DriverError::Device(e)) => {
            assert_eq!(e, CommandError { opcode: opcode::READ_ACC, code: ErrorCode::OutOfRange })
        }
        other => panic!("expected the device's 0xFF answer, got {other:?}"),
    }
    // after an error the driver refuses to go on until the stream is known to be in step
    assert!(matches!(dev.sync(), Err(DriverError::OutOfSync)));
    assert_eq!(dev.resync().unwrap(), 0);
    // the byte phase survived: a round trip of real data still works
    let rows = vec![vec![5i8, -6], vec![127, -128]];
    dev.write_act(3, &rows).unwrap();
    assert_eq!(dev.read_act(3, 2).unwrap(), rows);
    dev.sync().unwrap();
}

#[test]
fn lost_words_leave_the_board_inside_a_command_and_resync_recovers_it() {
    let mut dev = board();
    dev.set_timeout(std::time::Duration::from_millis(200));
    // a WRITE_ACT of 2 rows (DIM 2: one word a row) whose last row word was lost on the line
    dev.send_words(&[header(opcode::WRITE_ACT, 3), 2 << 16, 0x0000_0102]).unwrap();
    // the SYNC is taken as the missing payload word and its token as a header
    assert!(dev.sync().is_err());
    assert!(!dev.is_in_sync());
    dev.resync().unwrap();
    let rows = vec![vec![5i8, -6], vec![127, -128]];
    dev.write_act(3, &rows).unwrap();
    assert_eq!(dev.read_act(3, 2).unwrap(), rows);
}

#[test]
fn a_silent_board_times_out_instead_of_hanging() {
    let mut dev = board();
    dev.set_timeout(std::time::Duration::from_millis(200));
    let t0 = Instant::now();
    // no command sent: nothing can come back
    match dev.read_response() {
        Err(DriverError::Transport(driver::TransportError::Timeout { wanted: 1, got: 0, .. })) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t0.elapsed().as_secs() < 5, "took {:?}", t0.elapsed());
    dev.resync().unwrap();
    dev.sync().unwrap();
}

#[test]
fn a_host_breaking_the_fifo_contract_gets_an_overflow_error_not_wrong_data() {
    // 16-byte FIFOs; READ_ACC of all 8 rows answers 17 words (68 bytes) for 2 words (8 bytes)
    // sent, so the transmit side falls behind, the core stops taking commands and the receive
    // FIFO fills: the bridge drops bytes and raises `overflow`, which the board reports.
    let cfg = cfg();
    let board = SimulatedBoard::new(&cfg, CLOCKS_PER_BIT, 16).unwrap();
    let mut dev = Device::open(SerialTransport::new(board), &cfg).unwrap();
    let read_all = Command::ReadAcc { src: 0, n: 8 }.encode(cfg.dim()).unwrap();
    let burst: Vec<u32> = read_all.iter().copied().cycle().take(read_all.len() * 40).collect();
    dev.send_words(&burst).unwrap();
    let mut error = None;
    for _ in 0..40 {
        match dev.read_response() {
            Ok(r) => assert!(matches!(r, Response::ReadAcc { .. }), "{r:?}"),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let e = error.expect("40 back-to-back READ_ACCs overflow a 16-byte FIFO");
    assert!(e.to_string().contains("receive FIFO (16 bytes) overflowed"), "{e}");
    assert!(dev.transport().port().model().overflow());
}

/// Words sent and received by `resync`, its discards, and its wall time.
fn timed_resync(dev: &mut Device<SerialTransport<SimulatedBoard>>) -> (u64, u64, usize, f64) {
    let before = dev.stats();
    let t0 = Instant::now();
    let discarded = dev.resync().expect("resync recovers the board");
    let after = dev.stats();
    (
        after.words_sent - before.words_sent,
        after.words_received - before.words_received,
        discarded,
        t0.elapsed().as_secs_f64(),
    )
}

/// After a recovery the board computes again: a GEMM equals the golden model (the program
/// loads everything it uses, so the reset state does not matter).
fn still_computes(dev: &mut Device<SerialTransport<SimulatedBoard>>) {
    let (x, w, b) = problem();
    let q = Quant::new(3, 10, true).unwrap();
    let y = dev.layer(&x, &Layer::new(w.clone(), b.clone(), q).unwrap(), OutputKind::Int8).unwrap();
    assert_eq!(y.as_int8(), Some(&golden::layer(&x, &w, &b, q).unwrap()));
}

/// A header corrupted to announce 2^24 - 1 payload words: without a BREAK the board swallows
/// the next 16.8 M words (11 minutes at 1 Mbaud); `resync` sends a BREAK when its SYNC goes
/// unanswered and recovers in one round trip: 4 words sent (two SYNCs), 2 echoes back.
#[test]
fn a_corrupted_length_is_recovered_by_one_break() {
    let mut dev = board();
    dev.set_timeout(std::time::Duration::from_millis(200));
    dev.send_words(&[header(0x77, spec::isa::MAX_LEN), 1, 2, 3]).unwrap();
    assert!(dev.sync().is_err(), "the SYNC is swallowed as payload");
    let (sent, received, discarded, secs) = timed_resync(&mut dev);
    eprintln!(
        "corrupted length: resync sent {sent} words, received {received}, discarded {discarded}, {secs:.2} s"
    );
    assert_eq!((sent, received, discarded), (4, 2, 0));
    assert_eq!(dev.stats().link_resets, 1);
    assert_eq!(dev.transport().port().breaks(), 1);
    assert!(!dev.transport().port().model().overflow());
    still_computes(&mut dev);
}

/// Lost words in a long payload: a WRITE_ACT of 8 rows (8 payload words at DIM 2) of which
/// only the first arrived swallows the failed call's SYNC and `resync`'s first SYNC, so
/// `resync` sends a BREAK.
#[test]
fn lost_words_of_a_long_payload_are_recovered_by_a_break() {
    let mut dev = board();
    dev.set_timeout(std::time::Duration::from_millis(200));
    dev.send_words(&[header(opcode::WRITE_ACT, 9), 8 << 16, 0x0102]).unwrap();
    assert!(dev.sync().is_err());
    let (sent, _, _, _) = timed_resync(&mut dev);
    assert_eq!(sent, 4);
    assert_eq!(dev.stats().link_resets, 1);
    still_computes(&mut dev);
}

/// Garbage words (random headers, lengths and payloads: refused commands, long answers,
/// commands left waiting for payload) and then `resync`: the board is back in step every time,
/// within the bound of docs/driver.md: at most one BREAK, 4 words sent with it (5 when the
/// first SYNC is answered and no BREAK is needed), and the discards capped by twice the longest
/// answer plus twice the words sent.
#[test]
fn garbage_words_are_recovered_within_the_bound() {
    let mut dev = board();
    dev.set_timeout(std::time::Duration::from_millis(200));
    let cfg = cfg();
    let cap = 2 * (1 + cfg.acc_rows() * cfg.dim()) + 2 * 5;
    let mut rng = spec::rng::SplitMix64::new(99);
    for round in 0..6 {
        // a random command stream (some malformed) cut at a random word, then random words
        let mut garbage = spec::stimulus::random_stream(
            &cfg,
            &mut rng,
            spec::stimulus::StreamShape { commands: 12, max_rows: 8, malformed: 0.3 },
        );
        garbage.truncate(rng.below(garbage.len() as u64 + 1) as usize);
        garbage.extend((0..rng.below(4)).map(|_| rng.next_u64() as u32));
        dev.send_words(&garbage).unwrap();
        let _ = dev.sync();
        let resets = dev.stats().link_resets;
        let (sent, _, discarded, secs) = timed_resync(&mut dev);
        eprintln!(
            "garbage round {round}: resync sent {sent} words, discarded {discarded}, {} BREAK(s), {secs:.2} s",
            dev.stats().link_resets - resets
        );
        let broke = dev.stats().link_resets - resets;
        assert!(broke <= 1 && sent == 5 - broke, "round {round}: {sent} words sent, {broke} BREAKs");
        assert!(discarded <= cap, "round {round}: {discarded} words discarded");
        let rows = vec![vec![round as i8, -6], vec![127, -128]];
        dev.write_act(3, &rows).unwrap();
        assert_eq!(dev.read_act(3, 2).unwrap(), rows, "round {round}");
    }
    still_computes(&mut dev);
}
