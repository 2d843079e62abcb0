//! Tests of the UART blocks: bit-level loopback and receiver tolerance, the bridge's packing,
//! flow control and overflow, and the whole core driven over its serial line against the
//! golden device. Every stimulus runs through the rust-hdl model and the emitted Verilog under
//! Icarus, and the two traces must be identical.

use super::*;
use crate::replay::{replay, simulate, verilator_lint, Port};
use spec::isa::{decode_responses, header, opcode, Command, Response};
use spec::stimulus::{random_stream, Rng, StreamShape};
use spec::{GoldenDevice, Quant};

/// Runs `uut` in rust-hdl and its Verilog (top `top`, clock `clock`) under Icarus on the same
/// stimulus; asserts the traces agree and returns one.
fn lockstep<B: Block>(
    mut uut: B,
    clock: impl Fn(&mut B) -> &mut Signal<In, Clock>,
    verilog: Option<(&str, &str, &str)>,
    (inputs, outputs): (&[Port], &[Port]),
    stimulus: &[Vec<u128>],
    apply: impl FnMut(&mut B, &[u128]),
    sample: impl FnMut(&B) -> Vec<u128>,
) -> Vec<Vec<u128>> {
    let rust = simulate(&mut uut, clock, stimulus, apply, sample).expect("rust-hdl simulation");
    let generated;
    let (v, top, clk) = match verilog {
        Some(v) => v,
        None => {
            generated = generate_verilog(&uut);
            (generated.as_str(), "top", "clock")
        }
    };
    let icarus = replay(v, top, clk, inputs, outputs, stimulus).unwrap_or_else(|e| panic!("Icarus: {e}"));
    for (c, (r, i)) in rust.iter().zip(&icarus).enumerate() {
        assert_eq!(r, i, "rust-hdl and Icarus differ at cycle {c} (outputs {outputs:?})");
    }
    assert_eq!(rust.len(), icarus.len());
    rust
}

/// Decodes a per-cycle line trace into what a far-end receiver sees.
fn decode_line(cpb: usize, levels: impl IntoIterator<Item = bool>) -> Vec<Received> {
    let mut dec = LineDecoder::new(cpb);
    levels.into_iter().filter_map(|l| dec.sample(l)).collect()
}

fn bytes_of(rx: &[Received]) -> Vec<u8> {
    rx.iter()
        .map(|r| match r {
            Received::Byte(b) => *b,
            Received::FrameError => panic!("framing error in {rx:?}"),
        })
        .collect()
}

/// A byte FIFO feeding a transmitter whose line drives a receiver.
#[derive(LogicBlock)]
struct TxRxLoop {
    clock: Signal<In, Clock>,
    rst: Signal<In, Bit>,
    push: Signal<In, Bit>,
    data: Signal<In, Bits<8>>,
    line: Signal<Out, Bit>,
    rx_data: Signal<Out, Bits<8>>,
    rx_valid: Signal<Out, Bit>,
    rx_ferr: Signal<Out, Bit>,
    dropped: Signal<Out, Bit>,
    fifo: ByteFifo,
    utx: UartTx,
    urx: UartRx,
}

impl TxRxLoop {
    fn new(cpb: usize, depth: usize) -> Self {
        TxRxLoop {
            clock: Default::default(),
            rst: Default::default(),
            push: Default::default(),
            data: Default::default(),
            line: Default::default(),
            rx_data: Default::default(),
            rx_valid: Default::default(),
            rx_ferr: Default::default(),
            dropped: Default::default(),
            fifo: ByteFifo::new(depth),
            utx: UartTx::new(cpb),
            urx: UartRx::new(cpb),
        }
    }
}

impl Logic for TxRxLoop {
    #[hdl_gen]
    fn update(&mut self) {
        self.fifo.clock.next = self.clock.val();
        self.utx.clock.next = self.clock.val();
        self.urx.clock.next = self.clock.val();
        self.fifo.rst.next = self.rst.val();
        self.utx.rst.next = self.rst.val();
        self.urx.rst.next = self.rst.val();
        self.fifo.push.next = self.push.val();
        self.fifo.data_in.next = self.data.val();
        self.dropped.next = self.fifo.dropped.val();
        self.utx.data.next = self.fifo.data_out.val();
        self.utx.valid.next = self.fifo.valid.val();
        self.fifo.pop.next = self.utx.ready.val();
        self.line.next = self.utx.tx.val();
        self.urx.rx.next = self.utx.tx.val();
        self.rx_data.next = self.urx.data.val();
        self.rx_valid.next = self.urx.valid.val();
        self.rx_ferr.next = self.urx.frame_error.val();
    }
}

