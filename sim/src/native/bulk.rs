//! Fast-forward: many cycles at once where the front end does something simple and known.
//!
//! * **Blind windows**: the front end's state cannot change and it neither takes nor sends a
//!   word (`in_ready` and `out_valid` low), so the host's inputs do not matter. That is where a
//!   GEMM spends most of its cycles: the next MATMUL (or ACTIVATE, READ_ACC, SYNC, COUNTERS)
//!   waiting in Exec/SyncWait for the array, an ACTIVATE streaming rows, LOAD_WEIGHTS waiting
//!   for the shadow bank to drain.
//! * **Input runs**: the front end takes a payload word every cycle (LOAD_WEIGHTS, LOAD_BIAS,
//!   WRITE_ACT rows, a refused command's payload) and the host offers one every cycle.
//! * **Output runs**: the front end sends READ_ACT / READ_ACC rows, a word every cycle (each
//!   row end loads the row read ahead and reads the next), and the host takes one every cycle.
//!
//! All three split a window of `k` cycles into the *background* (the MATMUL sequencer, the two
//! landing pipelines, the countdowns and cycle/MAC counters), which does not depend on the
//! front end inside such a window, and the front end's own effect:
//!
//! ```text
//!  cycle:   now ──────────────────── window (k cycles) ─────────────────────► now + k
//!  issue:   row row row ... row  (s = min(k, seq_left) rows, one per cycle)
//!  land:    pipe rows due < now+k, then new rows due < now+k  ──► acc (in due order)
//!  carry:   new rows due >= now+k ──► rows Pipe (sums computed now, as in `step`)
//!  front:   closed form (blind), one payload word per cycle in (input run) or out (output run)
//! ```
//!
//! Writes land in the same order and with the same values as stepping cycle by cycle: rows
//! already in a pipe are due before any row issued in the window; what the background reads
//! (scratchpad rows for MATMUL, the current weight bank) no front end in these windows writes
//! (WRITE_ACT starts only with the sequencer idle, LOAD_WEIGHTS writes the shadow bank), and
//! what the front end reads (accumulators for ACTIVATE) the background no longer writes
//! (ACTIVATE starts only with the array drained). The lockstep tests compare `run_stream`
//! (which uses this) with the per-tick path on every backend.

use std::collections::VecDeque;

use super::{NativeSim, State};
use crate::native::pipe::Landing;
use spec::arith::requantize_v2;
use spec::config::MAX_DIM;
use spec::isa::opcode;
use spec::lanes::MAX_LANES;

/// What a fast-forwarded stretch of cycles did, enough to account for each of its cycles
/// without stepping them (the estimator's cycle breakdown does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    /// Cycles advanced.
    pub cycles: u64,
    /// Rows issued into the array, one on each of the stretch's first `issued` cycles (the
    /// cycles on which the MAC count rises).
    pub issued: u64,
    /// The last cycle of the stretch (counted from 0 at its first) on which a row landed in
    /// the accumulators, if one did.
    pub last_acc_write: Option<u64>,
}

impl NativeSim {
    /// Fast-forward up to `max` cycles through a *blind* window: cycles on which `in_ready`
    /// and `out_valid` stay low and the host's inputs change nothing (see the module docs).
    /// `None`, having done nothing, if fewer than two such cycles lie ahead; then step with
    /// [`crate::CycleSim::tick`].
    pub fn skip_blind(&mut self, max: u64) -> Option<Stretch> {
        let k = self.blind_window().min(max);
        (k > 1).then(|| self.advance_blind(k))
    }

    /// Take a prefix of `words`, one on each cycle from now, while the front end takes a
    /// payload word every cycle (`in_ready` high, `out_valid` low): the host must offer a word
    /// on each of these cycles. Returns the stretch (its `cycles` words were taken), or `None`,
    /// having done nothing, if fewer than two words would go this way. At LANES > 1 `words` is
    /// flattened beats and a beat goes per cycle (`cycles` beats were taken).
    pub fn take_run(&mut self, words: &[u32]) -> Option<Stretch> {
        let l = self.lanes;
        let beats = if l == 1 { words.len() } else { words.len() / l };
        let m = self.input_window().min(beats as u64);
        (m > 1).then(|| self.take_words(&words[..m as usize * l]))
    }

