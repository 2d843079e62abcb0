//! The golden device: a functional (untimed) interpreter of the command stream.
//!
//! It holds exactly the architectural state of the hardware — scratchpad, accumulators,
//! shadow and active weight tiles, bias, quantisation, counters — and answers every command
//! with the exact words the hardware must produce, including the error rules: a bad command is
//! consumed whole, changes nothing and answers 0xFF. The RTL and the cycle simulators are
//! checked against it word for word (except the timed COUNTERS words, which it answers as 0:
//! see [`crate::isa::TIMED_COUNTER_WORDS`]).
//!
//! State after reset: weights, bias and quantisation are zero (every column's M = 0, S = 0, no
//! ReLU, zero point 0); the memories are zero at power-on (a reset does not clear them in
//! hardware).
//!
//! Quantisation state (contract v2): one (M, S) per column, ReLU and the output zero point Z.
//! SET_QUANT sets every column's (M, S), ReLU and Z (0 in its 1-word form); LOAD_QUANT sets the
//! columns' (M, S) only.

use crate::arith::{dot, requantize_v2, ColumnScale, Quant};
use crate::config::Config;
use crate::isa::{Command, CommandDecoder, CommandError, Counters, Response};
use crate::lanes::{frame, unframe, Lanes, Stream};

/// The functional model of one protobrain core.
#[derive(Debug, Clone)]
pub struct GoldenDevice {
    cfg: Config,
    decoder: CommandDecoder,
    scratch: Vec<i8>,
    acc: Vec<i32>,
    shadow: Vec<i8>,
    active: Vec<i8>,
    shadow_pending: bool,
    bias: Vec<i32>,
    scales: Vec<ColumnScale>,
    relu: bool,
    zero_point: i8,
    counters: Counters,
    out: Vec<u32>,
}

impl GoldenDevice {
    /// A device at power-on.
    pub fn new(cfg: Config) -> Self {
        let d = cfg.dim();
        GoldenDevice {
            cfg,
            decoder: CommandDecoder::new(cfg),
            scratch: vec![0; cfg.scratch_rows() * d],
            acc: vec![0; cfg.acc_rows() * d],
            shadow: vec![0; d * d],
            active: vec![0; d * d],
            shadow_pending: false,
            bias: vec![0; d],
            scales: vec![ColumnScale::default(); d],
            relu: false,
            zero_point: 0,
            counters: Counters::default(),
            out: Vec::new(),
        }
    }

    /// Run a whole word stream from power-on and return every output word.
    pub fn run(cfg: Config, words: &[u32]) -> Vec<u32> {
        let mut dev = GoldenDevice::new(cfg);
        dev.push_all(words.iter().copied());
        dev.take_output()
    }

    /// Run a whole stream of beats of `lanes` words (flattened) from power-on and return
    /// every output beat, flattened: the same device behind the framing of [`crate::lanes`].
    pub fn run_lanes(cfg: Config, lanes: Lanes, beats: &[u32]) -> Vec<u32> {
        let words = unframe(beats, Stream::Commands, &cfg, lanes);
        frame(&GoldenDevice::run(cfg, &words), Stream::Responses, &cfg, lanes)
    }

    /// [`GoldenDevice::run_lanes`] for comparing with a timed device: every output word
    /// (padding lanes included), `None` where it is a timed COUNTERS word
    /// ([`crate::isa::TIMED_COUNTER_WORDS`]), which the untimed golden device answers as 0.
    pub fn run_lanes_untimed(cfg: Config, lanes: Lanes, beats: &[u32]) -> Vec<Option<u32>> {
        let mut words = GoldenDevice::run(cfg, &unframe(beats, Stream::Commands, &cfg, lanes));
        let want = frame(&words, Stream::Responses, &cfg, lanes);
        // mark the timed words (all ones) and frame again: the marks show where they sit
        let mut i = 0;
        while i < words.len() {
            let (op, len) = crate::isa::split_header(words[i]);
            if op == crate::isa::opcode::COUNTERS | crate::isa::RESPONSE_BIT {
                for t in crate::isa::TIMED_COUNTER_WORDS {
                    words[i + 1 + t] = u32::MAX;
                }
            }
            i += 1 + len as usize;
        }
        let marked = frame(&words, Stream::Responses, &cfg, lanes);
        want.into_iter().zip(marked).map(|(w, m)| (w == m).then_some(w)).collect()
    }

