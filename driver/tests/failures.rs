//! Every failure path ends in a typed error that says what went wrong — never a hang, never a
//! silently wrong result.

use driver::{
    compile_layer, compile_mlp, CompileError, Device, DriverError, GoldenTransport, Layer, OutputKind,
    Transport, TransportError,
};
use nalgebra::{DMatrix, DVector};
use spec::isa::{header, opcode, split_header, Command, ResponseError, RESPONSE_BIT};
use spec::{CommandError, Config, ErrorCode, Quant, ShapeError};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

fn cfg() -> Config {
    Config::new(4, 64, 32).unwrap()
}

fn layer(k: usize, n: usize) -> Layer {
    let w = DMatrix::from_fn(k, n, |r, c| (r as i8).wrapping_mul(3).wrapping_sub(c as i8));
    Layer::new(w, DVector::from_element(n, 7), Quant::new(1, 2, true).unwrap()).unwrap()
}

fn x(m: usize, k: usize) -> DMatrix<i8> {
    DMatrix::from_fn(m, k, |r, c| (r as i8) - (c as i8))
}

/// A golden device behind a link that misbehaves in one chosen way.
#[derive(Debug)]
struct Faulty {
    inner: GoldenTransport,
    fault: Fault,
    /// Words passed to the device so far.
    passed: usize,
    /// Words served before the device's own answers.
    front: VecDeque<u32>,
    /// The last word received was a SYNC response header.
    after_sync_header: bool,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// Change the opcode of every MATMUL header to 0x3F (not a command).
    CorruptMatmul,
    /// Pass only this many words, drop the rest.
    SwallowAfter(usize),
    /// Put these words in front of the device's answers, once.
    Inject(&'static [u32]),
    /// Flip bit 0 of every SYNC token in the answers.
    FlipToken,
}

impl Faulty {
    fn new(cfg: Config, fault: Fault) -> Self {
        let front = match fault {
            Fault::Inject(words) => words.iter().copied().collect(),
            _ => VecDeque::new(),
        };
        Faulty { inner: GoldenTransport::new(cfg), fault, passed: 0, front, after_sync_header: false }
    }
}

impl Transport for Faulty {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        let mut out = Vec::new();
        // the Device sends whole commands, so headers can be found by counting
        let mut remaining = 0u32;
        for &w in words {
            let mut w = w;
            if remaining == 0 {
                let (op, len) = split_header(w);
                if op == opcode::MATMUL && matches!(self.fault, Fault::CorruptMatmul) {
                    w = header(0x3F, len);
                }
                remaining = len;
            } else {
                remaining -= 1;
            }
            if matches!(self.fault, Fault::SwallowAfter(n) if self.passed >= n) {
                continue;
            }
            self.passed += 1;
            out.push(w);
        }
        self.inner.send(&out)
    }

    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        let from_front = n.min(self.front.len());
        let mut got: Vec<u32> = self.front.drain(..from_front).collect();
        got.extend(self.inner.recv(n - from_front, timeout)?);
        if matches!(self.fault, Fault::FlipToken) {
            if self.after_sync_header {
                got[0] ^= 1;
            }
            self.after_sync_header = got.last() == Some(&header(opcode::SYNC | RESPONSE_BIT, 1));
        }
        Ok(got)
    }
}

#[test]
fn a_device_with_the_wrong_info_is_refused() {
    let e = Device::open(GoldenTransport::new(cfg()), &Config::default()).unwrap_err();
    assert!(matches!(e, DriverError::WrongDevice { .. }));
    assert_eq!(
        e.to_string(),
        "the device is version 3, DIM 4, 64 scratchpad rows, 32 accumulator rows, but the program was built \
         for DIM 8 (8x8 PEs), 1024 scratchpad rows, 512 accumulator rows"
    );
}