    /// Send the next words of a read-back row, one on each cycle from now, at most `max`: the
    /// host takes one on every one of these cycles (`out_ready` high). Returns the stretch and
    /// the words sent, or `None`, having done nothing, if fewer than two words would go this
    /// way (see [`NativeSim::output_window`]). At LANES > 1 a beat goes per cycle, `max`
    /// counts beats and the words are flattened beats.
    pub fn send_run(&mut self, max: u64) -> Option<(Stretch, &[u32])> {
        let k = self.output_window().min(max);
        (k > 1).then(|| self.send_words(k))
    }

    /// Stop computing the array's sums: from now on a row issued lands nothing new in the
    /// accumulators (they, and what ACTIVATE and READ_* make of them, keep stale values), while
    /// every cycle, handshake and counter stays exactly what it would be (no part of the
    /// controller depends on a sum), and so does every activity count unless an ACTIVATE's rows
    /// become operands (the zero-operand count comes from the operands). Tested on random
    /// streams. For runs whose cycles and activity are all that is read and that have no
    /// ACTIVATE: the estimator's derived runs (MATMULs over X the host wrote).
    pub fn skip_sums(&mut self) {
        self.kernel = super::kernel::select_operands(self.dim);
    }

    /// [`NativeSim::skip_sums`], and stop counting the products with a zero operand too
    /// ([`crate::Activity::zero_operand_macs`] stays where it is): every cycle, handshake and
    /// counter stays exactly what it would be, as does every other activity count. For runs
    /// whose cycles alone are read: the estimator's weight-stream run.
    pub fn timing_only(&mut self) {
        self.kernel = super::kernel::nothing;
    }

