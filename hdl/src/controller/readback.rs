//! READ_ACT / READ_ACC read-back: memory rows out through the row buffer at one word per
//! cycle, the next row read while the current one is sent.
//!
//! ```text
//!                  ┌──────────────────────── Readback ─────────────────────────┐
//!  start, ────────►│ addr, to_read ──► ren/raddr: read the next row when the    │──► ren, raddr (scratchpad or
//!  start_addr,     │                   memory's read_data is free (pref low)    │    accumulators: the front end
//!  start_rows      │                   or about to be taken                     │    routes them by opcode)
//!                  │ pref: read_data holds a row not yet in the row buffer      │
//!                  │ load = pref && (row buffer empty || its last word leaves)  │──► load (row buffer <- read_data)
//!  last_word ─────►│ loaded, idx: the row in the row buffer, the word offered   │──► valid, word_idx
//!  sent ──────────►│ left: rows not yet sent                                    │──► last (the command's last word)
//!                  └────────────────────────────────────────────────────────────┘
//! ```
//!
//! A row read on cycle `t` is in the memory's `read_data` on `t + 1` and stays there while no
//! other read is issued ([`spec::timing::MEM_READ_LATENCY`] = 1; the memories hold
//! `read_data` with `read_enable` low), so one row of look-ahead is enough: with the host
//! taking every word, the first word goes out two cycles after `start`'s edge (read, load)
//! and then one word per cycle with no gap between rows: `n · words` cycles for `n` rows
//! instead of `n · (2 + words)` with a read and a load before each row. `valid` is a
//! register (off the `out_ready` path). Nothing else reads or writes these memories while a
//! read-back runs (READ_ACT starts with the sequencer idle, READ_ACC with the array drained,
//! ACTIVATE is blocking), which is what makes reading ahead safe. `last_word` is the row's
//! last word index (W − 1 for READ_ACT, DIM − 1 for READ_ACC) and must stay fixed while it
//! runs. The native model's part of the same name is `sim::native::readback`.

use rust_hdl::prelude::*;

/// The read-back (see the module docs).
#[derive(LogicBlock)]
pub struct Readback {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset.
    pub rst: Signal<In, Bit>,
    /// Start a read-back of `start_rows` rows from `start_addr` on this edge.
    pub start: Signal<In, Bit>,
    /// First row.
    pub start_addr: Signal<In, Bits<16>>,
    /// Number of rows.
    pub start_rows: Signal<In, Bits<16>>,
    /// Index of a row's last word in the row buffer.
    pub last_word: Signal<In, Bits<16>>,
    /// The word offered (`valid`, `word_idx`) leaves on this edge.
    pub sent: Signal<In, Bit>,
    /// Read row `raddr` into the memory's `read_data` on this edge.
    pub ren: Signal<Out, Bit>,
    /// The row to read.
    pub raddr: Signal<Out, Bits<16>>,
    /// Load the row buffer from the memory's `read_data` on this edge.
    pub load: Signal<Out, Bit>,
    /// The row buffer holds a row: its word `word_idx` is offered.
    pub valid: Signal<Out, Bit>,
    /// The row buffer word offered.
    pub word_idx: Signal<Out, Bits<16>>,
    /// The word offered is the read-back's last.
    pub last: Signal<Out, Bit>,

    addr: DFF<Bits<16>>,
    to_read: DFF<Bits<16>>,
    left: DFF<Bits<16>>,
    pref: DFF<Bit>,
    loaded: DFF<Bit>,
    idx: DFF<Bits<16>>,
    row_end: Signal<Local, Bit>,
    consume: Signal<Local, Bit>,
    read: Signal<Local, Bit>,
    c_zero16: Constant<Bits<16>>,
    c_one16: Constant<Bits<16>>,
}

