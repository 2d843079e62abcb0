//! A real board over a UART: each 32-bit word travels as 4 bytes, least significant first
//! (DESIGN.md "Packing").
//!
//! ```text
//!   word 0x11223344  ──►  bytes 44 33 22 11  ──► UART ──► bridge ──► in_data = 0x11223344
//! ```
//!
//! [`SerialTransport`] is generic over any `Read + Write` byte port, so the framing is the same
//! code for a serial device ([`SerialTransport::open`], the `serialport` crate) and for the
//! in-memory byte port the tests use. The port's `read` must return within a bounded time (a
//! serial port's read timeout, `TimedOut`/`WouldBlock` when nothing came): `recv` polls it until
//! the line has been silent for its timeout. Bytes of a word that is not complete at the deadline are kept for the next
//! `recv`, so a timeout never shifts the framing.
//!
//! A port that can send a line BREAK ([`BytePort::send_break`]; a serial device can) gives the
//! transport [`Transport::reset_link`]: the board's bridge resets itself and the core on a
//! BREAK (docs/design.md "Link recovery"), so [`crate::Device::resync`] recovers a board in any
//! state in one round trip.

use crate::transport::{Transport, TransportError};
use spec::isa::{bytes_to_words, words_to_bytes};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Read timeout set on a serial port by [`SerialTransport::open`]: how often `recv` checks
/// its deadline while the line is quiet.
pub const PORT_POLL: Duration = Duration::from_millis(20);

/// Response words the host leaves unread at most (4 KiB: the smallest usual OS tty buffer).
pub const SERIAL_PENDING_WORDS: usize = 1024;

/// Bit times a host holds a BREAK: four times the board's threshold
/// ([`spec::isa::BREAK_BIT_TIMES`]), so a slow clock or a late release cannot shorten it below.
pub const BREAK_HOLD_BIT_TIMES: u32 = 4 * spec::isa::BREAK_BIT_TIMES as u32;
/// Shortest BREAK a serial device is asked to hold (an OS sleep is coarse).
pub const BREAK_MIN_HOLD: Duration = Duration::from_millis(2);
/// Wait after a BREAK before the input is discarded: covers the bytes of an answer the BREAK
/// cut, still in the adapter (a USB-serial bridge holds bytes up to its 16 ms latency timer).
pub const BREAK_SETTLE: Duration = Duration::from_millis(50);

/// A byte port under a [`SerialTransport`]: bytes both ways, and on a UART a line BREAK.
pub trait BytePort: Read + Write {
    /// Send a BREAK after the bytes already written: hold the line low for at least
    /// [`BREAK_HOLD_BIT_TIMES`] bit times, release it, let whatever the far end sent before
    /// its reset arrive, and discard all received input. `Ok(false)` if this port cannot
    /// send a BREAK (the default).
    fn send_break(&mut self) -> std::io::Result<bool> {
        Ok(false)
    }
}

impl BytePort for Box<dyn serialport::SerialPort> {
    fn send_break(&mut self) -> std::io::Result<bool> {
        let baud = self.baud_rate()?.max(1);
        let hold =
            Duration::from_secs_f64(f64::from(BREAK_HOLD_BIT_TIMES) / f64::from(baud)).max(BREAK_MIN_HOLD);
        self.flush()?; // the bytes written before leave first (tcdrain)
        self.set_break()?;
        std::thread::sleep(hold);
        self.clear_break()?;
        std::thread::sleep(BREAK_SETTLE + Duration::from_secs_f64(200.0 / f64::from(baud)));
        self.clear(serialport::ClearBuffer::Input)?;
        Ok(true)
    }
}

/// An in-memory byte port (a recorded stream): no BREAK.
impl BytePort for std::io::Cursor<Vec<u8>> {}

/// Words over a byte port, 4 little-endian bytes each (see the module docs).
#[derive(Debug)]
pub struct SerialTransport<P> {
    port: P,
    /// Bytes received and not yet returned (less than one word after a successful `recv`).
    pending: Vec<u8>,
}

impl<P: Read + Write> SerialTransport<P> {
    /// Frame words over `port`.
    pub fn new(port: P) -> Self {
        SerialTransport { port, pending: Vec::new() }
    }

    /// The byte port.
    pub fn port(&self) -> &P {
        &self.port
    }

    /// Unwrap the byte port.
    pub fn into_port(self) -> P {
        self.port
    }
}

impl SerialTransport<Box<dyn serialport::SerialPort>> {
    /// Open a serial device (`/dev/ttyUSB0`, ...) at `baud`, 8N1, no flow control, and discard
    /// whatever was waiting in its input buffer.
    pub fn open(path: &str, baud: u32) -> Result<Self, TransportError> {
        let port = serialport::new(path, baud)
            .timeout(PORT_POLL)
            .open()
            .map_err(|e| TransportError::Io(std::io::Error::other(format!("cannot open {path}: {e}"))))?;
        port.clear(serialport::ClearBuffer::All)
            .map_err(|e| TransportError::Io(std::io::Error::other(format!("cannot clear {path}: {e}"))))?;
        Ok(SerialTransport::new(port))
    }
}