    /// [`crate::CycleSim::pump`] with blind windows and input runs fast-forwarded.
    pub(super) fn pump_bulk(
        &mut self,
        input: &mut VecDeque<u32>,
        output: &mut VecDeque<u32>,
        keep: usize,
        want: usize,
        silence: u64,
    ) -> bool {
        let mut silent = 0u64;
        while input.len() > keep || output.len() < want {
            // a blind window moves no word: it counts towards the silence, which must run out
            // on the same cycle as when stepping
            if let Some(s) = self.skip_blind(silence - silent) {
                silent += s.cycles;
                if silent >= silence {
                    return false;
                }
                continue;
            }
            // the host offers its words back to back; stop with `keep` left once enough came back
            let room = if output.len() >= want { input.len() - keep } else { input.len() };
            let (front, _) = input.as_slices();
            if let Some(s) = self.take_run(&front[..room.min(front.len())]) {
                input.drain(..s.cycles as usize * self.lanes);
                silent = 0;
                continue;
            }
            // the device sends a row back to back (the host is always ready); no input moves
            let max =
                if input.len() > keep { u64::MAX } else { (want - output.len()).div_ceil(self.lanes) as u64 };
            if let Some((_, words)) = self.send_run(max) {
                output.extend(words);
                silent = 0;
                continue;
            }
            let moved = if self.lanes == 1 {
                crate::pump_cycle(input, output, |drive| self.step(drive, false))
            } else {
                let (mut beat, mut out) = ([0u32; MAX_LANES], [0u32; MAX_LANES]);
                let l = self.lanes;
                crate::pump_beat(input, output, &mut beat[..l], &mut out[..l], |i, b, o| {
                    crate::CycleSim::tick_beat(self, i, b, true, o)
                })
            };
            silent = if moved { 0 } else { silent + 1 };
            if silent >= silence {
                return false;
            }
        }
        true
    }
    /// Cycles from now during which the front end is blind (see the module docs); 0 if the
    /// next cycle may take or send a word or change state.
    pub(super) fn blind_window(&self) -> u64 {
        let r = &self.r;
        if r.ctr.done_r || r.ctr.err_r {
            return 0; // a counter increment is due on the next cycle
        }
        // cycles until `arr_idle` (no row issued or in flight)
        let drain = u64::from(self.arr_drain);
        let arr_wait = if r.seq.busy { u64::from(r.seq.left) + drain } else { u64::from(r.seq.arr_cnt) };
        // cycles until the banks in `t` are free (scratchpad) or quiet (accumulators): the
        // MATMUL's last issue, and for the accumulators its rows' drain
        let seq_wait = |ok: bool| if ok { 0 } else { u64::from(r.seq.left) };
        let acc_wait = |t: [bool; 2]| {
            (0..2)
                .filter(|&b| t[b])
                .map(|b| {
                    if r.seq.busy && r.seq.acc_touch[b] {
                        u64::from(r.seq.left) + drain
                    } else {
                        u64::from(r.seq.acc_cnt[b])
                    }
                })
                .max()
                .unwrap_or(0)
        };
        // cycles until the ACTIVATE engine is idle (0 if it is), or while a clash holds
        let act_wait = r.act.busy_for();
        let clash_wait = |clash: bool| if clash { act_wait } else { 0 };
        let quiet = !r.wl.pending && !r.sw_pending && !r.ql_pending;
        match r.state {
            State::Exec if self.range_ok(r) => {
                let (sp_a, acc_a, sp_b, acc_b) = self.touches(r);
                match r.op {
                    opcode::MATMUL => {
                        seq_wait(!r.seq.busy).max(clash_wait(r.act.sp_clash() || r.act.acc_clash(acc_b)))
                    }
                    opcode::READ_ACT | opcode::LOAD_TILE => {
                        seq_wait(r.seq.sp_ok(sp_a)).max(clash_wait(r.act.sp_clash()))
                    }
                    opcode::WRITE_ACT => {
                        seq_wait(r.seq.rows_free(r.a0 as u16, (r.a0 >> 16) as u16)).max(act_wait)
                    }
                    opcode::READ_ACC => acc_wait(acc_a).max(act_wait),
                    opcode::ACTIVATE => acc_wait(acc_a).max(seq_wait(r.seq.sp_ok(sp_b))).max(act_wait),
                    _ => 0,
                }
            }
            State::SyncWait if !r.wl.pending && !r.sw_pending => arr_wait.max(act_wait),
            // the activation registers' writers wait for the engine (in_ready low)
            State::Bias if quiet => act_wait,
            State::Arg0 if quiet && r.op == opcode::SET_QUANT => act_wait,
            State::Arg1 if quiet && r.op == opcode::SET_QUANT && self.lanes == 1 => act_wait,
            // shadow-bank interlock: in_ready low while rows using that bank are in flight
            State::Weights if !r.wl.pending && !r.sw_pending && self.shadow_stays_free() => {
                u64::from(r.seq.bank_cnt[usize::from(!r.wl.cur_bank)])
            }
            _ => 0,
        }
    }

    /// Rows issued meanwhile use the current bank (as they always do while LOAD_WEIGHTS runs),
    /// so the shadow bank's countdown only falls.
    fn shadow_stays_free(&self) -> bool {
        !self.r.seq.busy || self.r.seq.bank == self.r.wl.cur_bank
    }

    /// Advance `k` cycles of a blind window (`k <= blind_window()`), host inputs irrelevant.
    pub(super) fn advance_blind(&mut self, k: u64) -> Stretch {
        debug_assert!(k <= self.blind_window(), "advance_blind({k}) past the blind window");
        if k == 0 {
            return Stretch { cycles: 0, issued: 0, last_acc_write: None };
        }
        let q = self.r;
        let stretch = self.advance_background(k);
        match q.state {
            State::Exec => {
                self.r.addr = q.a0 as u16;
                self.r.left = (q.a0 >> 16) as u16;
                self.r.idx = 0;
            }
            State::SyncWait => self.r.idx = 0,
            _ => {}
        }
        self.now += k;
        stretch
    }

