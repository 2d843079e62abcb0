//! # protobrain hdl
//!
//! The RTL of protobrain in rust-hdl. Every block is built at run time from a
//! [`spec::Config`] (per-column blocks live in `Vec`s, loops in `#[hdl_gen]` are bounded by
//! `.len()`), so one binary emits Verilog for any DIM and memory size.

pub mod activation;
pub mod array;
pub mod boards;
pub mod column;
pub mod controller;
pub mod core;
pub mod dedupe;
pub mod emit;
pub mod formal;
pub mod generate;
pub mod inline_dff;
pub mod memory;
pub mod pe;
pub mod primitives;
pub mod replay;
pub mod rowbuf;
pub mod stream;
pub mod tool;
pub mod uart;
pub mod wide;
