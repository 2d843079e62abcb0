//! PLLs of the boards: one leaf block whose Verilog is the vendor primitive (iCE40
//! `SB_PLL40_PAD`, ECP5 `EHXPLLL`) and whose Rust model passes the clock through, plus the
//! search for divider settings (the same rules as icestorm's `icepll` and prjtrellis'
//! `ecppll`).
//!
//! ```text
//!   clock_in (oscillator pad) ──► [ SB_PLL40_PAD | EHXPLLL ] ──► clock_out (core clock)
//!                                                       └──────► locked
//! ```
//!
//! The Rust model cannot change a frequency (rust-hdl simulates clock edges, not time): its
//! `clock_out` is `clock_in`, and `locked` rises after 8 rising edges of `clock_in`. The
//! Verilog instance is the real primitive;
//! Yosys maps it, and for Icarus `vendor_sim.v` (next to this file, all under
//! `ifndef SYNTHESIS`) models both primitives the same way, with `LOCK` rising after 8 input
//! clocks.

use rust_hdl::prelude::*;

/// Rising input edges until the models of the PLL report `locked` (Rust and `vendor_sim.v`).
pub const LOCK_EDGES: u8 = 8;

/// Settings of the iCE40 PLL in SIMPLE feedback mode: `f_out = f_in * (DIVF + 1) /
/// ((DIVR + 1) * 2^DIVQ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ice40PllParams {
    /// Reference divider, 0..=15.
    pub divr: u8,
    /// Feedback divider, 0..=127.
    pub divf: u8,
    /// Output divider (power of two), 1..=6.
    pub divq: u8,
    /// Loop filter range, from the phase detector frequency.
    pub filter_range: u8,
}

impl Ice40PllParams {
    /// The output frequency for an input of `f_in_hz`.
    pub fn output_hz(&self, f_in_hz: f64) -> f64 {
        f_in_hz * (self.divf as f64 + 1.0) / ((self.divr as f64 + 1.0) * (1u32 << self.divq) as f64)
    }

    /// The settings whose output is closest to `f_out_hz` (exact if possible) within the
    /// datasheet limits `icepll` uses: input 10..=133 MHz, phase detector 10..=133 MHz, VCO
    /// 533..=1066 MHz, output 16..=275 MHz. `None` if nothing is within 1 %.
    pub fn search(f_in_hz: f64, f_out_hz: f64) -> Option<Self> {
        let mut best: Option<(f64, Self)> = None;
        for divr in 0..=15u8 {
            let pfd = f_in_hz / (divr as f64 + 1.0);
            if !(10e6..=133e6).contains(&pfd) {
                continue;
            }
            for divf in 0..=127u8 {
                let vco = pfd * (divf as f64 + 1.0);
                if !(533e6..=1066e6).contains(&vco) {
                    continue;
                }
                for divq in 1..=6u8 {
                    let out = vco / (1u32 << divq) as f64;
                    if !(16e6..=275e6).contains(&out) {
                        continue;
                    }
                    let err = (out - f_out_hz).abs();
                    // icepll keeps the first best (smallest DIVR, then DIVF)
                    if best.is_none_or(|(e, _)| err < e) {
                        let filter_range = match pfd {
                            p if p < 17e6 => 1,
                            p if p < 26e6 => 2,
                            p if p < 44e6 => 3,
                            p if p < 66e6 => 4,
                            p if p < 101e6 => 5,
                            _ => 6,
                        };
                        best = Some((err, Ice40PllParams { divr, divf, divq, filter_range }));
                    }
                }
            }
        }
        best.filter(|(e, _)| *e <= f_out_hz * 0.01).map(|(_, p)| p)
    }
}

/// Settings of the ECP5 `EHXPLLL` with CLKOP as feedback: `f_out = f_in * CLKFB_DIV /
/// CLKI_DIV`, VCO = `f_out * CLKOP_DIV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecp5PllParams {
    /// Input divider, 1..=128.
    pub clki_div: u8,
    /// Feedback divider, 1..=80.
    pub clkfb_div: u8,
    /// CLKOP output divider, 1..=128.
    pub clkop_div: u8,
}

impl Ecp5PllParams {
    /// The output frequency for an input of `f_in_hz`.
    pub fn output_hz(&self, f_in_hz: f64) -> f64 {
        f_in_hz * self.clkfb_div as f64 / self.clki_div as f64
    }