    /// The ACTIVATE engine's rows read on cycles `now .. now + k` (as many as it has left),
    /// requantised now and written to the scratchpad where they land inside the window, else
    /// queued; its registers after the window. `now` is left alone.
    fn engine_rows(&mut self, k: u64, q: &super::Regs) {
        let dim = self.dim;
        let s = k.min(u64::from(q.act.left));
        let (now, end) = (self.now, self.now + k);
        let (relu, z) = (q.q_relu, q.q_zero as i8);
        let mut y = [0i8; MAX_DIM];
        let y = &mut y[..dim];
        for i in 0..s {
            let src = (usize::from(q.act.src.wrapping_add(i as u16)) & self.acc_mask) * dim;
            let row = self.acc[src..src + dim].iter().zip(&self.bias).zip(&self.scales);
            for (y, ((&a, &b), &c)) in y.iter_mut().zip(row) {
                *y = requantize_v2(a, b, c, relu, z);
            }
            let due = now + i + spec::timing::ACT_WRITEBACK_DELAY as u64;
            let dst16 = q.act.dst.wrapping_add(i as u16);
            if due < end {
                let dst = (usize::from(dst16) & self.scratch_mask) * dim;
                self.scratch[dst..dst + dim].copy_from_slice(y);
                self.activity.scratch_writes += 1;
            } else {
                self.acts.push(Landing { due, dst: dst16, accumulate: false }).copy_from_slice(y);
            }
        }
        self.r.act = q.act.advance(k);
        let a = &mut self.activity;
        a.acc_reads += s;
        a.act_rows += s;
        a.act_busy_cycles += q.act.busy_cycles(k);
    }

    /// Payload words (beats) the front end would take back to back from now, one per cycle,
    /// before its state changes (0 outside the payload states, or if a pending row write or the
    /// shadow-bank interlock makes the next cycles special).
    pub(super) fn input_window(&self) -> u64 {
        let r = &self.r;
        let (dim, wpr) = (self.dim as u64, self.bpr as u64);
        let (row, idx) = (u64::from(r.wl.row), u64::from(r.idx));
        if r.ctr.done_r || r.ctr.err_r {
            return 0; // a counter increment is due on the next cycle
        }
        match r.state {
            State::Weights
                if !r.sw_pending
                    && r.seq.bank_cnt[usize::from(!r.wl.cur_bank)] == 0
                    && self.shadow_stays_free() =>
            {
                (dim - 1).saturating_sub(row) * wpr + wpr.saturating_sub(idx)
            }
            // (a refused WRITE_ACT's discarded rows at LANES > 1 go one cycle at a time)
            State::WriteRows if !r.wl.pending && r.left > 0 && !r.discard => {
                u64::from(r.left - 1) * wpr + wpr.saturating_sub(idx)
            }
            // (LOAD_QUANT's words, also in Bias, go one cycle at a time)
            State::Bias if !r.wl.pending && !r.sw_pending && !r.is_lq && r.act.idle() => {
                (self.bdim as u64).saturating_sub(idx)
            }
            State::Skip if !r.wl.pending && !r.sw_pending => {
                if self.lanes == 1 {
                    u64::from(r.remaining)
                } else {
                    u64::from(r.remaining).div_ceil(self.lanes as u64)
                }
            }
            _ => 0,
        }
    }

    /// Words the front end would send back to back from now, one per cycle: the rest of a
    /// READ_ACT / READ_ACC read-back but its last word (whose cycle completes the command, so it
    /// is stepped), once the read-back runs without bubbles: the row buffer loaded and the next
    /// row already read (or none left to read). From there every row end loads the row read
    /// ahead and reads the one after (`readback.rs`), so a word goes out on every cycle. 0
    /// elsewhere, or where a pending write makes the next cycle special.
    pub(super) fn output_window(&self) -> u64 {
        let r = &self.r;
        let rbk = &r.rbk;
        let quiet =
            !(r.ctr.done_r || r.ctr.err_r || r.wl.pending || r.sw_pending || r.tile_row || r.ql_pending);
        if !quiet
            || r.state != State::RowEmit
            || !rbk.loaded
            || (!rbk.pref && rbk.to_read != 0)
            || rbk.left == 0
        {
            return 0;
        }
        let per_row = self.beats_per_row(self.r.op) as u64;
        // words (beats) left: this row's from `idx`, then whole rows; all but the last
        (u64::from(rbk.left) - 1) * per_row + per_row.saturating_sub(u64::from(rbk.idx) + 1)
    }

