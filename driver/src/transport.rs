//! Transports: a 32-bit word stream to one device and back.
//!
//! ```text
//!            send(words) ──────────────►  ┌──────────┐
//!   Device                                │  device  │   GoldenDevice, a UART board, or a
//!   (host)   recv(n, timeout) ◄────────── └──────────┘   cycle simulator (implemented in sim/)
//! ```
//!
//! A [`Transport`] only moves words; it knows nothing about commands. The rules every
//! implementation keeps:
//!
//! * `send` hands the words over in order (it may buffer them; a simulator may only queue them
//!   and run the clock in `recv`).
//! * `recv(n, timeout)` returns exactly `n` words, or [`TransportError::Timeout`] once the
//!   device has produced nothing for `timeout` — never a hang. The timeout bounds silence, not
//!   the whole transfer, so a long response over a slow link is fine. On a timeout no word is
//!   lost: the words that did arrive are returned first by the next `recv`.
//! * A transport without a wall clock (a cycle simulator) bounds `recv` by a cycle budget of its
//!   own and reports the same `Timeout` when it runs out.

use spec::lanes::{Framer, Stream, Unframer};
use spec::{Config, GoldenDevice};
use std::collections::VecDeque;
use std::time::Duration;
use thiserror::Error;

/// A link failure.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The device stopped answering: nothing arrived for `timeout` (it may be waiting for input
    /// that was lost, or be stuck).
    #[error("timed out after {timeout:?} without an answer, waiting for {wanted} words from the device ({got} arrived)")]
    Timeout {
        /// Words asked for.
        wanted: usize,
        /// Words that had arrived (they stay queued for the next `recv`).
        got: usize,
        /// The silence (or the simulator's equivalent cycle budget) that ran out.
        timeout: Duration,
    },
    /// The other end closed the link (end of file on the port).
    #[error("the link to the device is closed")]
    Closed,
    /// An operating-system error on the link.
    #[error("I/O error on the link to the device: {0}")]
    Io(#[from] std::io::Error),
    /// A failure particular to one transport (a simulator that stopped taking input, ...).
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// A 32-bit word stream to and from one device (see the module docs for the rules).
pub trait Transport {
    /// Hand `words` to the device, in order.
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError>;

    /// Receive exactly `n` words; [`TransportError::Timeout`] once nothing has arrived for
    /// `timeout` (the words that did arrive stay queued).
    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError>;

    /// How many response words may be left unread on the host side before some are lost (an
    /// OS serial buffer is finite). The [`crate::Device`] reads responses before more than this
    /// many are outstanding. Unbounded by default.
    fn max_pending_words(&self) -> usize {
        usize::MAX
    }

    /// Reset the link and the device behind it from the host, whatever state the word stream
    /// is in (a line BREAK on a UART: docs/design.md "Link recovery"), and discard whatever
    /// the device had sent. `Ok(true)` once done: the device is in its reset state (weights,
    /// bias and quantisation zero; its memories keep their contents). `Ok(false)` if this
    /// transport has no such means (the default); [`crate::Device::resync`] then recovers
    /// with the stream alone.
    fn reset_link(&mut self) -> Result<bool, TransportError> {
        Ok(false)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        (**self).send(words)
    }
    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        (**self).recv(n, timeout)
    }
    fn max_pending_words(&self) -> usize {
        (**self).max_pending_words()
    }
    fn reset_link(&mut self) -> Result<bool, TransportError> {
        (**self).reset_link()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        (**self).send(words)
    }
    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        (**self).recv(n, timeout)
    }
    fn max_pending_words(&self) -> usize {
        (**self).max_pending_words()
    }
    fn reset_link(&mut self) -> Result<bool, TransportError> {
        (**self).reset_link()
    }
}

/// The functional golden device ([`spec::GoldenDevice`]) behind the transport interface: words
/// are executed as they are sent, responses are queued. Untimed, so `recv` answers at once:
/// if fewer than `n` words are queued, nothing more can come and it times out immediately.
/// At LANES > 1 (the device's `Config::lanes`) the words on the link are beats, flattened:
/// they are unframed into commands and the responses framed (docs/design.md "A wider link").
#[derive(Debug, Clone)]
pub struct GoldenTransport {
    device: GoldenDevice,
    out: VecDeque<u32>,
    /// LANES > 1: the command beats taken apart and the responses put in beats.
    lanes: Option<(Unframer, Framer)>,
    words: Vec<u32>,
}