    /// CLKOP's coarse phase setting for a 0° output (what `ecppll` writes).
    pub fn clkop_cphase(&self) -> u8 {
        (self.clkop_div - 1) / 2
    }

    /// The settings whose output is closest to `f_out_hz`, preferring a VCO near 600 MHz (as
    /// `ecppll` does), within phase detector 3.125..=400 MHz and VCO 400..=800 MHz. `None` if
    /// nothing is within 1 %.
    pub fn search(f_in_hz: f64, f_out_hz: f64) -> Option<Self> {
        let mut best: Option<((f64, f64), Self)> = None;
        for clki_div in 1..=128u8 {
            let pfd = f_in_hz / clki_div as f64;
            if !(3.125e6..=400e6).contains(&pfd) {
                continue;
            }
            for clkfb_div in 1..=80u8 {
                let out = pfd * clkfb_div as f64;
                for clkop_div in 1..=128u8 {
                    let vco = out * clkop_div as f64;
                    if !(400e6..=800e6).contains(&vco) {
                        continue;
                    }
                    let key = ((out - f_out_hz).abs(), (vco - 600e6).abs());
                    if best.is_none_or(|(k, _)| key < k) {
                        best = Some((key, Ecp5PllParams { clki_div, clkfb_div, clkop_div }));
                    }
                }
            }
        }
        best.filter(|((e, _), _)| *e <= f_out_hz * 0.01).map(|(_, p)| p)
    }
}

/// Which PLL primitive and with what settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PllKind {
    /// iCE40 `SB_PLL40_PAD` (its input must come straight from a PLL-capable pad).
    Ice40(Ice40PllParams),
    /// ECP5 `EHXPLLL`; the input frequency in MHz is written as an attribute for nextpnr.
    Ecp5 {
        /// The settings.
        params: Ecp5PllParams,
        /// Input frequency in MHz.
        f_in_mhz: f64,
    },
}

/// A PLL leaf (see the module docs).
#[derive(LogicBlock)]
pub struct Pll {
    /// The oscillator.
    pub clock_in: Signal<In, Clock>,
    /// The generated clock.
    pub clock_out: Signal<Out, Clock>,
    /// High once the PLL has locked.
    pub locked: Signal<Out, Bit>,
    _kind: PllKind,
    _edges: u8,
    _last_clock: bool,
}

impl Pll {
    /// A PLL with the given primitive and settings.
    pub fn new(kind: PllKind) -> Self {
        Pll {
            clock_in: Default::default(),
            clock_out: Default::default(),
            locked: Default::default(),
            _kind: kind,
            _edges: 0,
            _last_clock: false,
        }
    }
}

impl Logic for Pll {
    fn update(&mut self) {
        self.clock_out.next = self.clock_in.val();
        // `update` runs several times per edge while the design settles, and the registers
        // that read `locked` may see their edge an iteration later than this block: count
        // rising edges, but change `locked` only at the falling edge, so every register
        // samples a stable value (as the Verilog model's LOCK is stable at the rising edge).
        let clock = self.clock_in.val().clk;
        if clock && !self._last_clock && self._edges < LOCK_EDGES {
            self._edges += 1;
        }
        if !clock && self._last_clock {
            self.locked.next = self._edges >= LOCK_EDGES;
        }
        self._last_clock = clock;
    }

    fn connect(&mut self) {
        self.clock_out.connect();
        self.locked.connect();
    }