/// TX -> RX at the bit level with random bytes pushed in bursts through the FIFO: the receiver
/// gets every byte, an independent line decoder agrees, back-to-back frames are exactly
/// `10 * cpb + 1` clocks apart, and the FIFO drops pushes only when full.
#[test]
fn tx_to_rx_loopback_random_bytes() {
    for (cpb, seed) in [(4usize, 1u64), (5, 2), (13, 3)] {
        let depth = 16;
        let mut rng = Rng::new(seed);
        let mut stimulus = vec![vec![1, 0, 0]];
        let mut sent = vec![];
        // bursts of 1..=6 pushes, then a gap long enough for the FIFO to drain below its depth
        while sent.len() < 40 {
            for _ in 0..1 + rng.below(6) {
                let b = rng.below(256) as u8;
                sent.push(b);
                stimulus.push(vec![0, 1, b as u128]);
            }
            let gap = rng.below(10 * cpb as u64 * 7);
            stimulus.extend((0..gap).map(|_| vec![0, 0, 0]));
        }
        stimulus.extend((0..(sent.len() + 2) * 10 * cpb).map(|_| vec![0, 0, 0]));
        let inputs = [Port::new("rst", 1), Port::new("push", 1), Port::new("data", 8)];
        let outputs = [
            Port::new("line", 1),
            Port::new("rx_data", 8),
            Port::new("rx_valid", 1),
            Port::new("rx_ferr", 1),
            Port::new("dropped", 1),
        ];
        let trace = lockstep(
            TxRxLoop::new(cpb, depth),
            |u| &mut u.clock,
            None,
            (&inputs, &outputs),
            &stimulus,
            |u, r| {
                u.rst.next = r[0] != 0;
                u.push.next = r[1] != 0;
                u.data.next = (r[2] as u64).into();
            },
            |u| {
                vec![
                    u.line.val() as u128,
                    u.rx_data.val().to_u64() as u128,
                    u.rx_valid.val() as u128,
                    u.rx_ferr.val() as u128,
                    u.dropped.val() as u128,
                ]
            },
        );
        assert!(trace.iter().all(|t| t[4] == 0), "cpb {cpb}: no push may be dropped in this test");
        assert!(trace.iter().all(|t| t[3] == 0), "cpb {cpb}: no framing error expected");
        let got: Vec<u8> = trace.iter().filter(|t| t[2] == 1).map(|t| t[1] as u8).collect();
        assert_eq!(got, sent, "cpb {cpb}: receiver");
        assert_eq!(bytes_of(&decode_line(cpb, trace.iter().map(|t| t[0] == 1))), sent, "cpb {cpb}: line");
        let starts = frame_starts(cpb, trace.iter().map(|t| t[0] == 1));
        assert_eq!(starts.len(), sent.len());
        let gaps: Vec<usize> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g > 10 * cpb), "cpb {cpb}: frames overlap: {gaps:?}");
        assert!(gaps.contains(&(10 * cpb + 1)), "cpb {cpb}: no back-to-back frames: {gaps:?}");
        // a start bit is cpb clocks low, the line idles high after reset
        assert!(trace[..starts[0]].iter().all(|t| t[0] == 1));
    }
}

/// Clock indices where frames start: falling edges of an idle line (then a whole frame).
fn frame_starts(cpb: usize, levels: impl IntoIterator<Item = bool>) -> Vec<usize> {
    let (mut starts, mut busy_until, mut last) = (vec![], 0, true);
    for (c, level) in levels.into_iter().enumerate() {
        if c >= busy_until && last && !level {
            starts.push(c);
            busy_until = c + 10 * cpb;
        }
        last = level;
    }
    starts
}

/// The FIFO holds `depth` bytes in its RAM: a push while it is full is dropped (and flagged),
/// every other byte leaves in order.
#[test]
fn fifo_drops_pushes_only_when_full() {
    let (cpb, depth) = (4usize, 8usize);
    let mut stimulus = vec![vec![1, 0, 0]];
    // 12 pushes in a row: pushes take the RAM's only port, so nothing is read meanwhile and the
    // ninth push finds the RAM full; a read slips in on each dropped push's clock, so the
    // pushes alternate between dropped and stored from then on.
    stimulus.extend((0..12u128).map(|b| vec![0, 1, 0x30 + b]));
    stimulus.extend((0..14 * 10 * cpb).map(|_| vec![0, 0, 0]));
    let inputs = [Port::new("rst", 1), Port::new("push", 1), Port::new("data", 8)];
    let outputs = [Port::new("line", 1), Port::new("dropped", 1)];
    let trace = lockstep(
        TxRxLoop::new(cpb, depth),
        |u| &mut u.clock,
        None,
        (&inputs, &outputs),
        &stimulus,
        |u, r| {
            u.rst.next = r[0] != 0;
            u.push.next = r[1] != 0;
            u.data.next = (r[2] as u64).into();
        },
        |u| vec![u.line.val() as u128, u.dropped.val() as u128],
    );
    // push i happens on cycle 1 + i
    let dropped: Vec<usize> = (0..12).filter(|&i| trace[1 + i][1] == 1).collect();
    assert!(trace.iter().enumerate().all(|(c, t)| t[1] == 0 || (1..13).contains(&c)), "drop without a push");
    assert_eq!(dropped, vec![depth, depth + 2], "the first push into a full RAM is push {depth}");
    let kept: Vec<u8> = (0..12u8).filter(|i| !dropped.contains(&(*i as usize))).map(|i| 0x30 + i).collect();
    let sent: Vec<u8> = bytes_of(&decode_line(cpb, trace.iter().map(|t| t[0] == 1)));
    assert_eq!(sent, kept, "every stored byte leaves, in order");
}