    /// Send `k` (at most `output_window()`) read-back words, one per cycle from now: the host
    /// takes one on every one of these cycles. Each row end inside loads the row read ahead
    /// and reads the next, as stepping does (nothing writes a row being read back: the bank
    /// rules). The words sent are returned.
    pub(super) fn send_words(&mut self, k: u64) -> (Stretch, &[u32]) {
        debug_assert!(k <= self.output_window(), "send_words({k}) past the output window");
        let stretch = self.advance_background(k);
        let (l, beats) = (self.lanes, k);
        let per_row = self.beats_per_row(self.r.op);
        let (op, last) = (self.r.op, per_row as u16 - 1);
        let mut out = std::mem::take(&mut self.sent);
        out.clear();
        let mut k = k as usize;
        while k > 0 {
            let idx = usize::from(self.r.rbk.idx);
            let n = k.min(per_row - idx);
            if l == 1 {
                out.extend_from_slice(&self.rowbuf[idx..idx + n]);
            } else {
                // beats idx .. idx + n of the row buffer, zero past DIM words
                let rowbuf = &self.rowbuf;
                out.extend((idx * l..(idx + n) * l).map(|w| rowbuf.get(w).copied().unwrap_or(0)));
            }
            k -= n;
            if idx + n < per_row {
                self.r.rbk.idx += n as u16;
                break;
            }
            // the row's last word goes on this cycle: the row end's edge
            self.r.rbk.idx = last;
            let (rbk, edge) = self.r.rbk.next(true, last);
            self.r.rbk = rbk;
            if edge.read {
                if op == opcode::READ_ACC {
                    self.activity.acc_reads += 1;
                } else {
                    self.activity.scratch_reads += 1;
                }
            }
            if let Some(at) = edge.load {
                self.load_rowbuf(op, at);
            }
        }
        self.activity.words_out += out.len() as u64;
        self.now += beats;
        self.sent = out;
        (stretch, &self.sent)
    }