#[test]
fn shape_mismatches_are_typed_errors() {
    let c = cfg();
    let e = compile_layer(&c, &x(3, 5), &layer(4, 2), OutputKind::Int8).unwrap_err();
    assert_eq!(e, CompileError::Shape(ShapeError::Inner { x_rows: 3, x_cols: 5, w_rows: 4, w_cols: 2 }));
    assert_eq!(e.to_string(), "K mismatch: X is 3x5 but W is 4x2 (X's columns must equal W's rows)");
    let e = compile_mlp(&c, &x(3, 4), &[layer(4, 6), layer(5, 2)], OutputKind::Raw).unwrap_err();
    assert_eq!(e.to_string(), "layer 1 takes K = 5 inputs but layer 0 produces N = 6 outputs");
    assert_eq!(compile_mlp(&c, &x(3, 4), &[], OutputKind::Raw).unwrap_err(), CompileError::NoLayers);
    let e = Layer::new(DMatrix::zeros(4, 3), DVector::zeros(2), Quant::IDENTITY).unwrap_err();
    assert_eq!(e.to_string(), "bias has 2 elements but W has 3 columns");
    // through the Device: nothing is sent
    let mut dev = Device::open(GoldenTransport::new(c), &c).unwrap();
    let sent = dev.stats().words_sent;
    assert!(matches!(dev.layer(&x(3, 5), &layer(4, 2), OutputKind::Int8), Err(DriverError::Compile(_))));
    assert_eq!(dev.stats().words_sent, sent);
}

#[test]
fn a_config_too_small_for_a_layer_is_refused_not_truncated() {
    let tiny = Config::new(2, 1, 1).unwrap();
    let mut dev = Device::open(GoldenTransport::new(tiny), &tiny).unwrap();
    let sent = dev.stats().words_sent;
    let e = dev.layer(&x(3, 4), &layer(4, 2), OutputKind::Int8).unwrap_err();
    match &e {
        DriverError::Compile(CompileError::TooSmall { layer: 0, k: 4, n: 2, config }) => {
            assert_eq!(config, &tiny)
        }
        other => panic!("expected TooSmall, got {other:?}"),
    }
    assert!(e.to_string().contains("does not fit DIM 2 (2x2 PEs), 1 scratchpad rows"), "{e}");
    assert_eq!(dev.stats().words_sent, sent);
    // the same layer with raw output needs no output row: it fits and is exact
    let y = dev.layer(&x(3, 4), &layer(4, 2), OutputKind::Raw).unwrap();
    let l = layer(4, 2);
    assert_eq!(y.as_raw().unwrap(), &spec::golden::layer_raw(&x(3, 4), l.weights(), l.bias()).unwrap());
}

#[test]
fn a_refused_command_surfaces_its_code_and_opcode() {
    let c = cfg();
    let mut dev = Device::open(GoldenTransport::new(c), &c).unwrap();
    // a response-bearing command: the 0xFF comes instead of the response
    let e = dev.execute(&Command::ReadAct { src: 60, n: 10 }).unwrap_err();
    assert!(matches!(e, DriverError::Device(CommandError { opcode: 0x21, code: ErrorCode::OutOfRange })));
    assert_eq!(e.to_string(), "the device refused a command: out of range (code 3) for opcode 0x21");
    // after an error the device is out of step: nothing is sent until resync()
    assert!(!dev.is_in_sync());
    let sent = dev.stats().words_sent;
    assert!(matches!(dev.sync(), Err(DriverError::OutOfSync)));
    assert_eq!(dev.stats().words_sent, sent);
    assert_eq!(dev.resync().unwrap(), 0);
    assert!(dev.is_in_sync());
    // a silent command: reported by the next response, here the SYNC fence
    assert_eq!(dev.execute(&Command::Matmul { src: 0, n: 65, dst: 0, accumulate: false }).unwrap(), None);
    let e = dev.sync().unwrap_err();
    assert!(matches!(e, DriverError::Device(CommandError { opcode: 0x30, code: ErrorCode::OutOfRange })));
    // raw words: an unknown opcode and a bad length
    dev.resync().unwrap();
    dev.send_words(&[header(0x55, 0)]).unwrap();
    assert!(matches!(
        dev.sync(),
        Err(DriverError::Device(CommandError { opcode: 0x55, code: ErrorCode::UnknownOpcode }))
    ));
    dev.resync().unwrap();
    // (2 words are SET_QUANT's contract v2 form: 3 is a bad length)
    dev.send_words(&[header(opcode::SET_QUANT, 3), 0, 0, 0]).unwrap();
    assert!(matches!(
        dev.sync(),
        Err(DriverError::Device(CommandError { opcode: 0x12, code: ErrorCode::BadLength }))
    ));
    dev.resync().unwrap();
    dev.sync().unwrap();
}