/// The levels of one 8N1 frame with a chosen stop bit, `cpb` clocks per bit.
fn frame(byte: u8, cpb: usize, stop: bool) -> Vec<bool> {
    let mut bits = vec![false];
    bits.extend((0..8).map(|i| (byte >> i) & 1 == 1));
    bits.push(stop);
    bits.into_iter().flat_map(|b| std::iter::repeat_n(b, cpb)).collect()
}

/// The receiver accepts a sender whose bit time is 3 % long or short, ignores a glitch shorter
/// than half a bit, reports a low stop bit as a framing error (no byte), waits out a break
/// (raising `line_break` only after [`BREAK_BIT_TIMES`] of low line), and then receives normally.
#[test]
fn receiver_tolerates_rate_error_and_rejects_bad_frames() {
    let cpb = 16;
    let mut levels: Vec<bool> = vec![true; 20];
    let mut want: Vec<Received> = vec![];
    let mut rng = Rng::new(7);
    for err in [-0.03, 0.0, 0.03] {
        let bytes: Vec<u8> = (0..12).map(|_| rng.below(256) as u8).chain([0x00, 0xFF, 0x55, 0xAA]).collect();
        let mut enc = LineEncoder::new(cpb as f64 * (1.0 + err));
        enc.send(&bytes);
        while !enc.is_idle() {
            levels.push(enc.next_level());
        }
        levels.extend([true; 7]);
        want.extend(bytes.iter().map(|&b| Received::Byte(b)));
    }
    // a glitch of cpb/2 - 2 clocks
    levels.extend(std::iter::repeat_n(false, cpb / 2 - 2));
    levels.extend([true; 40]);
    // a bad stop bit
    levels.extend(frame(0x5A, cpb, false));
    levels.extend([true; 20]);
    want.push(Received::FrameError);
    // a zero byte with a low stop bit and more low after it: 19 bit times low, not a BREAK
    let short_low = levels.len();
    levels.extend(std::iter::repeat_n(false, 19 * cpb));
    levels.extend([true; 20]);
    want.push(Received::FrameError);
    // a break: 3 frames' worth of low, then a good byte
    let break_start = levels.len();
    levels.extend(std::iter::repeat_n(false, 30 * cpb));
    let break_end = levels.len();
    levels.extend([true; 20]);
    want.push(Received::FrameError);
    levels.extend(frame(0xC3, cpb, true));
    levels.extend([true; 40]);
    want.push(Received::Byte(0xC3));

    let mut stimulus: Vec<Vec<u128>> = vec![vec![1, 1]];
    stimulus.extend(levels.iter().map(|&l| vec![0, l as u128]));
    let inputs = [Port::new("rst", 1), Port::new("rx", 1)];
    let outputs = [
        Port::new("data", 8),
        Port::new("valid", 1),
        Port::new("frame_error", 1),
        Port::new("line_break", 1),
    ];
    let trace = lockstep(
        UartRx::new(cpb),
        |u| &mut u.clock,
        None,
        (&inputs, &outputs),
        &stimulus,
        |u, r| {
            u.rst.next = r[0] != 0;
            u.rx.next = r[1] != 0;
        },
        |u| {
            vec![
                u.data.val().to_u64() as u128,
                u.valid.val() as u128,
                u.frame_error.val() as u128,
                u.line_break.val() as u128,
            ]
        },
    );
    // trace[c] is the outputs after the edge of stimulus row c (row 0 is the reset): the line
    // level levels[i] is row i + 1
    let high: Vec<usize> = (0..trace.len()).filter(|&c| trace[c][3] == 1).collect();
    assert!(!high.is_empty(), "30 bit times of low line raised no line_break");
    let (rise, fall) = (high[0], *high.last().unwrap());
    assert_eq!(high.len(), fall - rise + 1, "line_break is one pulse");
    let rise_after = rise - (break_start + 1);
    assert!(
        (BREAK_BIT_TIMES * cpb - cpb / 2..=BREAK_BIT_TIMES * cpb + 4).contains(&rise_after),
        "line_break rose {rise_after} clocks after the falling edge, expected about {BREAK_BIT_TIMES} bit times"
    );
    assert!(rise > break_start && short_low < break_start, "19 bit times of low line are not a BREAK");
    let fall_after = fall + 1 - (break_end + 1);
    assert!(fall_after <= 4, "line_break fell {fall_after} clocks after the line went high");
    let got: Vec<Received> = trace
        .iter()
        .filter_map(|t| match (t[1], t[2]) {
            (1, 0) => Some(Received::Byte(t[0] as u8)),
            (0, 1) => Some(Received::FrameError),
            (0, 0) => None,
            _ => panic!("valid and frame_error together: {t:?}"),
        })
        .collect();
    assert_eq!(got, want);
}

