//! The weight loader: LOAD_WEIGHTS rows into the shadow bank, and the bank swap.
//!
//! ```text
//!                 ┌───────────────────────── WeightLoader ─────────────────────────┐
//!  clear ────────►│ row := 0 (the front end waits for a header)                    │
//!  row_done ─────►│ row k complete in the row buffer: wl_pending, wl_row := k,     │
//!                 │   row += 1; after row DIM-1: swap_pending                      │──► wl_en, wl_row, wl_bank
//!                 │                                                                │──► last_row
//!  swap ─────────►│ a MATMUL starts: cur_bank flips if swap_pending (and clears it)│──► next_bank
//!  bank0/1_busy ─►│ shadow_free: no row of the shadow bank in the array            │──► shadow_free
//!                 └────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Weights are double buffered (docs/architecture.md): rows are written into the shadow bank
//! (`!cur_bank`) the cycle after their last word, and the next MATMUL swaps the shadow bank in
//! (`next_bank` is the bank its rows use). The front end takes a LOAD_WEIGHTS word only while
//! `shadow_free`. The native model's part of the same name is `sim::native::weight_loader`.

use rust_hdl::prelude::*;

/// The weight loader (see the module docs).
#[derive(LogicBlock)]
pub struct WeightLoader {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset (bank 0 current, nothing pending).
    pub rst: Signal<In, Bit>,
    /// Restart at weight row 0.
    pub clear: Signal<In, Bit>,
    /// The row buffer holds weight row `wl_row`'s words (its last word was taken on this edge).
    pub row_done: Signal<In, Bit>,
    /// A MATMUL starts: swap the shadow bank in if a whole tile was loaded.
    pub swap: Signal<In, Bit>,
    /// A row of bank 0 may be in the array.
    pub bank0_busy: Signal<In, Bit>,
    /// A row of bank 1 may be in the array.
    pub bank1_busy: Signal<In, Bit>,

    /// Write the row buffer into weight row `wl_row` of bank `wl_bank` this cycle.
    pub wl_en: Signal<Out, Bit>,
    /// The weight row written.
    pub wl_row: Signal<Out, Bits<16>>,
    /// The bank written: the shadow bank.
    pub wl_bank: Signal<Out, Bit>,
    /// The row being filled is the tile's last (DIM - 1).
    pub last_row: Signal<Out, Bit>,
    /// The bank a MATMUL started now uses.
    pub next_bank: Signal<Out, Bit>,
    /// No row using the shadow bank is in the array: a LOAD_WEIGHTS word may be taken.
    pub shadow_free: Signal<Out, Bit>,

    row: DFF<Bits<16>>,
    wl_pending: DFF<Bit>,
    wl_row_r: DFF<Bits<16>>,
    cur_bank: DFF<Bit>,
    swap_pending: DFF<Bit>,
    c_dim_m1: Constant<Bits<16>>,
    c_zero16: Constant<Bits<16>>,
    c_one16: Constant<Bits<16>>,
}

impl WeightLoader {
    /// The weight loader of a DIM x DIM array.
    ///
    /// # Panics
    /// If `dim` is not in `1..=256`.
    pub fn new(dim: usize) -> Self {
        assert!((1..=256).contains(&dim), "WeightLoader DIM must be in 1..=256, got {dim}");
        WeightLoader {
            clock: Default::default(),
            rst: Default::default(),
            clear: Default::default(),
            row_done: Default::default(),
            swap: Default::default(),
            bank0_busy: Default::default(),
            bank1_busy: Default::default(),
            wl_en: Default::default(),
            wl_row: Default::default(),
            wl_bank: Default::default(),
            last_row: Default::default(),
            next_bank: Default::default(),
            shadow_free: Default::default(),
            row: Default::default(),
            wl_pending: Default::default(),
            wl_row_r: Default::default(),
            cur_bank: Default::default(),
            swap_pending: Default::default(),
            c_dim_m1: Constant::new((dim as u64 - 1).into()),
            c_zero16: Constant::new(0u64.into()),
            c_one16: Constant::new(1u64.into()),
        }
    }
}