    /// Take `words` (at most `input_window()`), one per cycle from now: the host offers one on
    /// every one of these cycles. At LANES > 1 `words` is flattened beats, one beat per cycle.
    pub(super) fn take_words(&mut self, words: &[u32]) -> Stretch {
        let l = self.lanes;
        let k = if l == 1 { words.len() } else { words.len() / l } as u64;
        debug_assert!(k <= self.input_window(), "take_words({k}) past the input window");
        if k == 0 {
            return Stretch { cycles: 0, issued: 0, last_acc_write: None };
        }
        let q = self.r;
        let stretch = self.advance_background(k);
        let dim = self.dim;
        let last = self.bpr - 1;
        let mut done = false;
        let r = &mut self.r;
        // the payload states go a row at a time: its words into the row buffer, then the row
        // (completed on the cycle of its last word) written on the next edge, as stepping does
        match q.state {
            State::Weights => {
                let bank = usize::from(!r.wl.cur_bank);
                let (mut pending, mut idx, mut rest) = (q.wl.pending, usize::from(r.idx), words);
                let mut beats = k as usize;
                while beats > 0 {
                    if pending {
                        // the row completed on the previous cycle is written on this edge
                        write_weight_row(
                            &self.rowbuf,
                            &mut self.weights[bank],
                            &mut self.zero_weights[bank],
                            r.wl.wl_row,
                        );
                        self.activity.weight_row_writes += 1;
                    }
                    let take = (last + 1 - idx).min(beats);
                    rest = write_beats(&mut self.rowbuf, l, idx, take, rest);
                    beats -= take;
                    idx += take;
                    pending = idx == last + 1;
                    if pending {
                        idx = 0;
                        r.wl.wl_row = r.wl.row;
                        if usize::from(r.wl.row) == dim - 1 {
                            r.wl.swap_pending = true;
                            r.state = State::Header;
                            done = true;
                        }
                        r.wl.row = r.wl.row.wrapping_add(1);
                    }
                }
                r.idx = idx as u16;
                r.wl.pending = pending;
            }
            State::WriteRows => {
                let (mut pending, mut idx, mut rest) = (q.sw_pending, usize::from(r.idx), words);
                let mut beats = k as usize;
                while beats > 0 {
                    if pending {
                        let dst = (usize::from(r.sw_addr) & self.scratch_mask) * dim;
                        NativeSim::unpack_rowbuf(&self.rowbuf, &mut self.scratch[dst..dst + dim]);
                        self.activity.scratch_writes += 1;
                    }
                    let take = (last + 1 - idx).min(beats);
                    rest = write_beats(&mut self.rowbuf, l, idx, take, rest);
                    beats -= take;
                    idx += take;
                    pending = idx == last + 1;
                    if pending {
                        idx = 0;
                        r.sw_addr = r.addr;
                        r.addr = r.addr.wrapping_add(1);
                        if r.left == 1 {
                            r.state = State::Header;
                            done = true;
                        }
                        r.left = r.left.wrapping_sub(1);
                    }
                }
                r.idx = idx as u16;
                r.sw_pending = pending;
            }
            State::Bias if l == 1 => {
                for &w in words {
                    self.bias[usize::from(r.idx)] = w as i32;
                    if usize::from(r.idx) == dim - 1 {
                        r.state = State::Header;
                        done = true;
                    }
                    r.idx += 1;
                }
                self.activity.bias_writes += k;
            }
            State::Bias => {
                // column n from word n - idx·LANES of the beats (the padding past DIM dropped)
                let start = l * usize::from(r.idx);
                let mut n = 0;
                for (b, &w) in self.bias.iter_mut().skip(start).zip(words) {
                    *b = w as i32;
                    n += 1;
                }
                self.activity.bias_writes += n;
                r.idx += k as u16;
                if usize::from(r.idx) == self.bdim {
                    r.state = State::Header;
                    done = true;
                }
            }
            State::Skip if l == 1 => {
                r.remaining -= k as u32;
                if r.remaining == 0 {
                    r.state = State::ErrHeader;
                }
            }
            State::Skip => {
                // dense beats: the last one offered with at most LANES words left
                let l = l as u32;
                let before_last = r.remaining - (k as u32 - 1) * l;
                r.remaining = r.remaining.wrapping_sub(k as u32 * l) & super::MASK24;
                if before_last <= l {
                    r.state = State::ErrHeader;
                }
            }
            _ => unreachable!("take_words outside a payload state"),
        }
        if done {
            r.ctr.done_r = true; // the counter counts it on the next cycle
        }
        self.activity.words_in += words.len() as u64;
        self.now += k;
        stretch
    }

    /// The background for `k` cycles from now: MATMUL rows issued, rows landing from both
    /// pipelines, countdowns, the cycle/MAC counters and their activity. Leaves `now` alone.
    fn advance_background(&mut self, k: u64) -> Stretch {
        let dim = self.dim;
        let now = self.now;
        let end = now + k;
        let q = self.r;
        let drain = u64::from(self.arr_drain);
        let mut last_landing = None;

        // rows already in flight that land in the window (all due before any new row)
        while self.rows.front().is_some_and(|l| l.due < end) {
            let (l, sums) = self.rows.pop();
            last_landing = Some(l.due);
            let dst = (usize::from(l.dst) & self.acc_mask) * dim;
            land_acc(&mut self.acc[dst..dst + dim], sums, l.accumulate);
            self.activity.acc_reads += 1;
            self.activity.acc_writes += 1;
        }
        while self.acts.front().is_some_and(|l| l.due < end) {
            let (l, y) = self.acts.pop();
            let dst = (usize::from(l.dst) & self.scratch_mask) * dim;
            self.scratch[dst..dst + dim].copy_from_slice(y);
            self.activity.scratch_writes += 1;
        }

        // the MATMUL sequencer: s rows issued on cycles now .. now + s - 1
        let s = if q.seq.busy { k.min(u64::from(q.seq.left)) } else { 0 };
        let bank = usize::from(q.seq.bank);
        let mut zero_macs = 0u64;
        for i in 0..s {
            let src = (usize::from(q.seq.addr.wrapping_add(i as u16)) & self.scratch_mask) * dim;
            let x = &self.scratch[src..src + dim];
            let (w, zw) = (&self.weights[bank], &self.zero_weights[bank]);
            let due = now + i + drain;
            let dst16 = q.seq.dst.wrapping_add(i as u16);
            if due < end {
                // lands inside the window: straight into the accumulator row
                let dst = (usize::from(dst16) & self.acc_mask) * dim;
                last_landing = Some(due);
                zero_macs += (self.kernel)(x, w, zw, &mut self.acc[dst..dst + dim], q.seq.acc);
                self.activity.acc_reads += 1;
                self.activity.acc_writes += 1;
            } else {
                let slot = self.rows.push(Landing { due, dst: dst16, accumulate: q.seq.acc });
                zero_macs += (self.kernel)(x, w, zw, slot, false);
            }
        }

        let r = &mut self.r;
        r.seq = q.seq.advance(k, s, drain);
        r.ctr.cycles = q.ctr.cycles.wrapping_add(k);
        r.ctr.macs = q.ctr.macs.wrapping_add(s * self.cfg.macs_per_row());
        // cycles with a row issued or in flight: the s issue cycles, then the drain
        let busy = if s > 0 { s + (k - s).min(drain) } else { k.min(u64::from(q.seq.arr_cnt)) };
        r.ctr.busy_cycles = q.ctr.busy_cycles.wrapping_add(busy as u32);
        r.wl.pending = false;
        r.sw_pending = false;
        r.tile_row = false;

        let a = &mut self.activity;
        a.cycles += k;
        a.macs += s * self.cfg.macs_per_row();
        a.zero_operand_macs += zero_macs;
        a.scratch_reads += s;
        a.array_busy_cycles += busy;
        self.engine_rows(k, &q);
        Stretch { cycles: k, issued: s, last_acc_write: last_landing.map(|d| d - now) }
    }
}