impl Logic for Readback {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, addr, to_read, left, pref, loaded, idx);
        // the last word of the row in the row buffer leaves now
        self.row_end.next =
            self.loaded.q.val() && self.sent.val() && (self.idx.q.val() == self.last_word.val());
        // read_data goes into the row buffer when the buffer is empty or its last word leaves
        self.consume.next = self.pref.q.val() && (!self.loaded.q.val() || self.row_end.val());
        // read the next row while read_data is free or being taken
        self.read.next =
            (self.to_read.q.val() != self.c_zero16.val()) && (!self.pref.q.val() || self.consume.val());

        self.ren.next = self.read.val();
        self.raddr.next = self.addr.q.val();
        self.load.next = self.consume.val();
        self.valid.next = self.loaded.q.val();
        self.word_idx.next = self.idx.q.val();
        self.last.next =
            (self.idx.q.val() == self.last_word.val()) && (self.left.q.val() == self.c_one16.val());

        if self.read.val() {
            self.addr.d.next = self.addr.q.val() + self.c_one16.val();
            self.to_read.d.next = self.to_read.q.val() - self.c_one16.val();
        }
        self.pref.d.next = self.read.val() || (self.pref.q.val() && !self.consume.val());
        self.loaded.d.next = self.consume.val() || (self.loaded.q.val() && !self.row_end.val());
        if self.loaded.q.val() && self.sent.val() {
            if self.row_end.val() {
                self.idx.d.next = self.c_zero16.val();
                self.left.d.next = self.left.q.val() - self.c_one16.val();
            } else {
                self.idx.d.next = self.idx.q.val() + self.c_one16.val();
            }
        }
        if self.start.val() {
            self.addr.d.next = self.start_addr.val();
            self.to_read.d.next = self.start_rows.val();
            self.left.d.next = self.start_rows.val();
            self.idx.d.next = self.c_zero16.val();
            self.pref.d.next = false;
            self.loaded.d.next = false;
        }
        if self.rst.val() {
            self.to_read.d.next = self.c_zero16.val();
            self.pref.d.next = false;
            self.loaded.d.next = false;
        }
    }
}

impl Readback {
    /// A read-back part.
    pub fn new() -> Self {
        Readback {
            clock: Default::default(),
            rst: Default::default(),
            start: Default::default(),
            start_addr: Default::default(),
            start_rows: Default::default(),
            last_word: Default::default(),
            sent: Default::default(),
            ren: Default::default(),
            raddr: Default::default(),
            load: Default::default(),
            valid: Default::default(),
            word_idx: Default::default(),
            last: Default::default(),
            addr: Default::default(),
            to_read: Default::default(),
            left: Default::default(),
            pref: Default::default(),
            loaded: Default::default(),
            idx: Default::default(),
            row_end: Default::default(),
            consume: Default::default(),
            read: Default::default(),
            c_zero16: Constant::new(0u64.into()),
            c_one16: Constant::new(1u64.into()),
        }
    }
}