/// The bridge with its word streams looped back through a stall gate: words in = words out.
#[derive(LogicBlock)]
struct BridgeEcho {
    clock: Signal<In, Clock>,
    rst: Signal<In, Bit>,
    rx: Signal<In, Bit>,
    stall: Signal<In, Bit>,
    tx: Signal<Out, Bit>,
    overflow: Signal<Out, Bit>,
    frame_error: Signal<Out, Bit>,
    bridge: UartBridge,
}

impl BridgeEcho {
    fn new(cpb: usize, depth: usize) -> Self {
        BridgeEcho {
            clock: Default::default(),
            rst: Default::default(),
            rx: Default::default(),
            stall: Default::default(),
            tx: Default::default(),
            overflow: Default::default(),
            frame_error: Default::default(),
            bridge: UartBridge::new(cpb, depth),
        }
    }
}

impl Logic for BridgeEcho {
    #[hdl_gen]
    fn update(&mut self) {
        self.bridge.clock.next = self.clock.val();
        self.bridge.rst.next = self.rst.val();
        self.bridge.rx.next = self.rx.val();
        self.tx.next = self.bridge.tx.val();
        self.overflow.next = self.bridge.overflow.val();
        self.frame_error.next = self.bridge.frame_error.val();
        self.bridge.out_data.next = self.bridge.in_data.val();
        self.bridge.out_valid.next = self.bridge.in_valid.val() && !self.stall.val();
        self.bridge.in_ready.next = self.bridge.out_ready.val() && !self.stall.val();
    }
}

/// Runs the echo harness; returns the per-cycle (tx, overflow, frame_error).
fn echo_run(cpb: usize, depth: usize, stimulus: &[Vec<u128>]) -> Vec<Vec<u128>> {
    let inputs = [Port::new("rst", 1), Port::new("rx", 1), Port::new("stall", 1)];
    let outputs = [Port::new("tx", 1), Port::new("overflow", 1), Port::new("frame_error", 1)];
    lockstep(
        BridgeEcho::new(cpb, depth),
        |u| &mut u.clock,
        None,
        (&inputs, &outputs),
        stimulus,
        |u, r| {
            u.rst.next = r[0] != 0;
            u.rx.next = r[1] != 0;
            u.stall.next = r[2] != 0;
        },
        |u| vec![u.tx.val() as u128, u.overflow.val() as u128, u.frame_error.val() as u128],
    )
}

/// Random words sent as bytes come back byte for byte (so the packing is little-endian and
/// the unpacking its inverse: checked separately on the core below), with random stalls of the
/// word streams and the TX FIFO filling up behind the line.
#[test]
fn bridge_echoes_words_through_stalls() {
    let (cpb, depth) = (4usize, 16usize);
    let mut rng = Rng::new(11);
    let bytes: Vec<u8> = (0..4 * 24).map(|_| rng.below(256) as u8).collect();
    let mut enc = LineEncoder::new(cpb as f64);
    enc.send(&bytes);
    let mut stimulus = vec![vec![1, 1, 0]];
    let mut stall = false;
    let mut c = 0usize;
    while !enc.is_idle() || c < 40 * cpb * bytes.len() + 400 {
        // stalls of a few byte times, for at most a third of the time
        if rng.below(40) == 0 {
            stall = !stall && rng.below(3) == 0;
        }
        stimulus.push(vec![0, enc.next_level() as u128, stall as u128]);
        c += 1;
        if c > 100_000 {
            panic!("test stimulus does not end");
        }
    }
    let trace = echo_run(cpb, depth, &stimulus);
    assert!(trace.iter().all(|t| t[1] == 0 && t[2] == 0), "no overflow, no framing error");
    assert_eq!(bytes_of(&decode_line(cpb, trace.iter().map(|t| t[0] == 1))), bytes);
}