/// `take` beats from beat `idx` of a row (`lanes` words each, the first of `words`) into the
/// row buffer, words past its DIM dropped; the rest of `words`.
#[inline]
fn write_beats<'w>(rowbuf: &mut [u32], lanes: usize, idx: usize, take: usize, words: &'w [u32]) -> &'w [u32] {
    if lanes == 1 {
        rowbuf[idx..idx + take].copy_from_slice(&words[..take]);
        return &words[take..];
    }
    let (start, len) = (idx * lanes, take * lanes);
    let n = len.min(rowbuf.len().saturating_sub(start));
    rowbuf[start..start + n].copy_from_slice(&words[..n]);
    &words[len..]
}

/// Weight row `k` of a bank from the row buffer's int8 row (a write past DIM does nothing, as
/// in the array, where no PE row matches).
pub(super) fn write_weight_row(rowbuf: &[u32], bank: &mut [i16], zeros: &mut [u32], k: u16) {
    // byte i of word j is column 4j + i
    store_weight_row(rowbuf.iter().flat_map(|w| w.to_le_bytes()).map(|b| b as i8), bank, zeros, k);
}

/// Weight row `k` of a bank from an int8 row of DIM (a write past DIM does nothing).
pub(super) fn set_weight_row(row: &[i8], bank: &mut [i16], zeros: &mut [u32], k: u16) {
    store_weight_row(row.iter().copied(), bank, zeros, k);
}

/// Weight row `k` of a bank (widened for the kernel) and its zero count, from the row's first
/// DIM int8 values; nothing for `k >= DIM`.
fn store_weight_row(row: impl Iterator<Item = i8>, bank: &mut [i16], zeros: &mut [u32], k: u16) {
    let dim = zeros.len();
    let k = usize::from(k);
    if k >= dim {
        return;
    }
    let mut zero = 0;
    for (w, v) in bank[k * dim..(k + 1) * dim].iter_mut().zip(row) {
        *w = i16::from(v);
        zero += u32::from(v == 0);
    }
    zeros[k] = zero;
}

/// An accumulator row write: `acc = sums` or `acc += sums` (int32 wrap).
#[inline]
pub(super) fn land_acc(acc: &mut [i32], sums: &[i32], accumulate: bool) {
    if accumulate {
        for (a, &s) in acc.iter_mut().zip(sums) {
            *a = a.wrapping_add(s);
        }
    } else {
        acc.copy_from_slice(sums);
    }
}
