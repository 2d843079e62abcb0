//! On-chip memories: a simple dual-port synchronous RAM leaf that Yosys maps onto block RAM,
//! and the two row memories of the core built from it, the activation [`Scratchpad`]
//! (`SCRATCH_ROWS` rows of DIM int8) and the [`AccumulatorMem`] (`ACC_ROWS` rows of DIM int32).
//!
//! ```text
//!                  ┌───────────────────────────────────────────┐
//!  write_addr[16] ─┤ low log2(depth) bits                      │
//!  write_enable ───┤──► mem[depth] of lanes x T  (no reset)    │
//!  write_data[l] ──┤   (lanes x T::BITS wide words)            │
//!                  │                │                          │
//!  read_addr[16] ──┤ low log2(depth) bits                      │
//!  read_enable ────┤──► [read_data reg] ───────────────────────┼──► read_data[l]
//!                  └───────────────────────────────────────────┘
//!                    one clock `clock`, everything on its rising edge
//! ```
//!
//! # Timing and behaviour (the contract, identical in the Rust model and the Verilog)
//! * **Read**: on a rising edge with `read_enable` high, `read_data` becomes row
//!   `read_addr mod depth` — one cycle of latency. With `read_enable` low `read_data` holds.
//! * **Write**: on a rising edge with `write_enable` high, row `write_addr mod depth` becomes
//!   `write_data`. A whole row (every lane) is written; there are no lane enables.
//! * **Addresses** are 16-bit ports (rows <= 65536); only the low `log2(depth)` bits are used,
//!   so an address past the end wraps (a depth-1 memory ignores its addresses).
//! * **Read during write of the same row**: the read returns the *old* row, in the Rust model
//!   and in simulation of the Verilog. The memory is declared `(* no_rw_check *)`, which tells
//!   Yosys not to build collision logic; on an FPGA the result of such a read is whatever the
//!   block RAM gives (undefined on iCE40 and ECP5 dual-port RAM). **Users must not rely on it**:
//!   never read a row on the edge it is written, or forward the written row (the core
//!   schedules its accumulator read-modify-write so a read never meets a write of its row).
//! * **Initial contents are zero** (a Verilog `initial` loop; FPGA block RAM is configured to
//!   0). **`rst` does not clear memory** and these blocks have no reset at all: block RAM has
//!   no reset, and clearing 64 K rows would take 64 K cycles. `read_data` is 0 until the first
//!   read in the Rust model and in Verilog simulation (on hardware: undefined until the first
//!   read; its register is the block RAM's own output register, which has no init value).
//!
//! # Synthesis (Yosys 0.23)
//! The leaf is written so Yosys infers block RAM with no logic around it: the read register and
//! read enable map onto the RAM's own, and `no_rw_check` drops the collision logic (without
//! it, a 512 x 64-bit RAM costs ~72 LUT4 + 139 FFs on iCE40, ~86 LUT4 on ECP5). Measured cells
//! (`memories_map_to_block_ram_without_logic` checks the first two rows):
//!
//! | memory | iCE40 `synth_ice40` | ECP5 `synth_ecp5` |
//! |---|---|---|
//! | scratchpad 1024 x 8 int8 (DIM 8) | 16 SB_RAM40_4K | 4 DP16KD |
//! | accumulators 512 x 8 int32 (DIM 8) | 32 SB_RAM40_4K | 8 DP16KD (16 banked: see below) |
//! | scratchpad 2048 x 4 int8 (ecp5-25k) | 16 SB_RAM40_4K | 4 DP16KD |
//! | accumulators 1024 x 4 int32 (ecp5-25k) | 32 SB_RAM40_4K | 8 DP16KD |
//! | scratchpad 4096 x 2 int8 (ice40-up5k) | 16 SB_RAM40_4K + 18 LUT4 + 1 FF | 4 DP16KD |
//! | accumulators 512 x 2 int32 (ice40-up5k) | 8 SB_RAM40_4K | 2 DP16KD |
//!
//! No logic at all except on iCE40 past 2048 rows (the deepest SB_RAM40_4K mode), where the
//! two halves of the memory need an output mux and a write-enable decode.
//!
//! # Banks (issue 13)
//! The [`Scratchpad`] and the [`AccumulatorMem`] are two [`Ram`] leaves each, the low and the
//! high half of the rows (the bank bit is address bit `log2(depth) − 1`), with **two read
//! ports**: each bank is read by port A if port A addresses it, else by port B, and each
//! port's `read_data` is the output register of the bank it read last. So a port's row holds
//! until *either* port reads that bank again; the two ports must not read one bank on the same
//! edge (port A wins). The controller's bank rules (docs/architecture.md) give port A to
//! MATMUL and port B to the front end and keep them on different banks for whole commands.
//! Cost (`memories_map_to_block_ram_without_logic`): the block RAMs of the halves plus one
//! 2:1 row mux per port (150 LUT4 and 2 flip-flops for the DIM 8 scratchpad, 534 LUT4 for its
//! accumulators, on either family); ECP5 needs 16 DP16KD instead of 8 for the 512-row DIM 8
//! accumulators, because a 256-row bank fills only half of a 512-deep x36 block.
//!
//! # Emission
//! What `emit` writes for a row memory is one module ([`crate::generate`]): the two banks in a
//! generate loop (`bank[0]` is rust-hdl's `lo`, `bank[1]` its `hi`, each [`Ram`]'s body) and
//! each read port's row as one vector mux, a few lines per lane instead of rust-hdl's
//! per-element muxes and two bank modules. rust-hdl's own text (the `#[hdl_gen]` body, a module
//! per bank) is the per-instance form; the tests run both under Icarus.

use rust_hdl::prelude::*;
use spec::Config;

use crate::generate::{concat, generate_loop_block, split};

/// Largest memory depth: addresses are 16 bits.
pub const MAX_DEPTH: usize = 1 << 16;

