//! The performance counters (`hdl::controller::Counters`).

use spec::isa::Counters as Words;

/// The counter registers (names and widths as in `hdl::controller::counters`); zero at
/// power-on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counters {
    pub cycles: u64,
    pub macs: u64,
    pub busy_cycles: u32,
    pub in_stalls: u32,
    pub out_stalls: u32,
    pub commands: u32,
    pub errors: u32,
    /// cmd_done / err_done of the last cycle: the counters count one cycle later.
    pub done_r: bool,
    pub err_r: bool,
}

/// What the counters see in one cycle.
#[derive(Debug, Clone, Copy)]
pub(super) struct Events {
    pub issue: bool,
    /// A row issued or in flight in the array (`!arr_idle`).
    pub arr_busy: bool,
    pub in_ready: bool,
    pub in_valid: bool,
    pub out_valid: bool,
    pub out_ready: bool,
    pub cmd_done: bool,
    pub err_done: bool,
}

impl Counters {
    /// The registers after one cycle with `e`; `macs_per_row` is DIM².
    #[inline]
    pub fn next(&self, e: Events, macs_per_row: u64) -> Counters {
        let q = self;
        let mut d = *q;
        if e.issue {
            d.macs = q.macs.wrapping_add(macs_per_row);
        }
        if e.arr_busy {
            d.busy_cycles = q.busy_cycles.wrapping_add(1);
        }
        d.cycles = q.cycles.wrapping_add(1);
        if e.in_ready && !e.in_valid {
            d.in_stalls = q.in_stalls.wrapping_add(1);
        }
        if e.out_valid && !e.out_ready {
            d.out_stalls = q.out_stalls.wrapping_add(1);
        }
        d.done_r = e.cmd_done;
        d.err_r = e.err_done;
        if q.done_r {
            d.commands = q.commands.wrapping_add(1);
        }
        if q.err_r {
            d.errors = q.errors.wrapping_add(1);
        }
        d
    }

    /// The COUNTERS words as they are now.
    pub fn words(&self) -> Words {
        Words {
            cycles: self.cycles,
            macs: self.macs,
            array_busy_cycles: self.busy_cycles,
            in_stall_cycles: self.in_stalls,
            out_stall_cycles: self.out_stalls,
            commands: self.commands,
            errors: self.errors,
        }
    }
}