/// Capacity while the core stalls: `depth` bytes in the FIFO RAM + 1 in its output register +
/// 4 in the word being assembled. The next byte sets the sticky overflow flag and is lost;
/// after the stall, the bytes before it come out (whole words only) and the flag stays set
/// until reset.
#[test]
fn bridge_overflow_drops_bytes_and_sets_a_sticky_flag() {
    let (cpb, depth) = (4usize, 8usize);
    let capacity = depth + 1 + 4;
    let bytes: Vec<u8> = (0..capacity as u8 + 3).map(|b| 0xA0 + b).collect();
    let mut enc = LineEncoder::new(cpb as f64);
    enc.send(&bytes);
    let mut stimulus = vec![vec![1, 1, 1]];
    while !enc.is_idle() {
        stimulus.push(vec![0, enc.next_level() as u128, 1]);
    }
    let stalled_until = stimulus.len() + 20;
    stimulus.extend((stimulus.len()..stalled_until).map(|_| vec![0, 1, 1]));
    stimulus.extend((0..50 * cpb * capacity).map(|_| vec![0, 1, 0]));
    stimulus.push(vec![1, 1, 0]);
    stimulus.extend((0..5).map(|_| vec![0, 1, 0]));
    let trace = echo_run(cpb, depth, &stimulus);
    // the flag rises as byte `capacity` (0-based) is received: during its stop bit
    let first = trace.iter().position(|t| t[1] == 1).expect("overflow flag never set");
    let stop_of_extra = 1 + (capacity * 10 + 9) * cpb;
    // the stop bit is sampled mid-bit after the 2-clock synchroniser, then the byte is
    // registered, pushed and the flag registered: a few clocks past the middle
    assert!(
        (stop_of_extra + cpb / 2..stop_of_extra + cpb + 4).contains(&first),
        "overflow at cycle {first}, expected during the stop bit of byte {capacity} ({stop_of_extra}..)"
    );
    assert!(trace[first..trace.len() - 5].iter().all(|t| t[1] == 1), "the flag is sticky");
    assert!(trace[trace.len() - 4..].iter().all(|t| t[1] == 0), "reset clears the flag");
    let echoed = bytes_of(&decode_line(cpb, trace.iter().map(|t| t[0] == 1)));
    assert_eq!(echoed, bytes[..capacity / 4 * 4].to_vec(), "whole words before the lost byte");
}

fn program(cmds: &[Command], dim: usize) -> Vec<u32> {
    let mut w = Vec::new();
    for c in cmds {
        c.encode_into(dim, &mut w).unwrap();
    }
    w
}

/// Zero the timed COUNTERS words, which the untimed golden device answers as 0.
fn untimed(dim: usize, words: &[u32]) -> Vec<Response> {
    decode_responses(dim, words)
        .unwrap_or_else(|e| panic!("undecodable response stream: {e}: {words:x?}"))
        .into_iter()
        .map(|r| match r {
            Response::Counters(c) => Response::Counters(spec::Counters {
                cycles: 0,
                array_busy_cycles: 0,
                in_stall_cycles: 0,
                out_stall_cycles: 0,
                ..c
            }),
            r => r,
        })
        .collect()
}

/// Serial stimulus for a word program: reset, the words' bytes back to back, then idle until
/// the responses must have left (`tail` clocks).
fn serial_stimulus(words: &[u32], cpb: usize, tail: usize) -> Vec<Vec<u128>> {
    let mut enc = LineEncoder::new(cpb as f64);
    enc.send(&words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>());
    let mut stimulus = vec![vec![1, 1]];
    while !enc.is_idle() {
        stimulus.push(vec![0, enc.next_level() as u128]);
    }
    stimulus.extend((0..tail).map(|_| vec![0, 1]));
    stimulus
}