/// A simple dual-port synchronous RAM leaf: `depth` rows of `lanes` elements of type `T`, one
/// read port (registered output, one cycle of latency) and one write port, one clock. The rows
/// are stored as one `lanes * T::BITS`-bit wide memory so Yosys packs them into as few block
/// RAMs as the width allows.
///
/// The module docs list the block RAMs it maps to; the memory itself costs no LUTs or
/// flip-flops.
///
/// The Rust model in `update` and the Verilog in `hdl` implement the same behaviour (module
/// docs); the tests replay one stimulus through both.
#[derive(LogicBlock)]
pub struct Ram<T: Synth> {
    /// Clock of both ports.
    pub clock: Signal<In, Clock>,
    /// Row read on the next rising edge when `read_enable` is high (low `log2(depth)` bits).
    pub read_addr: Signal<In, Bits<16>>,
    /// Load `read_data` from `read_addr` on the next rising edge.
    pub read_enable: Signal<In, Bit>,
    /// The row read on the last enabled edge, one element per lane; holds otherwise.
    pub read_data: Vec<Signal<Out, T>>,
    /// Row written on the next rising edge when `write_enable` is high (low `log2(depth)` bits).
    pub write_addr: Signal<In, Bits<16>>,
    /// Write `write_data` to `write_addr` on the next rising edge.
    pub write_enable: Signal<In, Bit>,
    /// The row to write, one element per lane.
    pub write_data: Vec<Signal<In, T>>,
    _depth: usize,
    _mem: Vec<T>,
}

impl<T: Synth> Ram<T> {
    /// A zero-filled RAM of `depth` rows of `lanes` elements.
    ///
    /// # Panics
    /// If `depth` is not a power of two in `1..=65536` or `lanes` is 0.
    pub fn new(depth: usize, lanes: usize) -> Self {
        assert!(
            depth.is_power_of_two() && depth <= MAX_DEPTH,
            "Ram depth must be a power of two in 1..={MAX_DEPTH}, got {depth}"
        );
        assert!(lanes >= 1, "Ram needs at least one lane, got 0");
        Ram {
            clock: Default::default(),
            read_addr: Default::default(),
            read_enable: Default::default(),
            read_data: (0..lanes).map(|_| Default::default()).collect(),
            write_addr: Default::default(),
            write_enable: Default::default(),
            write_data: (0..lanes).map(|_| Default::default()).collect(),
            _depth: depth,
            _mem: vec![T::default(); depth * lanes],
        }
    }

    /// Number of rows.
    pub fn depth(&self) -> usize {
        self._depth
    }

    /// Elements per row.
    pub fn lanes(&self) -> usize {
        self.read_data.len()
    }

    /// Bits of the address actually used: `log2(depth)`.
    pub fn addr_bits(&self) -> usize {
        self._depth.trailing_zeros() as usize
    }

    /// The current contents of a row (for tests and debugging; `row` wraps like an address).
    pub fn peek(&self, row: usize) -> &[T] {
        let base = (row & (self._depth - 1)) * self.lanes();
        &self._mem[base..base + self.lanes()]
    }

    /// `{name$(lanes-1), ..., name$0}`: a lane vector as one Verilog word, lane 0 lowest.
    fn concat(&self, name: &str) -> String {
        let lanes: Vec<String> = (0..self.lanes()).rev().map(|l| format!("{name}${l}")).collect();
        format!("{{{}}}", lanes.join(", "))
    }

    /// Marks the address bits above `log2(depth)` as unused on purpose (Verilator's lint
    /// ignores signals named `*unused*`; synthesis removes the wire).
    fn unused_address_bits(&self) -> String {
        match self.addr_bits() {
            16 => String::new(),
            b => format!("wire unused_address_bits = &{{1'b0, read_addr[15:{b}], write_addr[15:{b}]}};\n"),
        }
    }

    /// The row index expression for an address port.
    fn row_index(&self, port: &str) -> String {
        match self.addr_bits() {
            0 => "0".to_string(),
            bits => format!("{port}[{}:0]", bits - 1),
        }
    }
}

impl<T: Synth> Logic for Ram<T> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let lanes = self.lanes();
            let mask = self._depth - 1;
            // Read before write: a read of the row being written returns the old row.
            if self.read_enable.val() {
                let base = (self.read_addr.val().index() & mask) * lanes;
                for (l, out) in self.read_data.iter_mut().enumerate() {
                    out.next = self._mem[base + l];
                }
            }
            if self.write_enable.val() {
                let base = (self.write_addr.val().index() & mask) * lanes;
                for (l, data) in self.write_data.iter().enumerate() {
                    self._mem[base + l] = data.val();
                }
            }
        }
    }

    fn connect(&mut self) {
        for out in &mut self.read_data {
            out.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        let width = self.lanes() * T::BITS;
        let depth = self._depth;
        Verilog::Custom(format!(
            "\
// {depth} rows x {lanes} lanes x {bits} bits, simple dual-port, 1-cycle registered read.
// Read during write of the same row: old data in simulation, undefined on FPGAs (no_rw_check).
(* no_rw_check *)
reg [{msb}:0] mem [0:{last}];
integer i;
initial begin
    for (i = 0; i < {depth}; i = i + 1) mem[i] = {width}'d0;
end
`ifndef SYNTHESIS
initial {rd} = {width}'d0;
`endif
always @(posedge clock) begin
    if (read_enable) {rd} <= mem[{ra}];
    if (write_enable) mem[{wa}] <= {wd};
end
{unused}",
            lanes = self.lanes(),
            bits = T::BITS,
            msb = width - 1,
            last = depth - 1,
            rd = self.concat("read_data"),
            wd = self.concat("write_data"),
            ra = self.row_index("read_addr"),
            wa = self.row_index("write_addr"),
            unused = self.unused_address_bits(),
        ))
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![
            TimingInfo {
                name: "ram_read".into(),
                clock: "clock".into(),
                inputs: vec!["read_addr".into(), "read_enable".into()],
                outputs: self.read_data.iter().enumerate().map(|(l, _)| format!("read_data${l}")).collect(),
            },
            TimingInfo {
                name: "ram_write".into(),
                clock: "clock".into(),
                inputs: vec!["write_addr".into(), "write_enable".into()],
                outputs: vec![],
            },
        ]
    }
}