impl Default for Readback {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, simulate, Port};

    const INPUTS: [(&str, usize); 6] =
        [("rst", 1), ("start", 1), ("start_addr", 16), ("start_rows", 16), ("last_word", 16), ("sent", 1)];
    const OUTPUTS: [(&str, usize); 6] =
        [("ren", 1), ("raddr", 16), ("load", 1), ("valid", 1), ("word_idx", 16), ("last", 1)];

    /// Closed loop around the part: a memory of `rows` rows of `words` words (word `j` of row
    /// `r` is `r << 8 | j`) with its `read_data` register, a row buffer, and a host taking a
    /// word when `ready[c % ready.len()]`. Read-backs of `jobs` (start row, rows) one after
    /// another. Returns the stimulus applied (for the Verilog replay), the outputs, the words
    /// sent per job and the cycle each job's last word left.
    #[allow(clippy::type_complexity)]
    fn run(
        words: u16,
        jobs: &[(u16, u16)],
        ready: &[bool],
    ) -> (Vec<Vec<u128>>, Vec<Vec<u128>>, Vec<Vec<u32>>, Vec<usize>) {
        let mut uut = Readback::new();
        uut.connect_all();
        let mut stim = vec![];
        let mut outs = vec![];
        let mut got: Vec<Vec<u32>> = vec![];
        let mut ends = vec![];
        let (mut read_data, mut rowbuf) = (None::<u16>, None::<u16>);
        let mut job = 0;
        let mut running = false;
        let mut cycle = 0;
        while job < jobs.len() {
            assert!(cycle < 10_000, "read-back hangs");
            let (start, (addr, n)) = (!running, jobs[job]);
            let valid = uut.valid.val();
            let sent = valid && ready[cycle % ready.len()];
            let row = vec![
                u128::from(cycle == 0),
                u128::from(start && cycle > 0),
                u128::from(addr),
                u128::from(n),
                u128::from(words - 1),
                u128::from(sent),
            ];
            let trace =
                simulate(&mut uut, |u| &mut u.clock, std::slice::from_ref(&row), apply, sample).unwrap();
            let o = &trace[0];
            if sent {
                let r = rowbuf.expect("a word offered with an empty row buffer");
                got.last_mut().unwrap().push((u32::from(r) << 8) | o[4] as u32);
                if o[5] == 1 {
                    ends.push(cycle);
                    running = false;
                    job += 1;
                }
            }
            if start && cycle > 0 {
                running = true;
                got.push(vec![]);
                if n == 0 {
                    ends.push(cycle);
                    running = false;
                    job += 1;
                }
            }
            // the memory and the row buffer on this edge
            if o[2] == 1 {
                rowbuf = read_data;
            }
            if o[0] == 1 {
                read_data = Some(o[1] as u16);
            }
            stim.push(row);
            outs.push(o.clone());
            cycle += 1;
        }
        (stim, outs, got, ends)
    }

    fn apply(u: &mut Readback, s: &[u128]) {
        u.rst.next = s[0] != 0;
        u.start.next = s[1] != 0;
        u.start_addr.next = (s[2] as u64).into();
        u.start_rows.next = (s[3] as u64).into();
        u.last_word.next = (s[4] as u64).into();
        u.sent.next = s[5] != 0;
    }

    fn sample(u: &Readback) -> Vec<u128> {
        let b = |x: bool| u128::from(x);
        vec![
            b(u.ren.val()),
            u.raddr.val().to_u64() as u128,
            b(u.load.val()),
            b(u.valid.val()),
            u.word_idx.val().to_u64() as u128,
            b(u.last.val()),
        ]
    }

    fn expected(words: u16, (addr, n): (u16, u16)) -> Vec<u32> {
        (addr..addr + n).flat_map(|r| (0..words).map(move |j| (u32::from(r) << 8) | u32::from(j))).collect()
    }

    #[test]
    fn rows_stream_at_one_word_per_cycle_without_stalls() {
        for words in [1u16, 2, 4] {
            let jobs = [(3u16, 5u16), (0, 1), (7, 0), (1, 3)];
            let (_, _, got, ends) = run(words, &jobs, &[true]);
            for (g, &j) in got.iter().zip(&jobs) {
                assert_eq!(*g, expected(words, j), "W {words}, job {j:?}");
            }
            // job 0 starts on the edge of cycle 1: read on 2, load on 3, words from 4 on
            assert_eq!(ends[0], 3 + 5 * usize::from(words), "W {words}");
            let n = usize::from(words);
            assert_eq!(ends[1], ends[0] + 1 + 2 + n, "W {words}");
        }
    }

    #[test]
    fn stalls_lose_and_repeat_nothing_and_the_verilog_agrees() {
        let mut rng = spec::rng::SplitMix64::new(0x5EAD);
        for words in [1u16, 2, 3, 4, 16] {
            let jobs: Vec<(u16, u16)> = (0..6).map(|_| (rng.below(40) as u16, rng.below(6) as u16)).collect();
            let ready: Vec<bool> = (0..37).map(|_| rng.chance(0.6)).collect();
            let (stim, outs, got, _) = run(words, &jobs, &ready);
            for (g, &j) in got.iter().zip(&jobs) {
                assert_eq!(*g, expected(words, j), "W {words}, job {j:?}");
            }
            let mut uut = Readback::new();
            uut.connect_all();
            let ins: Vec<Port> = INPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect();
            let outputs: Vec<Port> = OUTPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect();
            let rtl = replay(&generate_verilog(&uut), "top", "clock", &ins, &outputs, &stim).unwrap();
            // raddr is the next row's address even when no read is issued: compare it on reads
            let mask = |t: &[Vec<u128>]| -> Vec<Vec<u128>> {
                t.iter()
                    .map(|r| if r[0] == 0 { vec![0, 0, r[2], r[3], r[4], r[5]] } else { r.clone() })
                    .collect()
            };
            assert_eq!(mask(&rtl), mask(&outs), "Verilog, W {words}");
        }
    }

    #[test]
    fn readback_is_synthesizable() {
        let mut uut = Readback::new();
        uut.connect_all();
        yosys_validate("readback", &generate_verilog(&uut)).unwrap();
    }
}