    /// A reset (the `rst` pin, or a BREAK on a board's UART): back to the state after reset —
    /// no command half parsed, weights, bias, quantisation and counters zero, no answer
    /// pending — with the memories' contents kept, as in hardware.
    pub fn reset(&mut self) {
        let (scratch, acc) = (std::mem::take(&mut self.scratch), std::mem::take(&mut self.acc));
        *self = GoldenDevice { scratch, acc, ..GoldenDevice::new(self.cfg) };
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Feed one input word; responses are appended to the output queue.
    pub fn push(&mut self, word: u32) {
        if let Some(result) = self.decoder.push(word) {
            let response = match result {
                Ok(cmd) => self.execute_checked(&cmd),
                Err(e) => Some(self.error(e)),
            };
            if let Some(r) = response {
                r.encode_into(self.cfg.dim(), &mut self.out);
            }
        }
    }

    /// Feed many input words.
    pub fn push_all(&mut self, words: impl IntoIterator<Item = u32>) {
        words.into_iter().for_each(|w| self.push(w));
    }

    /// Take every output word produced so far.
    pub fn take_output(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.out)
    }

    /// True between commands.
    pub fn is_idle(&self) -> bool {
        self.decoder.is_idle()
    }

    /// Execute one typed command (checked against the Config like a decoded one); returns the
    /// response, if the command has one. Does not touch the word-stream decoder.
    pub fn execute(&mut self, cmd: &Command) -> Option<Response> {
        match cmd.check(&self.cfg) {
            Ok(()) => self.execute_checked(cmd),
            Err(e) => Some(self.error(e)),
        }
    }

    fn error(&mut self, e: CommandError) -> Response {
        self.counters.commands += 1;
        self.counters.errors += 1;
        Response::Error(e)
    }