fn words_of(bytes: &[u8]) -> Vec<u32> {
    assert_eq!(bytes.len() % 4, 0, "{} response bytes are not whole words", bytes.len());
    bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

const UART_INPUTS: [(&str, usize); 2] = [("rst", 1), ("rx", 1)];
const UART_OUTPUTS: [(&str, usize); 2] = [("tx", 1), ("overflow", 1)];

fn uart_ports() -> (Vec<Port>, Vec<Port>) {
    (
        UART_INPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect(),
        UART_OUTPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect(),
    )
}

/// INFO, a 2x2 GEMM with bias and requantisation (READ_ACC and READ_ACT), a refused command
/// and a SYNC, sent bit by bit into the serial line of [`UartCore`]; the response bytes decode
/// to exactly the golden device's words, in rust-hdl and in the emitted Verilog under Icarus.
#[test]
fn uart_core_answers_a_gemm_over_the_serial_line_like_the_golden_device() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let (cpb, depth) = (4usize, 64usize);
    let cmds = [
        Command::Info,
        Command::WriteAct { dst: 3, rows: vec![vec![1, -2], vec![-128, 127]] },
        Command::LoadWeights { weights: vec![5, 6, -7, -128] },
        Command::LoadBias { bias: vec![1, -100] },
        Command::SetQuant(Quant::new(3, 2, true).unwrap()),
        Command::Matmul { src: 3, n: 2, dst: 1, accumulate: false },
        Command::ReadAcc { src: 1, n: 2 },
        Command::Activate { src: 1, n: 2, dst: 0 },
        Command::ReadAct { src: 0, n: 2 },
        Command::Sync { token: 0xC0FFEE },
    ];
    let mut words = program(&cmds, 2);
    words.push(0x7700_0000); // unknown opcode 0x77: refused with 0xFF
    program(&[Command::Sync { token: 42 }], 2).into_iter().for_each(|w| words.push(w));
    let golden = GoldenDevice::run(cfg, &words);
    let stimulus = serial_stimulus(&words, cpb, (golden.len() * 4 + 4) * 10 * cpb + 200);
    let verilog = uart_core_verilog(&cfg, cpb, depth).unwrap();
    let (inputs, outputs) = uart_ports();
    let trace = lockstep(
        UartCore::new(&cfg, cpb, depth),
        |u| &mut u.clk,
        Some((&verilog, UART_TOP, "clk")),
        (&inputs, &outputs),
        &stimulus,
        |u, r| {
            u.rst.next = r[0] != 0;
            u.rx.next = r[1] != 0;
        },
        |u| vec![u.tx.val() as u128, u.overflow.val() as u128],
    );
    assert!(trace.iter().all(|t| t[1] == 0), "overflow");
    let got = words_of(&bytes_of(&decode_line(cpb, trace.iter().map(|t| t[0] == 1))));
    assert_eq!(got, golden, "response words");
    let responses = decode_responses(2, &got).unwrap();
    assert_eq!(responses.first(), Some(&Response::info(&cfg)));
    assert!(matches!(responses.last(), Some(Response::Sync { token: 42 })));
    assert_eq!(responses.len(), 6, "INFO, READ_ACC, READ_ACT, SYNC, error, SYNC: {responses:?}");
}

/// A BREAK recovers the link from any state, in rust-hdl and in the emitted Verilog under
/// Icarus: (1) a header corrupted to announce 2^24 - 1 payload words (the core would swallow
/// the next 16.8 M words), (2) a WRITE_ACT whose payload words were lost, sent while a long
/// READ_ACC answer is still on the line (the BREAK cuts it). After each BREAK the only answer
/// is the echo of the SYNC sent after it, and the bridge's flags are clear.
#[test]
fn a_break_resets_the_bridge_and_the_core_whatever_the_stream_state() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let (cpb, depth) = (4usize, 64usize);
    let byte_time = 10 * cpb;
    let bytes = |words: &[u32]| words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
    let sync = |token: u32| program(&[Command::Sync { token }], 2);
    let mut enc = LineEncoder::new(cpb as f64);
    let mut stimulus = vec![vec![1, 1]];
    // the queued line levels, then `extra` idle clocks; returns the stimulus length
    let run = |enc: &mut LineEncoder, extra: usize, stimulus: &mut Vec<Vec<u128>>| {
        while !enc.is_idle() {
            stimulus.push(vec![0, enc.next_level() as u128]);
        }
        stimulus.extend((0..extra).map(|_| vec![0, 1]));
        stimulus.len()
    };
    // (1) a corrupted length, then a few more words it swallows
    enc.send(&bytes(&[0x77FF_FFFF, 1, 2, 3]));
    run(&mut enc, 3 * byte_time, &mut stimulus);
    enc.send_break((BREAK_BIT_TIMES + 5) * cpb);
    let break1 = run(&mut enc, 2 * cpb, &mut stimulus);
    enc.send(&bytes(&sync(0x1234)));
    let after1 = run(&mut enc, 12 * byte_time, &mut stimulus);
    // (2) a READ_ACC of every row (17 words back), a WRITE_ACT missing 2 of its 3 payload
    // words, and a BREAK while the answer is on the line
    let mut words = program(&[Command::ReadAcc { src: 0, n: 8 }], 2);
    words.extend([header(opcode::WRITE_ACT, 3), 2 << 16]);
    enc.send(&bytes(&words));
    run(&mut enc, 10 * byte_time, &mut stimulus);
    enc.send_break((BREAK_BIT_TIMES + 5) * cpb);
    let break2 = run(&mut enc, 2 * cpb, &mut stimulus);
    enc.send(&bytes(&sync(0x5678)));
    run(&mut enc, 12 * byte_time, &mut stimulus);

    let verilog = uart_core_verilog(&cfg, cpb, depth).unwrap();
    let (inputs, outputs) = uart_ports();
    let trace = lockstep(
        UartCore::new(&cfg, cpb, depth),
        |u| &mut u.clk,
        Some((&verilog, UART_TOP, "clk")),
        (&inputs, &outputs),
        &stimulus,
        |u, r| {
            u.rst.next = r[0] != 0;
            u.rx.next = r[1] != 0;
        },
        |u| vec![u.tx.val() as u128, u.overflow.val() as u128],
    );
    let tx = |from: usize, to: usize| decode_line(cpb, trace[from..to].iter().map(|t| t[0] == 1));
    // nothing came back before the first BREAK (the corrupted command is still swallowing)
    assert!(tx(0, break1).is_empty(), "{:?}", tx(0, break1));
    let echo = |token: u32| vec![header(opcode::SYNC | 0x80, 1), token];
    assert_eq!(words_of(&bytes_of(&tx(break1, after1))), echo(0x1234));
    // the READ_ACC answer had started and was cut by the second BREAK
    let before2 = tx(after1, break2);
    assert!(!before2.is_empty() && before2.len() < 17 * 4, "{} bytes of the READ_ACC answer", before2.len());
    assert_eq!(words_of(&bytes_of(&tx(break2, trace.len()))), echo(0x5678));
    assert!(trace.iter().all(|t| t[1] == 0), "overflow");
}