#[test]
fn typed_calls_check_on_the_host_and_send_nothing_bad() {
    let c = cfg();
    let mut dev = Device::open(GoldenTransport::new(c), &c).unwrap();
    let sent = dev.stats().words_sent;
    let e = dev.matmul(0, 65, 0, false).unwrap_err();
    assert!(matches!(e, DriverError::Invalid(CommandError { opcode: 0x30, code: ErrorCode::OutOfRange })));
    assert_eq!(e.to_string(), "refused on the host (not sent): out of range (code 3) for opcode 0x30");
    let e = dev.load_weights(&[0; 15]).unwrap_err();
    assert_eq!(e.to_string(), "not sent: LOAD_WEIGHTS: expected 16 elements for DIM 4, got 15");
    assert!(matches!(dev.write_act(0, &[vec![1, 2, 3]]), Err(DriverError::Size(_))));
    assert!(matches!(dev.read_acc(30, 3), Err(DriverError::Invalid(_))));
    assert_eq!(dev.stats().words_sent, sent);
    dev.sync().unwrap();
}

#[test]
fn a_corrupted_command_stream_is_caught_and_the_device_recovers() {
    let c = cfg();
    let mut dev = Device::open(Faulty::new(c, Fault::CorruptMatmul), &c).unwrap();
    let (xs, l) = (x(6, 7), layer(7, 5));
    let e = dev.layer(&xs, &l, OutputKind::Int8).unwrap_err();
    assert!(
        matches!(e, DriverError::Device(CommandError { opcode: 0x3F, code: ErrorCode::UnknownOpcode })),
        "{e}"
    );
    // skip what is left of the failed run, then the same device computes correctly
    assert!(dev.resync().unwrap() > 0);
    dev.transport_mut().fault = Fault::None;
    let y = dev.layer(&xs, &l, OutputKind::Int8).unwrap();
    assert_eq!(y.as_int8().unwrap(), &spec::golden::layer(&xs, l.weights(), l.bias(), l.quant()).unwrap());
}