    fn hdl(&self) -> Verilog {
        let code = match self._kind {
            PllKind::Ice40(p) => format!(
                "\
SB_PLL40_PAD #(
    .FEEDBACK_PATH(\"SIMPLE\"),
    .DIVR(4'd{divr}),
    .DIVF(7'd{divf}),
    .DIVQ(3'd{divq}),
    .FILTER_RANGE(3'd{fr})
) pll_i (
    .PACKAGEPIN(clock_in),
    .PLLOUTCORE(clock_out),
    .LOCK(locked),
    .RESETB(1'b1),
    .BYPASS(1'b0)
);",
                divr = p.divr,
                divf = p.divf,
                divq = p.divq,
                fr = p.filter_range,
            ),
            PllKind::Ecp5 { params: p, f_in_mhz } => format!(
                "\
(* FREQUENCY_PIN_CLKI=\"{fin}\" *)
(* FREQUENCY_PIN_CLKOP=\"{fout}\" *)
(* ICP_CURRENT=\"12\" *) (* LPF_RESISTOR=\"8\" *) (* MFG_ENABLE_FILTEROPAMP=\"1\" *) (* MFG_GMCREF_SEL=\"2\" *)
EHXPLLL #(
    .PLLRST_ENA(\"DISABLED\"),
    .INTFB_WAKE(\"DISABLED\"),
    .STDBY_ENABLE(\"DISABLED\"),
    .DPHASE_SOURCE(\"DISABLED\"),
    .OUTDIVIDER_MUXA(\"DIVA\"),
    .OUTDIVIDER_MUXB(\"DIVB\"),
    .OUTDIVIDER_MUXC(\"DIVC\"),
    .OUTDIVIDER_MUXD(\"DIVD\"),
    .CLKI_DIV({clki}),
    .CLKOP_ENABLE(\"ENABLED\"),
    .CLKOP_DIV({clkop}),
    .CLKOP_CPHASE({cphase}),
    .CLKOP_FPHASE(0),
    .FEEDBK_PATH(\"CLKOP\"),
    .CLKFB_DIV({clkfb})
) pll_i (
    .RST(1'b0),
    .STDBY(1'b0),
    .CLKI(clock_in),
    .CLKOP(clock_out),
    .CLKFB(clock_out),
    .PHASESEL0(1'b0),
    .PHASESEL1(1'b0),
    .PHASEDIR(1'b1),
    .PHASESTEP(1'b1),
    .PHASELOADREG(1'b1),
    .PLLWAKESYNC(1'b0),
    .ENCLKOP(1'b0),
    .LOCK(locked)
);",
                fin = trim_mhz(f_in_mhz),
                fout = trim_mhz(p.output_hz(f_in_mhz * 1e6) / 1e6),
                clki = p.clki_div,
                clkop = p.clkop_div,
                cphase = p.clkop_cphase(),
                clkfb = p.clkfb_div,
            ),
        };
        Verilog::Wrapper(Wrapper { code, cores: String::new() })
    }
}

/// A frequency in MHz without trailing zeros (`25`, `33.333333`).
fn trim_mhz(mhz: f64) -> String {
    let s = format!("{mhz:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search finds what `icepll` prints (checked here against the tool when it is
    /// installed, and against values it printed otherwise).
    #[test]
    fn ice40_settings_match_icepll() {
        let known = [
            (30e6, Ice40PllParams { divr: 0, divf: 79, divq: 5, filter_range: 1 }),
            (36e6, Ice40PllParams { divr: 0, divf: 47, divq: 4, filter_range: 1 }),
            (48e6, Ice40PllParams { divr: 0, divf: 63, divq: 4, filter_range: 1 }),
        ];
        for (f, want) in known {
            let got = Ice40PllParams::search(12e6, f).unwrap();
            assert_eq!(got, want, "{f} Hz");
            assert_eq!(got.output_hz(12e6), f);
            if let Ok(out) = std::process::Command::new("icepll")
                .args(["-i", "12", "-o", &format!("{}", f / 1e6)])
                .output()
            {
                let text = String::from_utf8_lossy(&out.stdout);
                for (key, v) in [("DIVR:", got.divr), ("DIVF:", got.divf), ("DIVQ:", got.divq)] {
                    let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{text}"));
                    let printed: u8 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                    assert_eq!(printed, v, "{key} for {f} Hz:\n{text}");
                }
            }
        }
        assert_eq!(Ice40PllParams::search(12e6, 1e6), None, "below the PLL's output range");
    }

    /// The search finds what `ecppll -i 25 -o 50` / `-o 40` print.
    #[test]
    fn ecp5_settings_match_ecppll() {
        let p = Ecp5PllParams::search(25e6, 50e6).unwrap();
        assert_eq!(p, Ecp5PllParams { clki_div: 1, clkfb_div: 2, clkop_div: 12 });
        assert_eq!(p.clkop_cphase(), 5);
        let p = Ecp5PllParams::search(25e6, 40e6).unwrap();
        assert_eq!(p, Ecp5PllParams { clki_div: 5, clkfb_div: 8, clkop_div: 15 });
        assert_eq!(p.clkop_cphase(), 7);
        assert_eq!(p.output_hz(25e6), 40e6);
        assert_eq!(trim_mhz(25.0), "25");
        assert_eq!(trim_mhz(33.3333333), "33.333333");
    }
}