/// Declares a row memory: a thin block around a [`Ram`] sized from a [`Config`], with the same
/// ports (forwarded in `#[hdl_gen]`, so it adds no logic).
macro_rules! row_memory {
    ($(#[$doc:meta])* $name:ident, $elem:ty, $rows:ident, $what:literal) => {
        $(#[$doc])*
        pub struct $name {
            pub clock: Signal<In, Clock>,
            /// Read port A: the row read on the next rising edge when `read_enable` is high.
            pub read_addr: Signal<In, Bits<16>>,
            pub read_enable: Signal<In, Bit>,
            #[doc = concat!("Port A's row, read on its last enabled edge: DIM ", $what, ", column 0 first.")]
            pub read_data: Vec<Signal<Out, $elem>>,
            /// Read port B (must read another bank than port A on the same edge; A wins a clash).
            pub read_addr_b: Signal<In, Bits<16>>,
            pub read_enable_b: Signal<In, Bit>,
            #[doc = concat!("Port B's row: DIM ", $what, ", column 0 first.")]
            pub read_data_b: Vec<Signal<Out, $elem>>,
            pub write_addr: Signal<In, Bits<16>>,
            pub write_enable: Signal<In, Bit>,
            #[doc = concat!("The row to write: DIM ", $what, ", column 0 first.")]
            pub write_data: Vec<Signal<In, $elem>>,
            lo: Ram<$elem>,
            hi: Ram<$elem>,
            // the bank each port read on its last enabled edge (its data's source)
            sel_a: DFF<Bit>,
            sel_b: DFF<Bit>,
            a_hi: Signal<Local, Bit>,
            b_hi: Signal<Local, Bit>,
            w_hi: Signal<Local, Bit>,
            c_half: Constant<Bits<16>>,
            c_zero: Constant<Bits<16>>,
            _depth: usize,
        }

        impl $name {
            #[doc = concat!(
                "A zero-filled memory of `config.", stringify!($rows), "()` rows of `config.dim()` ",
                $what, ", two banks (the low and high half; one if it has one row)."
            )]
            pub fn new(config: &Config) -> Self {
                let lanes = config.dim();
                let depth = config.$rows();
                let bank = (depth / 2).max(1);
                $name {
                    clock: Default::default(),
                    read_addr: Default::default(),
                    read_enable: Default::default(),
                    read_data: (0..lanes).map(|_| Default::default()).collect(),
                    read_addr_b: Default::default(),
                    read_enable_b: Default::default(),
                    read_data_b: (0..lanes).map(|_| Default::default()).collect(),
                    write_addr: Default::default(),
                    write_enable: Default::default(),
                    write_data: (0..lanes).map(|_| Default::default()).collect(),
                    lo: Ram::new(bank, lanes),
                    hi: Ram::new(bank, lanes),
                    sel_a: Default::default(),
                    sel_b: Default::default(),
                    a_hi: Default::default(),
                    b_hi: Default::default(),
                    w_hi: Default::default(),
                    // the bank bit: the address bit of `depth / 2` (none for one row)
                    c_half: Constant::new(((depth / 2) as u64).into()),
                    c_zero: Constant::new(0u64.into()),
                    _depth: depth,
                }
            }

            pub fn depth(&self) -> usize {
                self._depth
            }

            pub fn peek(&self, row: usize) -> &[$elem] {
                let row = row & (self._depth - 1);
                let bank = self.lo.depth();
                if self._depth > 1 && row >= bank {
                    self.hi.peek(row - bank)
                } else {
                    self.lo.peek(row)
                }
            }
        }

        // `#[hdl_gen]` writes the inherent `update`, `connect` and `hdl` (the per-instance form);
        // `generate_loop_block!` chooses between that `hdl` and [`banked_verilog`].
        #[allow(clippy::needless_range_loop)]
        impl $name {
            #[hdl_gen]
            fn update(&mut self) {
                dff_setup!(self, clock, sel_a, sel_b);
                self.lo.clock.next = self.clock.val();
                self.hi.clock.next = self.clock.val();
                self.a_hi.next = (self.read_addr.val() & self.c_half.val()) != self.c_zero.val();
                self.b_hi.next = (self.read_addr_b.val() & self.c_half.val()) != self.c_zero.val();
                self.w_hi.next = (self.write_addr.val() & self.c_half.val()) != self.c_zero.val();
                // each bank's read port: port A's if A reads that bank, else port B's
                self.lo.read_addr.next = self.read_addr_b.val();
                self.lo.read_enable.next = self.read_enable_b.val() && !self.b_hi.val();
                if self.read_enable.val() && !self.a_hi.val() {
                    self.lo.read_addr.next = self.read_addr.val();
                    self.lo.read_enable.next = true;
                }
                self.hi.read_addr.next = self.read_addr_b.val();
                self.hi.read_enable.next = self.read_enable_b.val() && self.b_hi.val();
                if self.read_enable.val() && self.a_hi.val() {
                    self.hi.read_addr.next = self.read_addr.val();
                    self.hi.read_enable.next = true;
                }
                if self.read_enable.val() {
                    self.sel_a.d.next = self.a_hi.val();
                }
                if self.read_enable_b.val() {
                    self.sel_b.d.next = self.b_hi.val();
                }
                self.lo.write_addr.next = self.write_addr.val();
                self.hi.write_addr.next = self.write_addr.val();
                self.lo.write_enable.next = self.write_enable.val() && !self.w_hi.val();
                self.hi.write_enable.next = self.write_enable.val() && self.w_hi.val();
                for i in 0..self.read_data.len() {
                    if self.sel_a.q.val() {
                        self.read_data[i].next = self.hi.read_data[i].val();
                    } else {
                        self.read_data[i].next = self.lo.read_data[i].val();
                    }
                    if self.sel_b.q.val() {
                        self.read_data_b[i].next = self.hi.read_data[i].val();
                    } else {
                        self.read_data_b[i].next = self.lo.read_data[i].val();
                    }
                    self.lo.write_data[i].next = self.write_data[i].val();
                    self.hi.write_data[i].next = self.write_data[i].val();
                }
            }

            /// The two banks and the two read ports' row muxes as a generate loop
            /// ([`banked_verilog`]); same behaviour as `update`.
            fn generate_loop_verilog(&self) -> Verilog {
                banked_verilog(self.read_data.len(), <$elem>::BITS, self._depth)
            }
        }

        // What `#[derive(LogicBlock)]` would write, except that in the generate-loop form the
        // visitors see the memory as a leaf (its ports): the banks are in its own text.
        generate_loop_block!($name;
            ports: clock, read_addr, read_enable, read_data, read_addr_b, read_enable_b, read_data_b,
                write_addr, write_enable, write_data;
            inner: lo, hi, sel_a, sel_b, a_hi, b_hi, w_hi, c_half, c_zero);
    };
}