#[test]
fn a_device_that_stops_answering_times_out_instead_of_hanging() {
    let c = cfg();
    // INFO (1 word) passes; then the link swallows everything
    let mut dev = Device::open(Faulty::new(c, Fault::SwallowAfter(1)), &c).unwrap();
    dev.set_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let e = dev.layer(&x(5, 5), &layer(5, 5), OutputKind::Raw).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    match e {
        DriverError::Transport(TransportError::Timeout { wanted: 1, got: 0, timeout }) => {
            assert_eq!(timeout, Duration::from_millis(100))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // the same when the words go missing in the middle of a command: the device waits for
    // payload that never comes
    let mut dev = Device::open(Faulty::new(c, Fault::SwallowAfter(2)), &c).unwrap();
    dev.set_timeout(Duration::from_millis(50));
    assert!(matches!(dev.read_act(0, 1), Err(DriverError::Transport(TransportError::Timeout { .. }))));
}

#[test]
fn unexpected_and_malformed_responses_are_reported() {
    let c = cfg();
    // a SYNC answer where INFO's was expected
    static STRAY: [u32; 2] = [0x8200_0001, 42];
    let e = Device::open(Faulty::new(c, Fault::Inject(&STRAY)), &c).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unexpected response: expected response 0x81 with 4 words, got header 0x82000001 (response 0x82 with 1 words)"
    );
    // a 0xFF answer with an error code that does not exist
    static BAD_CODE: [u32; 2] = [0xFF00_0001, 0x0000_3009];
    let e = Device::open(Faulty::new(c, Fault::Inject(&BAD_CODE)), &c).unwrap_err();
    assert!(
        matches!(e, DriverError::Malformed(ResponseError::BadErrorCode { opcode: 0x30, code: 9 })),
        "{e}"
    );
    // a SYNC that comes back with another token
    let mut dev = Device::open(Faulty::new(c, Fault::FlipToken), &c).unwrap();
    let e = dev.sync().unwrap_err();
    assert!(e.to_string().starts_with("unexpected response: expected SYNC token"), "{e}");
}

#[test]
fn a_program_for_another_device_is_refused() {
    let small = Config::new(4, 32, 32).unwrap();
    let p = compile_layer(&small, &x(2, 3), &layer(3, 3), OutputKind::Int8).unwrap();
    let mut dev = Device::open(GoldenTransport::new(cfg()), &cfg()).unwrap();
    let e = dev.run(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the program was compiled for DIM 4 (4x4 PEs), 32 scratchpad rows, 32 accumulator rows, the device is \
         DIM 4 (4x4 PEs), 64 scratchpad rows, 32 accumulator rows"
    );
}

/// A golden device behind a link that, once `on`, answers with garbage forever.
struct Babbler {
    inner: GoldenTransport,
    on: bool,
}

impl Transport for Babbler {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        self.inner.send(words)
    }
    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        if self.on {
            Ok(vec![0xDEAD_BEEF; n])
        } else {
            self.inner.recv(n, timeout)
        }
    }
}

#[test]
fn resync_recovers_a_device_left_inside_a_command() {
    let c = cfg();
    let (xs, l) = (x(6, 7), layer(7, 5));
    let want = spec::golden::layer(&xs, l.weights(), l.bias(), l.quant()).unwrap();
    // words lost: a WRITE_ACT of 3 rows (3 payload words at DIM 4) with 2 words missing, and a
    // header whose corrupted length announces the most a header can (2^24 - 1 words)
    for (lost, payload) in [(2usize, 3u32), (0, spec::isa::MAX_LEN)] {
        let mut dev = Device::open(GoldenTransport::new(c), &c).unwrap();
        let partial = payload as usize - lost.min(payload as usize);
        let mut words = vec![header(opcode::WRITE_ACT, payload), 3 << 16];
        words.extend(std::iter::repeat_n(0u32, partial.min(4)));
        dev.send_words(&words).unwrap();
        // the SYNC is taken as payload (its token then as a header): an error (the WRITE_ACT's
        // 0xFF or a timeout), and the device is out of step
        assert!(dev.sync().is_err());
        assert!(!dev.is_in_sync());
        let discarded = dev.resync().unwrap();
        assert!(dev.is_in_sync());
        // the refused WRITE_ACT's 0xFF answer, and the fill's echoes, were discarded
        assert!(discarded >= 2, "{discarded}");
        let y = dev.layer(&xs, &l, OutputKind::Int8).unwrap();
        assert_eq!(y.as_int8().unwrap(), &want);
    }
}

#[test]
fn resync_gives_up_on_a_device_that_keeps_sending_garbage() {
    let c = cfg();
    let mut dev = Device::open(Babbler { inner: GoldenTransport::new(c), on: false }, &c).unwrap();
    dev.transport_mut().on = true;
    assert!(matches!(dev.sync(), Err(DriverError::Unexpected { .. })));
    let before = dev.stats().words_received;
    let e = dev.resync().unwrap_err();
    assert!(matches!(e, DriverError::Resync(_)), "{e}");
    assert!(e.to_string().contains("without the SYNC echo"), "{e}");
    // bounded: twice the longest response (READ_ACC of 32 rows x DIM 4 words, plus its
    // header) plus twice the two words of the SYNC, plus the one word over the cap
    let longest = 1 + 32 * 4;
    assert_eq!(dev.stats().words_received - before, (2 * longest + 2 * 2 + 1) as u64);
    assert!(!dev.is_in_sync());
}