impl GoldenTransport {
    /// A golden device of `cfg` at power-on.
    pub fn new(cfg: Config) -> Self {
        GoldenTransport::from_device(GoldenDevice::new(cfg))
    }

    /// Wrap an existing golden device (with its state).
    pub fn from_device(device: GoldenDevice) -> Self {
        let cfg = *device.config();
        let lanes = (cfg.lanes().get() > 1).then(|| {
            (
                Unframer::new(Stream::Commands, cfg, cfg.lanes()),
                Framer::new(Stream::Responses, cfg, cfg.lanes()),
            )
        });
        GoldenTransport { device, out: VecDeque::new(), lanes, words: Vec::new() }
    }

    /// The device, to inspect its state.
    pub fn device(&self) -> &GoldenDevice {
        &self.device
    }

    /// Response words produced and not yet received.
    pub fn queued(&self) -> usize {
        self.out.len()
    }
}

impl Transport for GoldenTransport {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        let Some((unframer, framer)) = &mut self.lanes else {
            self.device.push_all(words.iter().copied());
            self.out.extend(self.device.take_output());
            return Ok(());
        };
        let l = self.device.config().lanes().get();
        for beat in words.chunks(l) {
            self.words.clear();
            unframer.push(beat, &mut self.words);
            self.device.push_all(self.words.iter().copied());
        }
        self.words.clear();
        framer.push(&self.device.take_output(), &mut self.words);
        self.out.extend(&self.words);
        Ok(())
    }

    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        if self.out.len() < n {
            return Err(TransportError::Timeout { wanted: n, got: self.out.len(), timeout });
        }
        Ok(self.out.drain(..n).collect())
    }
}

/// A transport wrapper that records every word sent and received: the exact transcript of a
/// session (what a `.bin` export of a program must equal, for instance).
#[derive(Debug, Clone, Default)]
pub struct Recorder<T> {
    inner: T,
    /// Every word sent, in order.
    pub sent: Vec<u32>,
    /// Every word received, in order.
    pub received: Vec<u32>,
}

impl<T> Recorder<T> {
    /// Record the traffic of `inner`.
    pub fn new(inner: T) -> Self {
        Recorder { inner, sent: Vec::new(), received: Vec::new() }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped transport, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwrap.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Transport> Transport for Recorder<T> {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        self.inner.send(words)?;
        self.sent.extend_from_slice(words);
        Ok(())
    }

    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        let words = self.inner.recv(n, timeout)?;
        self.received.extend_from_slice(&words);
        Ok(words)
    }

    fn max_pending_words(&self) -> usize {
        self.inner.max_pending_words()
    }

    fn reset_link(&mut self) -> Result<bool, TransportError> {
        self.inner.reset_link()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::isa::{header, opcode, RESPONSE_BIT};

    #[test]
    fn golden_answers_and_times_out_without_losing_words() {
        let cfg = Config::new(4, 8, 8).unwrap();
        let mut t = Recorder::new(GoldenTransport::new(cfg));
        t.send(&[header(opcode::SYNC, 1), 0xABCD]).unwrap();
        // two words are queued; asking for three times out at once and keeps both
        match t.recv(3, Duration::from_millis(5)) {
            Err(TransportError::Timeout { wanted: 3, got: 2, .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(t.inner().queued(), 2);
        assert_eq!(t.recv(2, Duration::ZERO).unwrap(), vec![header(opcode::SYNC | RESPONSE_BIT, 1), 0xABCD]);
        assert_eq!(t.sent, vec![header(opcode::SYNC, 1), 0xABCD]);
        assert_eq!(t.received.len(), 2);
        assert_eq!(t.max_pending_words(), usize::MAX);
    }

    #[test]
    fn timeout_message_says_what_was_missing() {
        let e = TransportError::Timeout { wanted: 5, got: 1, timeout: Duration::from_millis(250) };
        assert_eq!(
            e.to_string(),
            "timed out after 250ms without an answer, waiting for 5 words from the device (1 arrived)"
        );
    }
}