/// Random command streams (including malformed ones) over the serial line, Icarus only (the
/// rust-hdl model of the whole core is too slow for this many bit times): the same responses
/// as the golden device.
#[test]
fn uart_core_random_streams_match_golden_under_icarus() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let (cpb, depth) = (4usize, 256usize);
    let verilog = uart_core_verilog(&cfg, cpb, depth).unwrap();
    let (inputs, outputs) = uart_ports();
    for seed in 0..3 {
        let mut rng = Rng::new(500 + seed);
        let words = random_stream(&cfg, &mut rng, StreamShape { commands: 30, max_rows: 3, malformed: 0.2 });
        let golden = GoldenDevice::run(cfg, &words);
        let stimulus = serial_stimulus(&words, cpb, (golden.len() * 4 + 4) * 10 * cpb + 500);
        let trace = replay(&verilog, UART_TOP, "clk", &inputs, &outputs, &stimulus)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(trace.iter().all(|t| t[1] == 0), "seed {seed}: overflow");
        let got = words_of(&bytes_of(&decode_line(cpb, trace.iter().map(|t| t[0] == 1))));
        assert_eq!(untimed(2, &got), untimed(2, &golden), "seed {seed}: {} words in", words.len());
    }
}

/// The emitted bridge is clean under `verilator -Wall`: no width warnings (every constant is
/// sized), no combinational loop through the FIFO handshakes. What remains is rust-hdl's
/// file-name rule, the enum localparams it copies into each DFF module and the 64-bit
/// `initial q = 64'h0` it writes for a DFF of an enum (the 3-bit receiver state), and FIFO
/// outputs the
/// bridge does not need (the RX FIFO's `full`: the bridge reports drops; the TX FIFO's
/// `dropped`: the bridge repeats a push the full FIFO ignored).
#[test]
fn bridge_verilog_lints_clean() {
    let mut uut = UartBridge::new(16, 64);
    uut.connect_all();
    let warnings = verilator_lint(&generate_verilog(&uut), "top").unwrap();
    let expected = |w: &&crate::replay::LintWarning| {
        match w.code.as_str() {
        "DECLFILENAME" => true,
        "UNUSEDPARAM" => w.message.contains("RxState$"),
        "WIDTH" => w.message == "Operator ASSIGN expects 3 bits on the Assign RHS, but Assign RHS's CONST '64'h0' generates 64 bits.",
        "UNUSEDSIGNAL" => w.message.contains("'rx_fifo$full'") || w.message.contains("'tx_fifo$dropped'"),
        _ => false,
    }
    };
    let real: Vec<_> = warnings.iter().filter(|w| !expected(w)).collect();
    assert!(real.is_empty(), "{real:#?}");
}