impl Logic for WeightLoader {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, row, wl_pending, wl_row_r, cur_bank, swap_pending);
        self.wl_en.next = self.wl_pending.q.val();
        self.wl_row.next = self.wl_row_r.q.val();
        self.wl_bank.next = !self.cur_bank.q.val();
        self.last_row.next = self.row.q.val() == self.c_dim_m1.val();
        if self.cur_bank.q.val() {
            self.shadow_free.next = !self.bank0_busy.val();
        } else {
            self.shadow_free.next = !self.bank1_busy.val();
        }
        if self.swap_pending.q.val() {
            self.next_bank.next = !self.cur_bank.q.val();
        } else {
            self.next_bank.next = self.cur_bank.q.val();
        }

        self.wl_pending.d.next = false;
        if self.clear.val() {
            self.row.d.next = self.c_zero16.val();
        }
        if self.row_done.val() {
            self.wl_pending.d.next = true;
            self.wl_row_r.d.next = self.row.q.val();
            self.row.d.next = self.row.q.val() + self.c_one16.val();
            if self.row.q.val() == self.c_dim_m1.val() {
                self.swap_pending.d.next = true;
            }
        }
        if self.swap.val() && self.swap_pending.q.val() {
            self.cur_bank.d.next = !self.cur_bank.q.val();
            self.swap_pending.d.next = false;
        }
        if self.rst.val() {
            self.cur_bank.d.next = false;
            self.swap_pending.d.next = false;
            self.wl_pending.d.next = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, simulate, Port};

    const INPUTS: [&str; 6] = ["rst", "clear", "row_done", "swap", "bank0_busy", "bank1_busy"];
    const OUTPUTS: [(&str, usize); 6] =
        [("wl_en", 1), ("wl_row", 16), ("wl_bank", 1), ("last_row", 1), ("next_bank", 1), ("shadow_free", 1)];

    /// A reference model: the row count, the pending write, the current bank and the swap.
    fn reference(dim: u16, stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let (mut row, mut pending, mut wl_row, mut cur, mut swap) = (0u16, false, 0u16, false, false);
        let mut out = Vec::new();
        for s in stim {
            let b = |i: usize| s[i] != 0;
            let busy = [b(4), b(5)];
            out.push(vec![
                u128::from(pending),
                u128::from(wl_row),
                u128::from(!cur),
                u128::from(row == dim - 1),
                u128::from(cur ^ swap),
                u128::from(!busy[usize::from(!cur)]),
            ]);
            pending = false;
            if b(1) {
                row = 0;
            }
            if b(2) {
                pending = true;
                wl_row = row;
                swap |= row == dim - 1;
                row = row.wrapping_add(1);
            }
            if b(3) && swap {
                cur = !cur;
                swap = false;
            }
            if b(0) {
                (cur, swap, pending) = (false, false, false);
            }
        }
        out
    }

    /// As the front end drives it: `clear` while waiting for a header, `row_done` only while
    /// loading (never with `swap`), `swap` when a MATMUL starts.
    fn stimulus(dim: usize, cycles: usize, seed: u64) -> Vec<Vec<u128>> {
        let mut rng = spec::rng::SplitMix64::new(seed);
        (0..cycles)
            .map(|c| {
                let rst = c == 0 || rng.below(200) == 0;
                let phase = rng.below(3);
                let clear = phase == 0 && rng.chance(0.2);
                let row_done = phase == 1 && rng.below(dim as u64 + 1) != 0;
                let swap = phase == 2 && rng.chance(0.3);
                [rst, clear, row_done, swap, rng.chance(0.3), rng.chance(0.3)].map(u128::from).to_vec()
            })
            .collect()
    }

    #[test]
    fn weight_loader_matches_reference_in_rust_and_verilog() {
        for dim in [1usize, 2, 3, 8] {
            let stim = stimulus(dim, 400, 0x3e1 + dim as u64);
            let want = reference(dim as u16, &stim);
            let mut uut = WeightLoader::new(dim);
            let got = simulate(
                &mut uut,
                |u| &mut u.clock,
                &stim,
                |u, s| {
                    u.rst.next = s[0] != 0;
                    u.clear.next = s[1] != 0;
                    u.row_done.next = s[2] != 0;
                    u.swap.next = s[3] != 0;
                    u.bank0_busy.next = s[4] != 0;
                    u.bank1_busy.next = s[5] != 0;
                },
                |u| {
                    let b = |x: bool| u128::from(x);
                    vec![
                        b(u.wl_en.val()),
                        u.wl_row.val().to_u64() as u128,
                        b(u.wl_bank.val()),
                        b(u.last_row.val()),
                        b(u.next_bank.val()),
                        b(u.shadow_free.val()),
                    ]
                },
            )
            .unwrap();
            assert_eq!(got, want, "rust-hdl, DIM {dim}");
            let inputs: Vec<Port> = INPUTS.iter().map(|n| Port::new(*n, 1)).collect();
            let outputs: Vec<Port> = OUTPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect();
            let rtl = replay(&generate_verilog(&uut), "top", "clock", &inputs, &outputs, &stim).unwrap();
            assert_eq!(rtl, want, "Verilog, DIM {dim}");
        }
    }

    #[test]
    fn weight_loader_is_synthesizable() {
        let mut uut = WeightLoader::new(3);
        uut.connect_all();
        yosys_validate("weight_loader", &generate_verilog(&uut)).unwrap();
    }
}
