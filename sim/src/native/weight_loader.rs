//! The weight loader's registers (`hdl::controller::WeightLoader`): which bank is current,
//! the row being loaded into the shadow bank, its pending write and the swap. The weight rows
//! themselves are written by `mod.rs` (the datapath) when `pending`.

/// The weight loader's registers (names as in `hdl::controller::weight_loader`); zero at
/// power-on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct WeightLoader {
    pub cur_bank: bool,
    pub swap_pending: bool,
    /// `wl_pending`: weight row `wl_row` is written from the row buffer on this edge.
    pub pending: bool,
    pub wl_row: u16,
    /// The row being filled.
    pub row: u16,
}

impl WeightLoader {
    /// The bank written: the shadow bank.
    #[inline]
    pub fn shadow(&self) -> bool {
        !self.cur_bank
    }

    /// The bank a MATMUL started now uses.
    #[inline]
    pub fn next_bank(&self) -> bool {
        self.cur_bank ^ self.swap_pending
    }

    /// The row being filled is the tile's last.
    #[inline]
    pub fn last_row(&self, dim: usize) -> bool {
        usize::from(self.row) == dim - 1
    }

    /// `d` after a row's last word was taken on this edge (`self` the registers before it).
    #[inline]
    pub fn row_done(&self, d: &mut WeightLoader, dim: usize) {
        d.pending = true;
        d.wl_row = self.row;
        d.row = self.row.wrapping_add(1);
        if self.last_row(dim) {
            d.swap_pending = true;
        }
    }

    /// `d` when a MATMUL starts on this edge; true if the shadow bank swapped in.
    #[inline]
    pub fn swap(&self, d: &mut WeightLoader) -> bool {
        if self.swap_pending {
            d.cur_bank = !self.cur_bank;
            d.swap_pending = false;
        }
        self.swap_pending
    }

    /// The reset values.
    pub fn reset(&mut self) {
        self.cur_bank = false;
        self.swap_pending = false;
        self.pending = false;
    }
}
