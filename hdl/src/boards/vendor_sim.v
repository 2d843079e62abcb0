// Simulation models of the vendor primitives the board tops instantiate, for Icarus and
// Verilator. Synthesis tools define SYNTHESIS and use their own cell libraries instead.
// A model cannot change a frequency: the output clock is the input clock, and LOCK rises
// after 8 input clocks (so a test sees the reset synchroniser hold the design in reset).
`ifndef SYNTHESIS
module SB_PLL40_PAD #(
    parameter FEEDBACK_PATH = "SIMPLE",
    parameter [3:0] DIVR = 4'd0,
    parameter [6:0] DIVF = 7'd0,
    parameter [2:0] DIVQ = 3'd0,
    parameter [2:0] FILTER_RANGE = 3'd0
) (
    input wire PACKAGEPIN,
    output wire PLLOUTCORE,
    output wire PLLOUTGLOBAL,
    output wire LOCK,
    input wire RESETB,
    input wire BYPASS
);
    reg [3:0] lock_count = 4'd0;
    assign PLLOUTCORE = PACKAGEPIN;
    assign PLLOUTGLOBAL = PACKAGEPIN;
    assign LOCK = lock_count[3] & RESETB;
    always @(posedge PACKAGEPIN) if (!lock_count[3]) lock_count <= lock_count + 4'd1;
endmodule

module EHXPLLL #(
    parameter PLLRST_ENA = "DISABLED",
    parameter INTFB_WAKE = "DISABLED",
    parameter STDBY_ENABLE = "DISABLED",
    parameter DPHASE_SOURCE = "DISABLED",
    parameter OUTDIVIDER_MUXA = "DIVA",
    parameter OUTDIVIDER_MUXB = "DIVB",
    parameter OUTDIVIDER_MUXC = "DIVC",
    parameter OUTDIVIDER_MUXD = "DIVD",
    parameter integer CLKI_DIV = 1,
    parameter CLKOP_ENABLE = "ENABLED",
    parameter integer CLKOP_DIV = 8,
    parameter integer CLKOP_CPHASE = 0,
    parameter integer CLKOP_FPHASE = 0,
    parameter FEEDBK_PATH = "CLKOP",
    parameter integer CLKFB_DIV = 1
) (
    input wire CLKI,
    input wire CLKFB,
    input wire PHASESEL1,
    input wire PHASESEL0,
    input wire PHASEDIR,
    input wire PHASESTEP,
    input wire PHASELOADREG,
    input wire STDBY,
    input wire PLLWAKESYNC,
    input wire RST,
    input wire ENCLKOP,
    input wire ENCLKOS,
    input wire ENCLKOS2,
    input wire ENCLKOS3,
    output wire CLKOP,
    output wire CLKOS,
    output wire CLKOS2,
    output wire CLKOS3,
    output wire LOCK,
    output wire INTLOCK,
    output wire REFCLK,
    output wire CLKINTFB
);
    reg [3:0] lock_count = 4'd0;
    assign CLKOP = CLKI;
    assign CLKOS = CLKI;
    assign CLKOS2 = CLKI;
    assign CLKOS3 = CLKI;
    assign REFCLK = CLKI;
    assign CLKINTFB = CLKI;
    assign LOCK = lock_count[3] & !RST;
    assign INTLOCK = LOCK;
    always @(posedge CLKI) if (!lock_count[3]) lock_count <= lock_count + 4'd1;
endmodule
`endif