#[test]
fn clocks_per_bit_rounds_and_checks_range() {
    assert_eq!(clocks_per_bit(30_000_000, 1_000_000), Some((30, 0)));
    assert_eq!(clocks_per_bit(12_000_000, 115_200), Some((104, 1603)));
    assert_eq!(clocks_per_bit(12_000_000, 4_000_000), None);
    assert_eq!(clocks_per_bit(100_000_000, 1_000), None);
    assert_eq!(clocks_per_bit(1, 0), None);
}

#[test]
#[should_panic(expected = "clocks_per_bit must be in 4..=65535, got 3")]
fn too_few_clocks_per_bit_are_rejected() {
    let _ = UartRx::new(3);
}

#[test]
#[should_panic(expected = "RAM depth must be a power of two in 2..=32768, got 48")]
fn fifo_depth_must_be_a_power_of_two() {
    let _ = ByteFifo::new(48);
}

/// The line models agree with each other, including a fractional bit period.
#[test]
fn line_models_round_trip() {
    let bytes: Vec<u8> = (0..=255).collect();
    for period in [4.0, 7.0, 10.4] {
        let mut enc = LineEncoder::new(period);
        enc.send(&bytes);
        let mut levels = vec![true; 3];
        while !enc.is_idle() {
            levels.push(enc.next_level());
        }
        levels.extend([true; 20]);
        let cpb = period.round() as usize;
        assert_eq!(bytes_of(&decode_line(cpb, levels)), bytes, "period {period}");
    }
}

/// Gate level: the UART top with the iCEBreaker's core (`ice40-up5k` preset) and FIFOs (16 KiB,
/// SPRAM), synthesised like the board flow (`synth_ice40 -dsp -spram`) into SB_LUT4, SB_DFF*,
/// SB_CARRY, SB_MAC16, SB_RAM40_4K and SB_SPRAM256KA cells, then simulated with Yosys' own cell
/// models (`ice40/cells_sim.v`) under Icarus on the GEMM program sent over the serial line: the
/// response bytes are exactly the golden device's.
#[test]
fn ice40_gate_level_netlist_answers_like_the_golden_device() {
    use crate::boards::flow::{ice40_netlist, yosys_datdir};
    let cfg = Config::preset("ice40-up5k").unwrap();
    let cpb = 4;
    let cmds = [
        Command::Info,
        Command::WriteAct { dst: 4000, rows: vec![vec![7, -2], vec![-128, 127], vec![0, 1]] },
        Command::LoadWeights { weights: vec![-128, 6, -7, 127] },
        Command::LoadBias { bias: vec![-5, 1000] },
        Command::SetQuant(Quant::new(200, 9, true).unwrap()),
        Command::Matmul { src: 4000, n: 3, dst: 500, accumulate: false },
        Command::Matmul { src: 4000, n: 3, dst: 500, accumulate: true },
        Command::ReadAcc { src: 500, n: 3 },
        Command::Activate { src: 500, n: 3, dst: 10 },
        Command::ReadAct { src: 10, n: 3 },
        Command::ReadAct { src: 4095, n: 2 }, // out of range: refused
        Command::Sync { token: 0x5EED },
    ];
    let words = program(&cmds, 2);
    let golden = GoldenDevice::run(cfg, &words);
    let dir = tempfile::tempdir().unwrap();
    let rtl = uart_core_verilog(&cfg, cpb, BOARD_FIFO_DEPTH).unwrap();
    let (netlist, cells) = ice40_netlist(&rtl, UART_TOP, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cells.get("SB_MAC16"), Some(&8), "{cells:?}");
    assert_eq!(cells.get("SB_SPRAM256KA"), Some(&2), "{cells:?}");
    assert_eq!(cells.get("SB_RAM40_4K"), Some(&24), "{cells:?}");
    let models = std::fs::read_to_string(yosys_datdir().unwrap().join("ice40").join("cells_sim.v")).unwrap();
    let stimulus = serial_stimulus(&words, cpb, (golden.len() * 4 + 4) * 10 * cpb + 200);
    let (inputs, outputs) = uart_ports();
    // Icarus has no default port values: leave them out of the models (a port the netlist left
    // unconnected would float and show up as an X on tx, which `replay` rejects)
    let design = format!("`define NO_ICE40_DEFAULT_ASSIGNMENTS\n{models}\n{netlist}");
    let trace = replay(&design, UART_TOP, "clk", &inputs, &outputs, &stimulus)
        .unwrap_or_else(|e| panic!("gate-level simulation: {e}"));
    assert!(trace.iter().all(|t| t[1] == 0), "overflow");
    let got = words_of(&bytes_of(&decode_line(cpb, trace.iter().map(|t| t[0] == 1))));
    assert_eq!(got, golden);
    assert!(decode_responses(2, &got).unwrap().iter().any(|r| matches!(r, Response::Error(_))));
}