/// The body of a banked row memory of `depth` rows of `lanes` elements of `bits` bits, as
/// `emit` writes it: the two [`Ram`] banks (`bank[0]` the low half of the rows, `bank[1]` the
/// high half; rust-hdl's `lo` and `hi`) in a generate loop, and each read port's row as one
/// vector mux between the banks' output registers, the bank it read last (`sel_a`, `sel_b`:
/// rust-hdl's `sel_a.q`, `sel_b.q`). The row ports are rust-hdl's per-element ports, joined into
/// vectors ([`concat`], [`split`]). Same registers, memories and behaviour as the per-instance
/// text ([`Ram`]'s body per bank, the `#[hdl_gen]` muxes); the tests run both under Icarus and
/// `scripts/emit_equiv.sh` proves the core's two texts equivalent.
fn banked_verilog(lanes: usize, bits: usize, depth: usize) -> Verilog {
    let bank = (depth / 2).max(1);
    let index = |port: &str| match bank.trailing_zeros() {
        0 => "0".to_string(),
        b => format!("{port}[{}:0]", b - 1),
    };
    let mut code = format!(
        "\
// Two banks of {bank} rows x {lanes} lanes x {bits} bits in a generate loop: bank[0] is the low,
// bank[1] the high half of the {depth} rows (hdl::memory). A bank is read by port A if port A
// addresses it, else by port B; a port's row is the output register of the bank it read last.
localparam W = {width};
localparam [15:0] HALF = 16'd{half};
wire a_hi = (read_addr & HALF) != 16'd0;
wire b_hi = (read_addr_b & HALF) != 16'd0;
wire w_hi = (write_addr & HALF) != 16'd0;
wire [W-1:0] wdata = {wdata};
// the bank each port read on its last enabled edge
reg sel_a;
reg sel_b;
initial begin
    sel_a = 1'b0;
    sel_b = 1'b0;
end
always @(posedge clock) begin
    if (read_enable) sel_a <= a_hi;
    if (read_enable_b) sel_b <= b_hi;
end
genvar b;
generate
    for (b = 0; b < 2; b = b + 1) begin : bank
        wire a_here = read_enable && (b ? a_hi : !a_hi);
        wire re = a_here || (read_enable_b && (b ? b_hi : !b_hi));
        wire we = write_enable && (b ? w_hi : !w_hi);
        wire [15:0] ra = a_here ? read_addr : read_addr_b;
        // Read during write of the same row: old data in simulation, undefined on FPGAs.
        (* no_rw_check *)
        reg [W-1:0] mem [0:{last}];
        reg [W-1:0] q;
        integer r;
        initial begin
            for (r = 0; r < {bank}; r = r + 1) mem[r] = {{W{{1'b0}}}};
        end
`ifndef SYNTHESIS
        initial q = {{W{{1'b0}}}};
`endif
        always @(posedge clock) begin
            if (re) q <= mem[{ra}];
            if (we) mem[{wa}] <= wdata;
        end
        wire unused_address_bits = &{{1'b0, ra}};
    end
endgenerate
wire [W-1:0] row_a = sel_a ? bank[1].q : bank[0].q;
wire [W-1:0] row_b = sel_b ? bank[1].q : bank[0].q;
wire unused_address_bits = &{{1'b0, write_addr}};
",
        width = lanes * bits,
        half = depth / 2,
        last = bank - 1,
        wdata = concat("write_data", lanes),
        ra = index("ra"),
        wa = index("write_addr"),
    );
    code.push_str(&split("read_data", "row_a", bits, lanes));
    code.push_str(&split("read_data_b", "row_b", bits, lanes));
    Verilog::Wrapper(Wrapper { code, cores: String::new() })
}

row_memory!(
    /// The activation scratchpad: `SCRATCH_ROWS` rows of DIM int8, one whole row read and one
    /// whole row written per cycle (behaviour and timing of [`Ram`], see the module docs).
    Scratchpad,
    Signed<8>,
    scratch_rows,
    "int8"
);

row_memory!(
    /// The accumulator memory: `ACC_ROWS` rows of DIM int32, one whole row read and one whole
    /// row written per cycle (behaviour and timing of [`Ram`], see the module docs). For
    /// MATMUL's accumulate the read-modify-write of a row is the controller's: read, add, write.
    AccumulatorMem,
    Signed<32>,
    acc_rows,
    "int32"
);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::generate::with_per_instance_text;
    use crate::primitives::signed_to_i128;
    use crate::replay::{self, sign_extend, Port};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;

    /// One cycle of stimulus: read port, write port, the row to write (one value per lane).
    #[derive(Clone, Debug)]
    struct Cycle {
        ra: u16,
        re: bool,
        wa: u16,
        we: bool,
        row: Vec<i64>,
    }

    fn write(wa: u16, row: &[i64]) -> Cycle {
        Cycle { ra: 0, re: false, wa, we: true, row: row.to_vec() }
    }

    fn read(ra: u16, lanes: usize) -> Cycle {
        Cycle { ra, re: true, wa: 0, we: false, row: vec![0; lanes] }
    }

    fn idle(lanes: usize) -> Cycle {
        Cycle { ra: 0, re: false, wa: 0, we: false, row: vec![0; lanes] }
    }

    /// The behavioural contract, written independently of the block: a Vec of rows, read
    /// before write, addresses modulo depth. `out[c]` is `read_data` during cycle `c`, i.e.
    /// after the edges of cycles `0..c` (the sampling of [`replay`]).
    fn model(depth: usize, lanes: usize, cycles: &[Cycle]) -> Vec<Vec<i64>> {
        let mut mem = vec![vec![0i64; lanes]; depth];
        let mut out = vec![0i64; lanes];
        let mut trace = vec![];
        for c in cycles {
            trace.push(out.clone());
            if c.re {
                out = mem[c.ra as usize % depth].clone();
            }
            if c.we {
                mem[c.wa as usize % depth] = c.row.clone();
            }
        }
        trace
    }

    /// The ports of a memory block in `replay` order: address/enable inputs, then the lanes.
    fn ports(lanes: usize, bits: usize) -> (Vec<Port>, Vec<Port>) {
        let mut inputs = vec![
            Port::new("read_addr", 16),
            Port::new("read_enable", 1),
            Port::new("write_addr", 16),
            Port::new("write_enable", 1),
        ];
        inputs.extend(Port::vec("write_data", lanes, bits));
        (inputs, Port::vec("read_data", lanes, bits))
    }

    fn stimulus(cycles: &[Cycle], bits: usize) -> Vec<Vec<u128>> {
        cycles
            .iter()
            .map(|c| {
                let mut row = vec![c.ra as u128, c.re as u128, c.wa as u128, c.we as u128];
                row.extend(c.row.iter().map(|&v| (v as u128) & crate::primitives::mask(bits)));
                row
            })
            .collect()
    }

    fn decode(trace: Vec<Vec<u128>>, bits: usize) -> Vec<Vec<i64>> {
        trace.into_iter().map(|r| r.into_iter().map(|v| sign_extend(v, bits) as i64).collect()).collect()
    }

    /// The ports every memory block has, so one test driver serves all three.
    trait MemoryPorts: Block {
        type Elem: Synth;
        fn clock(&mut self) -> &mut Signal<In, Clock>;
        fn apply(&mut self, row: &[u128]);
        fn sample(&self) -> Vec<u128>;
        fn connect_inputs(&mut self);
    }

    macro_rules! memory_ports {
        ($ty:ty, $elem:ty, $bits:literal) => {
            memory_ports!($ty, $elem, $bits, |_u: &mut $ty| {});
        };
        ($ty:ty, $elem:ty, $bits:literal, $port_b:expr) => {
            impl MemoryPorts for $ty {
                type Elem = $elem;
                fn clock(&mut self) -> &mut Signal<In, Clock> {
                    &mut self.clock
                }
                fn apply(&mut self, row: &[u128]) {
                    self.read_addr.next = (row[0] as u64).into();
                    self.read_enable.next = row[1] == 1;
                    self.write_addr.next = (row[2] as u64).into();
                    self.write_enable.next = row[3] == 1;
                    for (d, v) in self.write_data.iter_mut().zip(&row[4..]) {
                        d.next = signed_cast(Bits::<$bits>::from(*v as u64));
                    }
                }
                fn sample(&self) -> Vec<u128> {
                    self.read_data.iter().map(|d| unsigned_cast(d.val()).to_u128()).collect()
                }
                fn connect_inputs(&mut self) {
                    ($port_b)(self);
                    self.clock.connect();
                    self.read_addr.connect();
                    self.read_enable.connect();
                    self.write_addr.connect();
                    self.write_enable.connect();
                    for d in &mut self.write_data {
                        d.connect();
                    }
                }
            }
        };
    }

    memory_ports!(Ram<Signed<8>>, Signed<8>, 8);
    memory_ports!(Ram<Signed<32>>, Signed<32>, 32);
    // the row memories' read port B idle (its own test below)
    memory_ports!(Scratchpad, Signed<8>, 8, |u: &mut Scratchpad| {
        u.read_addr_b.connect();
        u.read_enable_b.connect();
    });
    memory_ports!(AccumulatorMem, Signed<32>, 32, |u: &mut AccumulatorMem| {
        u.read_addr_b.connect();
        u.read_enable_b.connect();
    });

    fn lanes_of<M: MemoryPorts>(uut: &M) -> usize {
        uut.sample().len()
    }

    /// `cycles` through the rust-hdl model of `uut`.
    fn rust_trace<M: MemoryPorts>(mut uut: M, cycles: &[Cycle]) -> Vec<Vec<i64>> {
        let bits = M::Elem::BITS;
        uut.connect_inputs();
        let trace = replay::simulate(
            &mut uut,
            |u| u.clock(),
            &stimulus(cycles, bits),
            |u, r| u.apply(r),
            |u| u.sample(),
        )
        .expect("rust-hdl simulation");
        decode(trace, bits)
    }

    /// `cycles` through the emitted Verilog of `uut` under Icarus; a row memory's per-instance
    /// text (rust-hdl's, [`with_per_instance_text`]) too, which must give the same trace.
    fn verilog_trace<M: MemoryPorts>(mut uut: M, cycles: &[Cycle]) -> Vec<Vec<i64>> {
        let bits = M::Elem::BITS;
        let lanes = lanes_of(&uut);
        uut.connect_inputs();
        uut.connect_all();
        let (inputs, outputs) = ports(lanes, bits);
        let run = |verilog: &str| {
            replay::replay(verilog, "top", "clock", &inputs, &outputs, &stimulus(cycles, bits))
                .unwrap_or_else(|e| panic!("Icarus replay: {e}"))
        };
        let emitted = generate_verilog(&uut);
        let trace = run(&emitted);
        let per_instance = with_per_instance_text(|| generate_verilog(&uut));
        if per_instance != emitted {
            assert_eq!(run(&per_instance), trace, "per-instance vs generate-loop text (Icarus)");
        }
        decode(trace, bits)
    }

    /// Runs `cycles` through rust-hdl and Icarus (blocks built by `make`), checks both against
    /// the contract model, and returns the trace.
    fn check_both<M: MemoryPorts>(make: impl Fn() -> M, depth: usize, cycles: &[Cycle]) -> Vec<Vec<i64>> {
        let lanes = lanes_of(&make());
        let want = model(depth, lanes, cycles);
        assert_eq!(rust_trace(make(), cycles), want, "rust-hdl model vs contract");
        assert_eq!(verilog_trace(make(), cycles), want, "emitted Verilog (Icarus) vs contract");
        want
    }

    #[test]
    fn write_then_read_with_one_cycle_latency() {
        let rows = [vec![1, -128, 127], vec![-1, 0, 55]];
        let cycles = vec![write(3, &rows[0]), write(7, &rows[1]), read(3, 3), read(7, 3), idle(3), idle(3)];
        let out = check_both(|| Ram::<Signed<8>>::new(16, 3), 16, &cycles);
        assert_eq!(out[2], vec![0, 0, 0], "read_data is 0 before the first read");
        assert_eq!(out[3], rows[0], "the read of cycle 2 shows during cycle 3");
        assert_eq!(out[4], rows[1]);
        assert_eq!(out[5], rows[1], "read_data holds while read_enable is low");
    }

    #[test]
    fn read_during_write_of_the_same_row_returns_old_data() {
        let cycles = vec![
            write(5, &[11, 12]),
            Cycle { ra: 5, re: true, wa: 5, we: true, row: vec![21, 22] },
            read(5, 2),
            idle(2),
        ];
        let out = check_both(|| Ram::<Signed<32>>::new(8, 2), 8, &cycles);
        assert_eq!(out[2], vec![11, 12], "a read of the row being written returns the old row");
        assert_eq!(out[3], vec![21, 22], "and the write happened");
    }

    #[test]
    fn addresses_wrap_at_depth_and_memory_starts_at_zero() {
        // depth 8: address 13 is row 5, 0xffff is row 7.
        let cycles = vec![
            read(6, 1),
            write(13, &[-7]),
            write(0xffff, &[9]),
            read(5, 1),
            read(7, 1),
            read(15, 1),
            idle(1),
        ];
        let out = check_both(|| Ram::<Signed<32>>::new(8, 1), 8, &cycles);
        assert_eq!(out[1], vec![0]);
        assert_eq!(out[4], vec![-7]);
        assert_eq!(out[5], vec![9]);
        assert_eq!(out[6], vec![9]);
    }

    #[test]
    fn depth_one_and_full_depth() {
        let out =
            check_both(|| Ram::<Signed<8>>::new(1, 2), 1, &[write(1234, &[3, 4]), read(999, 2), idle(2)]);
        assert_eq!(out[2], vec![3, 4], "a depth-1 RAM ignores its addresses");
        let cycles = vec![write(0xffff, &[-5]), write(0, &[6]), read(0xffff, 1), read(0, 1), idle(1)];
        let out = check_both(|| Ram::<Signed<32>>::new(MAX_DEPTH, 1), MAX_DEPTH, &cycles);
        assert_eq!((out[3][0], out[4][0]), (-5, 6), "65536 rows use all 16 address bits");
    }

    #[test]
    fn extreme_values_round_trip() {
        let min = i32::MIN as i64;
        let max = i32::MAX as i64;
        let cycles = vec![write(0, &[min, max]), write(1, &[-1, 0]), read(0, 2), read(1, 2), idle(2)];
        let out = check_both(|| Ram::<Signed<32>>::new(2, 2), 2, &cycles);
        assert_eq!(out[3], vec![min, max]);
        assert_eq!(out[4], vec![-1, 0]);
    }

    #[test]
    #[should_panic(expected = "Ram depth must be a power of two in 1..=65536, got 1000")]
    fn bad_depth_is_rejected() {
        let _ = Ram::<Bits<8>>::new(1000, 1);
    }

    #[test]
    #[should_panic(expected = "Ram needs at least one lane, got 0")]
    fn zero_lanes_are_rejected() {
        let _ = Ram::<Bits<8>>::new(4, 0);
    }

    fn cycles_strategy(
        depth: usize,
        lanes: usize,
        lo: i64,
        hi: i64,
        len: usize,
    ) -> impl Strategy<Value = Vec<Cycle>> {
        // Addresses over twice the depth exercise wrapping; a small depth makes collisions
        // (same-row read and write) common.
        let addr = 0u16..(2 * depth as u16).max(2);
        let cycle =
            (addr.clone(), any::<bool>(), addr, any::<bool>(), proptest::collection::vec(lo..=hi, lanes))
                .prop_map(|(ra, re, wa, we, row)| Cycle { ra, re, wa, we, row });
        proptest::collection::vec(cycle, 1..len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_traffic_matches_the_contract_int8(cycles in cycles_strategy(8, 4, -128, 127, 60)) {
            prop_assert_eq!(rust_trace(Ram::<Signed<8>>::new(8, 4), &cycles), model(8, 4, &cycles));
        }

        #[test]
        fn random_traffic_matches_the_contract_int32(
            cycles in cycles_strategy(4, 2, i32::MIN as i64, i32::MAX as i64, 60)
        ) {
            prop_assert_eq!(rust_trace(Ram::<Signed<32>>::new(4, 2), &cycles), model(4, 2, &cycles));
        }
    }

    /// A long deterministic random stream through both row memories in rust-hdl and Icarus.
    #[test]
    fn row_memories_random_traffic_in_rust_hdl_and_icarus() {
        let cfg = Config::new(3, 16, 8).unwrap();
        let mut runner = TestRunner::deterministic();
        let cycles = cycles_strategy(16, 3, -128, 127, 2000).new_tree(&mut runner).unwrap().current();
        check_both(|| Scratchpad::new(&cfg), 16, &cycles);
        let cycles = cycles_strategy(8, 3, i32::MIN as i64, i32::MAX as i64, 2000)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        check_both(|| AccumulatorMem::new(&cfg), 8, &cycles);
    }

    /// Both read ports of a banked row memory: random traffic in which port B reads another
    /// bank than port A whenever both read (the controller's bank rules), against a model
    /// with two read ports, in rust-hdl and Icarus; 16 rows = two banks of 8, addresses over
    /// twice the depth (wrapping).
    #[test]
    fn two_read_ports_on_two_banks_in_rust_hdl_and_icarus() {
        let (depth, lanes) = (16usize, 2usize);
        let cfg = Config::new(lanes, depth, 1).unwrap();
        let mut rng = spec::rng::SplitMix64::new(0xba4c);
        let bank = |a: u64| (a as usize % depth) >= depth / 2;
        let mut stim = Vec::new();
        for _ in 0..1500 {
            let (ra, re) = (rng.below(2 * depth as u64), rng.chance(0.6));
            let mut rb = rng.below(2 * depth as u64);
            let rbe = rng.chance(0.6);
            while re && rbe && bank(rb) == bank(ra) {
                rb = rng.below(2 * depth as u64);
            }
            let (wa, we) = (rng.below(2 * depth as u64), rng.chance(0.5));
            let mut row = vec![ra as u128, re as u128, rb as u128, rbe as u128, wa as u128, we as u128];
            row.extend((0..lanes).map(|_| rng.below(256) as u128));
            stim.push(row);
        }
        // the model: reads see the old contents; each bank has one output register, and a
        // port shows the register of the bank it read last (so its row holds until either port
        // reads that bank again: the bank rules keep the ports apart for a whole command)
        let mut mem = vec![vec![0u128; lanes]; depth];
        let mut reg = [vec![0u128; lanes], vec![0u128; lanes]];
        let (mut sel_a, mut sel_b) = (0usize, 0usize);
        let mut want = Vec::new();
        for r in &stim {
            want.push([reg[sel_a].clone(), reg[sel_b].clone()].concat());
            if r[1] == 1 {
                sel_a = usize::from(bank(r[0] as u64));
                reg[sel_a] = mem[r[0] as usize % depth].clone();
            }
            if r[3] == 1 {
                sel_b = usize::from(bank(r[2] as u64));
                reg[sel_b] = mem[r[2] as usize % depth].clone();
            }
            if r[5] == 1 {
                mem[r[4] as usize % depth] = r[6..].to_vec();
            }
        }
        let mut uut = Scratchpad::new(&cfg);
        for p in [&mut uut.read_addr, &mut uut.read_addr_b, &mut uut.write_addr] {
            p.connect();
        }
        for p in [&mut uut.read_enable, &mut uut.read_enable_b, &mut uut.write_enable] {
            p.connect();
        }
        uut.clock.connect();
        for d in &mut uut.write_data {
            d.connect();
        }
        let got = replay::simulate(
            &mut uut,
            |u| &mut u.clock,
            &stim,
            |u, r| {
                u.read_addr.next = (r[0] as u64).into();
                u.read_enable.next = r[1] == 1;
                u.read_addr_b.next = (r[2] as u64).into();
                u.read_enable_b.next = r[3] == 1;
                u.write_addr.next = (r[4] as u64).into();
                u.write_enable.next = r[5] == 1;
                for (d, v) in u.write_data.iter_mut().zip(&r[6..]) {
                    d.next = signed_cast(Bits::<8>::from(*v as u64));
                }
            },
            |u| {
                let a = u.read_data.iter().map(|d| unsigned_cast(d.val()).to_u128());
                a.chain(u.read_data_b.iter().map(|d| unsigned_cast(d.val()).to_u128())).collect()
            },
        )
        .unwrap();
        assert_eq!(got, want, "rust-hdl");
        uut.connect_all();
        let mut inputs = vec![
            Port::new("read_addr", 16),
            Port::new("read_enable", 1),
            Port::new("read_addr_b", 16),
            Port::new("read_enable_b", 1),
            Port::new("write_addr", 16),
            Port::new("write_enable", 1),
        ];
        inputs.extend(Port::vec("write_data", lanes, 8));
        let mut outputs = Port::vec("read_data", lanes, 8);
        outputs.extend(Port::vec("read_data_b", lanes, 8));
        let rtl = replay::replay(&generate_verilog(&uut), "top", "clock", &inputs, &outputs, &stim).unwrap();
        assert_eq!(rtl, want, "Verilog (Icarus)");
        let per_instance = with_per_instance_text(|| generate_verilog(&uut));
        let rtl = replay::replay(&per_instance, "top", "clock", &inputs, &outputs, &stim).unwrap();
        assert_eq!(rtl, want, "per-instance Verilog (Icarus)");
    }

    /// The generate loop for the shapes the core uses and the edge cases: one row (one bank
    /// of one row each, the high bank unused), two rows (banks of one row: no address bits),
    /// one lane, and the ice40-up5k scratchpad's 4096 rows; random traffic on both ports
    /// (port B on the other bank whenever both read, the controller's rule) through rust-hdl's
    /// per-instance text and the generate loop under Icarus: the same trace.
    #[test]
    fn generate_loop_and_per_instance_text_agree_on_random_traffic() {
        for (lanes, rows, acc, n) in [(1, 1, 1, 200), (2, 2, 2, 300), (3, 16, 8, 600), (2, 4096, 512, 600)] {
            let cfg = Config::new(lanes, rows, acc).unwrap();
            let mut rng = spec::rng::SplitMix64::new(0x5eed ^ rows as u64);
            let stim = |depth: usize, bits: u32, rng: &mut spec::rng::SplitMix64| -> Vec<Vec<u128>> {
                let bank = |a: u64| depth > 1 && (a as usize % depth) >= depth / 2;
                (0..n)
                    .map(|_| {
                        let (ra, re) = (rng.below(2 * depth as u64), rng.chance(0.6));
                        let mut rb = rng.below(2 * depth as u64);
                        let rbe = rng.chance(0.6) && !(re && depth == 1);
                        while depth > 1 && re && rbe && bank(rb) == bank(ra) {
                            rb = rng.below(2 * depth as u64);
                        }
                        let (wa, we) = (rng.below(2 * depth as u64), rng.chance(0.5));
                        let mut row =
                            vec![ra as u128, re as u128, rb as u128, rbe as u128, wa as u128, we as u128];
                        row.extend(
                            (0..lanes)
                                .map(|_| (rng.next_u64() as u128) & crate::primitives::mask(bits as usize)),
                        );
                        row
                    })
                    .collect()
            };
            let check = |verilog: [String; 2], depth: usize, bits: usize, stim: Vec<Vec<u128>>| {
                let mut inputs = vec![
                    Port::new("read_addr", 16),
                    Port::new("read_enable", 1),
                    Port::new("read_addr_b", 16),
                    Port::new("read_enable_b", 1),
                    Port::new("write_addr", 16),
                    Port::new("write_enable", 1),
                ];
                inputs.extend(Port::vec("write_data", lanes, bits));
                let mut outputs = Port::vec("read_data", lanes, bits);
                outputs.extend(Port::vec("read_data_b", lanes, bits));
                let [emitted, per_instance] = verilog;
                assert_ne!(emitted, per_instance);
                let got = replay::replay(&emitted, "top", "clock", &inputs, &outputs, &stim).unwrap();
                let want = replay::replay(&per_instance, "top", "clock", &inputs, &outputs, &stim).unwrap();
                assert_eq!(got, want, "{lanes} lanes, {depth} rows of {bits} bits");
            };
            let mut sp = Scratchpad::new(&cfg);
            sp.connect_all();
            let texts = [generate_verilog(&sp), with_per_instance_text(|| generate_verilog(&sp))];
            check(texts, rows, 8, stim(rows, 8, &mut rng));
            let mut acc_mem = AccumulatorMem::new(&cfg);
            acc_mem.connect_all();
            let texts = [generate_verilog(&acc_mem), with_per_instance_text(|| generate_verilog(&acc_mem))];
            check(texts, acc, 32, stim(acc, 32, &mut rng));
        }
    }

    #[test]
    fn peek_shows_the_rows_written() {
        let cfg = Config::new(2, 4, 4).unwrap();
        let mut uut = Scratchpad::new(&cfg);
        uut.connect_inputs();
        let cycles = [write(1, &[-128, 127]), write(6, &[5, -6]), idle(2)];
        replay::simulate(&mut uut, |u| u.clock(), &stimulus(&cycles, 8), |u, r| u.apply(r), |u| u.sample())
            .unwrap();
        let row = |r: usize| -> Vec<i64> { uut.peek(r).iter().map(|v| signed_to_i128(*v) as i64).collect() };
        assert_eq!(row(1), vec![-128, 127]);
        assert_eq!(row(2), vec![5, -6], "address 6 wraps to row 2 of 4");
        assert_eq!(row(6), vec![5, -6], "peek wraps like an address");
        assert_eq!(row(0), vec![0, 0]);
    }

    #[test]
    fn row_memories_take_their_shape_from_the_config() {
        let cfg = Config::preset("ecp5-25k").unwrap();
        let s = Scratchpad::new(&cfg);
        assert_eq!((s.depth(), s.read_data.len(), s.write_data.len()), (2048, 4, 4));
        let a = AccumulatorMem::new(&cfg);
        assert_eq!((a.depth(), a.read_data.len(), a.write_data.len()), (1024, 4, 4));
    }

    #[test]
    fn ram_verilog_declares_the_configured_memory() {
        let mut uut = Ram::<Signed<8>>::new(1024, 3);
        uut.connect_inputs();
        uut.connect_all();
        let v = generate_verilog(&uut);
        assert!(v.contains("reg [23:0] mem [0:1023];"), "{v}");
        let read = "if (read_enable) {read_data$2, read_data$1, read_data$0} <= mem[read_addr[9:0]];";
        assert!(v.contains(read), "{v}");
        let write = "if (write_enable) mem[write_addr[9:0]] <= {write_data$2, write_data$1, write_data$0};";
        assert!(v.contains(write), "{v}");
        assert!(v.contains("(* no_rw_check *)"), "{v}");
    }

    fn connected<M: MemoryPorts>(mut uut: M) -> M {
        uut.connect_inputs();
        uut.connect_all();
        uut
    }

    #[test]
    fn memories_are_synthesizable() {
        let cfg = Config::new(3, 8, 4).unwrap();
        yosys_validate("pb_mem_scratchpad", &generate_verilog(&connected(Scratchpad::new(&cfg)))).unwrap();
        yosys_validate("pb_mem_accumulator", &generate_verilog(&connected(AccumulatorMem::new(&cfg))))
            .unwrap();
        for (depth, lanes) in [(1, 1), (2, 3), (512, 8)] {
            let uut = connected(Ram::<Signed<32>>::new(depth, lanes));
            yosys_validate(&format!("pb_ram_{depth}_{lanes}"), &generate_verilog(&uut)).unwrap();
        }
    }

    #[test]
    fn memory_verilog_is_lint_clean() {
        let mut texts = vec![];
        for cfg in
            [Config::new(3, 8, 4).unwrap(), Config::new(8, 1024, 512).unwrap(), Config::new(1, 1, 2).unwrap()]
        {
            let sp = connected(Scratchpad::new(&cfg));
            let acc = connected(AccumulatorMem::new(&cfg));
            texts.push(generate_verilog(&sp));
            texts.push(generate_verilog(&acc));
            texts.push(with_per_instance_text(|| generate_verilog(&sp)));
            texts.push(with_per_instance_text(|| generate_verilog(&acc)));
        }
        for verilog in texts {
            let warnings = replay::verilator_lint(&verilog, "top").expect("verilator");
            let real: Vec<_> = warnings.iter().filter(|w| w.code != "DECLFILENAME").collect();
            assert!(real.is_empty(), "{real:#?}");
        }
    }

    /// Yosys `synth_ecp5` cell counts of `verilog` (top `top`).
    pub(crate) fn ecp5_cells(verilog: &str) -> BTreeMap<String, usize> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("design.v"), verilog).unwrap();
        let out = std::process::Command::new("yosys")
            .current_dir(dir.path())
            .args(["-q", "-p", "read_verilog design.v; synth_ecp5 -top top; tee -o stat.txt stat"])
            .output()
            .expect("yosys must be on PATH (scripts/setup.sh)");
        assert!(out.status.success(), "yosys synth_ecp5 failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let stat = std::fs::read_to_string(dir.path().join("stat.txt")).unwrap();
        stat.lines()
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [name, n] => Some((name.to_string(), n.parse().ok()?)),
                _ => None,
            })
            .filter(|(name, _): &(String, usize)| !name.starts_with("Number"))
            .collect()
    }

    /// Every cell that is not a block RAM (logic, flip-flops, carry chains).
    fn logic_cells(cells: &BTreeMap<String, usize>, bram: &str) -> usize {
        cells.iter().filter(|(name, _)| name.as_str() != bram).map(|(_, n)| n).sum()
    }

    /// The RAM leaf maps onto block RAM with no logic (iCE40 SB_RAM40_4K, ECP5 DP16KD), and
    /// the banked row memories onto the same block RAMs plus only their two read ports' row
    /// muxes: at most one LUT per data bit and port and a few for the bank decode, and the two
    /// bank-select flip-flops. (Depths beyond one RAM's 2048 rows on iCE40 add an output mux;
    /// not exercised here.)
    #[test]
    fn memories_map_to_block_ram_without_logic() {
        let leaf = generate_verilog(&connected(Ram::<Signed<8>>::new(1024, 8)));
        let ice40 = replay::ice40_cells(&leaf, "top", false).expect("yosys");
        assert_eq!(
            (ice40.get("SB_RAM40_4K"), logic_cells(&ice40, "SB_RAM40_4K")),
            (Some(&16), 0),
            "{ice40:?}"
        );
        let ecp5 = ecp5_cells(&leaf);
        assert_eq!((ecp5.get("DP16KD"), logic_cells(&ecp5, "DP16KD")), (Some(&4), 0), "{ecp5:?}");
        let cfg = Config::new(8, 1024, 512).unwrap();
        for (name, verilog, bits, ice40_rams, ecp5_rams) in [
            ("scratchpad 1024 x 8 x int8", generate_verilog(&connected(Scratchpad::new(&cfg))), 64, 16, 4),
            (
                "accumulators 512 x 8 x int32",
                generate_verilog(&connected(AccumulatorMem::new(&cfg))),
                256,
                32,
                16,
            ),
        ] {
            let ice40 = replay::ice40_cells(&verilog, "top", false).expect("yosys");
            eprintln!("{name}: iCE40 {ice40:?}");
            assert_eq!(ice40.get("SB_RAM40_4K"), Some(&ice40_rams), "{name}: {ice40:?}");
            let luts = ice40.get("SB_LUT4").copied().unwrap_or(0);
            assert!(luts <= 2 * bits + 32, "{name}: {ice40:?}");
            assert_eq!(logic_cells(&ice40, "SB_RAM40_4K") - luts, 2, "{name}: {ice40:?}");
            let ecp5 = ecp5_cells(&verilog);
            eprintln!("{name}: ECP5 {ecp5:?}");
            assert_eq!(ecp5.get("DP16KD"), Some(&ecp5_rams), "{name}: {ecp5:?}");
            assert!(logic_cells(&ecp5, "DP16KD") <= 2 * bits + 32 + 2, "{name}: {ecp5:?}");
        }
    }
}