impl<P: BytePort> Transport for SerialTransport<P> {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        self.port.write_all(&words_to_bytes(words))?;
        self.port.flush()?;
        Ok(())
    }

    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        let need = 4 * n;
        let mut deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while self.pending.len() < need {
            if Instant::now() >= deadline {
                return Err(TransportError::Timeout { wanted: n, got: self.pending.len() / 4, timeout });
            }
            // never read past the words asked for: the rest stays in the port
            let want = (need - self.pending.len()).min(buf.len());
            match self.port.read(&mut buf[..want]) {
                Ok(0) => return Err(TransportError::Closed),
                Ok(k) => {
                    self.pending.extend_from_slice(&buf[..k]);
                    deadline = Instant::now() + timeout; // the link is alive
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(TransportError::Io(e)),
            }
        }
        let words = bytes_to_words(&self.pending[..need]);
        self.pending.drain(..need);
        Ok(words)
    }

    fn max_pending_words(&self) -> usize {
        SERIAL_PENDING_WORDS
    }

    /// A BREAK on the line, if the port can send one; the bytes of a word received before it
    /// are dropped with the rest of the input.
    fn reset_link(&mut self) -> Result<bool, TransportError> {
        if !self.port.send_break()? {
            return Ok(false);
        }
        self.pending.clear();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use spec::{Config, GoldenDevice};
    use std::collections::VecDeque;

    /// A byte port with a golden device on the far side, fed byte by byte as a UART bridge
    /// would: bytes are assembled into words little-endian, the answers are split back into
    /// bytes. Reads return at most `chunk` bytes, and `TimedOut` when the line is quiet.
    struct GoldenPort {
        dev: GoldenDevice,
        partial: Vec<u8>,
        to_host: VecDeque<u8>,
        chunk: usize,
        /// Bytes the host sent, to check the framing.
        wire: Vec<u8>,
        /// Hold back the last `hold` bytes of the answers (a slow line).
        hold: usize,
        /// A BREAK resets the device, as the board's bridge does (else the port cannot send one).
        breaks: bool,
    }

    impl BytePort for GoldenPort {
        fn send_break(&mut self) -> std::io::Result<bool> {
            if !self.breaks {
                return Ok(false);
            }
            // the bridge and the core reset; the memories keep their contents
            self.dev.reset();
            self.partial.clear();
            self.to_host.clear();
            Ok(true)
        }
    }

    impl GoldenPort {
        fn new(cfg: Config, chunk: usize) -> Self {
            GoldenPort {
                dev: GoldenDevice::new(cfg),
                partial: Vec::new(),
                to_host: VecDeque::new(),
                chunk,
                wire: Vec::new(),
                hold: 0,
                breaks: false,
            }
        }
    }

    impl Write for GoldenPort {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            for &b in bytes {
                self.wire.push(b);
                self.partial.push(b);
                if self.partial.len() == 4 {
                    let word = u32::from_le_bytes([
                        self.partial[0],
                        self.partial[1],
                        self.partial[2],
                        self.partial[3],
                    ]);
                    self.partial.clear();
                    self.dev.push(word);
                    for w in self.dev.take_output() {
                        self.to_host.extend(w.to_le_bytes());
                    }
                }
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Read for GoldenPort {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let available = self.to_host.len().saturating_sub(self.hold);
            if available == 0 {
                return Err(std::io::Error::new(ErrorKind::TimedOut, "quiet line"));
            }
            let k = available.min(buf.len()).min(self.chunk);
            for (slot, b) in buf.iter_mut().zip(self.to_host.drain(..k)) {
                *slot = b;
            }
            Ok(k)
        }
    }

    #[test]
    fn words_are_little_endian_on_the_wire() {
        assert_eq!(
            words_to_bytes(&[0x1122_3344, 0xA0B0_C0D0]),
            vec![0x44, 0x33, 0x22, 0x11, 0xD0, 0xC0, 0xB0, 0xA0]
        );
        assert_eq!(bytes_to_words(&[0x44, 0x33, 0x22, 0x11]), vec![0x1122_3344]);
        let cfg = Config::new(2, 8, 8).unwrap();
        let mut t = SerialTransport::new(GoldenPort::new(cfg, 3));
        t.send(&[0x0200_0001, 0xDEAD_BEEF]).unwrap();
        assert_eq!(t.port().wire, vec![0x01, 0, 0, 0x02, 0xEF, 0xBE, 0xAD, 0xDE]);
        assert_eq!(t.recv(2, Duration::from_secs(1)).unwrap(), vec![0x8200_0001, 0xDEAD_BEEF]);
    }

    #[test]
    fn a_whole_session_round_trips_through_the_byte_framing() {
        // every read returns 1, 2 or 3 bytes: words are split across reads
        for chunk in 1..=3 {
            let cfg = Config::new(3, 16, 8).unwrap();
            let mut dev = Device::open(SerialTransport::new(GoldenPort::new(cfg, chunk)), &cfg).unwrap();
            let rows: Vec<Vec<i8>> = vec![vec![1, -2, 127], vec![-128, 5, 6]];
            dev.write_act(4, &rows).unwrap();
            assert_eq!(dev.read_act(4, 2).unwrap(), rows);
            dev.load_weights(&[1, 0, 0, 0, 1, 0, 0, 0, -1]).unwrap();
            dev.matmul(4, 2, 0, false).unwrap();
            assert_eq!(dev.read_acc(0, 2).unwrap(), vec![vec![1, -2, -127], vec![-128, 5, -6]]);
            dev.sync().unwrap();
        }
    }

    #[test]
    fn a_partial_word_at_the_deadline_is_kept_for_the_next_recv() {
        let cfg = Config::new(2, 8, 8).unwrap();
        let mut t = SerialTransport::new(GoldenPort::new(cfg, 4096));
        t.send(&[0x0200_0001, 0x0102_0304]).unwrap();
        t.port.hold = 2; // 6 of the 8 answer bytes have arrived
        let start = Instant::now();
        match t.recv(2, Duration::from_millis(30)) {
            Err(TransportError::Timeout { wanted: 2, got: 1, .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(2));
        t.port.hold = 0;
        assert_eq!(t.recv(2, Duration::from_millis(30)).unwrap(), vec![0x8200_0001, 0x0102_0304]);
    }

    /// A header corrupted to announce 2^24 - 1 payload words: without a BREAK `resync` must
    /// fill the whole payload (16.8 M words); with one it sends 4 words and the device is in its
    /// reset state.
    #[test]
    fn a_break_recovers_a_device_left_inside_a_huge_payload_in_one_round_trip() {
        let cfg = Config::new(2, 8, 8).unwrap();
        let mut port = GoldenPort::new(cfg, 4096);
        port.breaks = true;
        let mut dev = Device::open(SerialTransport::new(port), &cfg).unwrap();
        dev.load_bias(&[7, 8]).unwrap();
        dev.send_words(&[spec::isa::header(0x77, spec::isa::MAX_LEN), 1, 2]).unwrap();
        assert!(dev.sync().is_err());
        let before = dev.stats();
        assert_eq!(dev.resync().unwrap(), 0);
        let after = dev.stats();
        assert_eq!(after.link_resets, 1);
        assert_eq!(after.words_sent - before.words_sent, 4, "two SYNCs, no fill");
        assert!(dev.is_in_sync());
        assert_eq!(dev.transport().port().dev.bias(), &[0, 0], "the BREAK reset the core");
        dev.sync().unwrap();
    }

    /// A port that cannot send a BREAK: `reset_link` says so and `resync` fills instead.
    #[test]
    fn without_a_break_resync_fills_the_payload() {
        let cfg = Config::new(2, 8, 8).unwrap();
        let mut dev = Device::open(SerialTransport::new(GoldenPort::new(cfg, 4096)), &cfg).unwrap();
        dev.send_words(&[spec::isa::header(opcode_write_act(), 40), 2 << 16]).unwrap();
        assert!(dev.sync().is_err());
        let before = dev.stats();
        dev.resync().unwrap();
        assert_eq!(dev.stats().link_resets, 0);
        assert!(dev.stats().words_sent - before.words_sent > 4, "fill words were sent");
        let mut t = SerialTransport::new(std::io::Cursor::new(Vec::<u8>::new()));
        assert!(!t.reset_link().unwrap());
    }

    fn opcode_write_act() -> u8 {
        spec::isa::opcode::WRITE_ACT
    }

    #[test]
    fn end_of_file_is_a_closed_link() {
        let mut t = SerialTransport::new(std::io::Cursor::new(Vec::<u8>::new()));
        assert!(matches!(t.recv(1, Duration::from_secs(1)), Err(TransportError::Closed)));
        assert_eq!(t.max_pending_words(), SERIAL_PENDING_WORDS);
    }

    #[test]
    fn opening_a_missing_port_is_an_error_not_a_panic() {
        let e = SerialTransport::open("/dev/protobrain-no-such-port", 115_200).unwrap_err();
        assert!(e.to_string().contains("cannot open /dev/protobrain-no-such-port"), "{e}");
    }
}