    fn execute_checked(&mut self, cmd: &Command) -> Option<Response> {
        let response = match cmd {
            Command::Info => Some(Response::info(&self.cfg)),
            Command::Sync { token } => Some(Response::Sync { token: *token }),
            Command::LoadWeights { weights } => {
                self.shadow.copy_from_slice(weights);
                self.shadow_pending = true;
                None
            }
            Command::LoadTile { src } => {
                let (src, d) = (usize::from(*src), self.cfg.dim());
                for k in 0..d {
                    let row = self.scratch_row(src + k).to_vec();
                    self.shadow[k * d..(k + 1) * d].copy_from_slice(&row);
                }
                self.shadow_pending = true;
                None
            }
            Command::LoadBias { bias } => {
                self.bias.copy_from_slice(bias);
                None
            }
            Command::SetQuant(q) => {
                self.set_quant(*q, 0);
                None
            }
            Command::SetQuantZp { quant, zero_point } => {
                self.set_quant(*quant, *zero_point);
                None
            }
            Command::LoadQuant { scales } => {
                self.scales.copy_from_slice(scales);
                None
            }
            Command::WriteAct { dst, rows } => {
                for (i, row) in rows.iter().enumerate() {
                    self.scratch_row_mut(usize::from(*dst) + i).copy_from_slice(row);
                }
                None
            }
            Command::ReadAct { src, n } => Some(Response::ReadAct {
                rows: (0..usize::from(*n))
                    .map(|i| self.scratch_row(usize::from(*src) + i).to_vec())
                    .collect(),
            }),
            Command::Matmul { src, n, dst, accumulate } => {
                if self.shadow_pending {
                    self.active.copy_from_slice(&self.shadow);
                    self.shadow_pending = false;
                }
                for i in 0..usize::from(*n) {
                    let x = self.scratch_row(usize::from(*src) + i).to_vec();
                    let row = self.matmul_row(&x);
                    let out = self.acc_row_mut(usize::from(*dst) + i);
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = if *accumulate { o.wrapping_add(v) } else { v };
                    }
                }
                self.counters.macs += u64::from(*n) * self.cfg.macs_per_row();
                None
            }
            Command::Activate { src, n, dst } => {
                for i in 0..usize::from(*n) {
                    let acc = self.acc_row(usize::from(*src) + i).to_vec();
                    let y: Vec<i8> = (acc.iter().zip(&self.bias).zip(&self.scales))
                        .map(|((&a, &b), &c)| requantize_v2(a, b, c, self.relu, self.zero_point))
                        .collect();
                    self.scratch_row_mut(usize::from(*dst) + i).copy_from_slice(&y);
                }
                None
            }
            Command::ReadAcc { src, n } => Some(Response::ReadAcc {
                rows: (0..usize::from(*n)).map(|i| self.acc_row(usize::from(*src) + i).to_vec()).collect(),
            }),
            Command::Counters => Some(Response::Counters(self.counters)),
        };
        self.counters.commands += 1;
        response
    }

    fn set_quant(&mut self, q: Quant, zero_point: i8) {
        self.scales.fill(q.into());
        self.relu = q.relu;
        self.zero_point = zero_point;
    }

    /// One row through the array: `out[n] = sum_k x[k] * W[k][n]`, int32 wrap.
    fn matmul_row(&self, x: &[i8]) -> Vec<i32> {
        let d = self.cfg.dim();
        (0..d).map(|n| dot(x.iter().copied(), (0..d).map(|k| self.active[k * d + n]))).collect()
    }

    /// Scratchpad row `r` (DIM int8).
    pub fn scratch_row(&self, r: usize) -> &[i8] {
        let d = self.cfg.dim();
        &self.scratch[r * d..(r + 1) * d]
    }
    fn scratch_row_mut(&mut self, r: usize) -> &mut [i8] {
        let d = self.cfg.dim();
        &mut self.scratch[r * d..(r + 1) * d]
    }
    /// Accumulator row `r` (DIM int32).
    pub fn acc_row(&self, r: usize) -> &[i32] {
        let d = self.cfg.dim();
        &self.acc[r * d..(r + 1) * d]
    }
    fn acc_row_mut(&mut self, r: usize) -> &mut [i32] {
        let d = self.cfg.dim();
        &mut self.acc[r * d..(r + 1) * d]
    }
    /// The weight tile MATMUL uses now (`[k * dim + n]`).
    pub fn active_weights(&self) -> &[i8] {
        &self.active
    }
    /// The bias vector.
    pub fn bias(&self) -> &[i32] {
        &self.bias
    }
    /// The current quantisation as SET_QUANT sets it: column 0's (M, S) and ReLU (every
    /// column's unless a LOAD_QUANT set them apart; see [`GoldenDevice::scales`]).
    pub fn quant(&self) -> Quant {
        self.scales[0].with_relu(self.relu)
    }
    /// Every column's (M, S).
    pub fn scales(&self) -> &[ColumnScale] {
        &self.scales
    }
    /// The output zero point Z.
    pub fn zero_point(&self) -> i8 {
        self.zero_point
    }
    /// The counters (timed ones are 0).
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{header, opcode};

    /// `run_lanes_untimed` is `run_lanes` with exactly the timed COUNTERS words left out,
    /// wherever the framing puts them (INFO first, so the counters' response starts mid-beat).
    #[test]
    fn run_lanes_untimed_leaves_out_exactly_the_timed_counter_words() {
        let cfg = Config::new(2, 8, 4).unwrap();
        for l in [1, 2, 4, 8] {
            let lanes = Lanes::new(l).unwrap();
            let words = [Command::Info.encode(2).unwrap(), Command::Counters.encode(2).unwrap()].concat();
            let beats = frame(&words, Stream::Commands, &cfg, lanes);
            let want = GoldenDevice::run_lanes(cfg, lanes, &beats);
            let got = GoldenDevice::run_lanes_untimed(cfg, lanes, &beats);
            assert_eq!(got.len(), want.len());
            assert!(got.iter().zip(&want).all(|(g, w)| g.is_none() || *g == Some(*w)), "LANES {l}");
            assert_eq!(got.iter().filter(|g| g.is_none()).count(), crate::isa::TIMED_COUNTER_WORDS.len());
            if l == 1 {
                // unframed: the response's last COUNTER_WORDS words are the counters
                let first = want.len() - crate::isa::COUNTER_WORDS;
                let left_out: Vec<usize> = (0..got.len()).filter(|&i| got[i].is_none()).collect();
                let timed: Vec<usize> = crate::isa::TIMED_COUNTER_WORDS.iter().map(|t| first + t).collect();
                assert_eq!(left_out, timed);
            }
        }
    }

    /// A reset (a BREAK on a board) drops a half-parsed command and the loaded state but keeps
    /// the memories.
    #[test]
    fn reset_keeps_the_memories_and_nothing_else() {
        let cfg = Config::new(2, 4, 4).unwrap();
        let mut dev = GoldenDevice::new(cfg);
        dev.execute(&Command::WriteAct { dst: 1, rows: vec![vec![3, -4]] });
        dev.execute(&Command::LoadBias { bias: vec![5, 6] });
        dev.execute(&Command::LoadWeights { weights: vec![1, 2, 3, 4] });
        dev.execute(&Command::Matmul { src: 1, n: 1, dst: 2, accumulate: false });
        dev.push_all([header(0x77, crate::isa::MAX_LEN), 9]); // inside a huge payload
        dev.reset();
        assert!(dev.is_idle());
        assert_eq!((dev.bias(), dev.active_weights()), (&[0, 0][..], &[0, 0, 0, 0][..]));
        assert_eq!((dev.scratch_row(1), dev.acc_row(2)), (&[3, -4][..], &[-9, -10][..]));
        assert_eq!(dev.counters(), Counters::default());
        dev.push_all([header(opcode::SYNC, 1), 42]);
        assert_eq!(dev.take_output(), vec![header(opcode::SYNC | 0x80, 1), 42]);
    }
}
