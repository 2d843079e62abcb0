//! ACTIVATE's registers (`hdl::controller::Activate`): the destination row and the countdown
//! to the last write. The rows themselves are requantised at their accumulator read and land
//! through the `acts` pipe `ACT_WRITEBACK_DELAY` cycles later (`mod.rs`).

use spec::timing::ACT_DRAIN;

/// ACTIVATE's registers (names as in `hdl::controller::activate`); zero at power-on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Activate {
    pub dst: u16,
    pub cnt: u16,
}

impl Activate {
    /// No row in flight.
    #[inline]
    pub fn idle(&self) -> bool {
        self.cnt == 0
    }

    /// The registers after this cycle's edge: `issue` an accumulator row read now, `load`
    /// the command's first destination row.
    #[inline]
    pub fn next(&self, issue: bool, load: Option<u16>) -> Activate {
        let mut d = Activate { dst: self.dst, cnt: self.cnt.saturating_sub(1) };
        if let Some(dst) = load {
            d.dst = dst;
        }
        if issue {
            d.dst = self.dst.wrapping_add(1);
            d.cnt = ACT_DRAIN as u16;
        }
        d
    }

    /// The reset values.
    pub fn reset(&mut self) {
        self.cnt = 0;
    }
}
