//! # protobrain spec
//!
//! The single source of truth shared by the hardware generator, the simulators and the driver:
//! the [`Config`], the bit-exact arithmetic ([`arith`]), the nalgebra golden model
//! ([`golden`]), the command encoding ([`isa`]) and its framing on a wider link ([`lanes`]), and
//! the functional golden device ([`device`]). The hardware and every simulator must agree with
//! these to the bit.

pub mod arith;
pub mod config;
pub mod conv;
pub mod device;
pub mod golden;
pub mod isa;
pub mod lanes;
pub mod rng;
pub mod stimulus;
pub mod stream;
pub mod timing;

pub use arith::{requantize, requantize_v2, ColumnScale, LayerQuant, Quant, QuantError};
pub use config::{banks_touched, rows_meet, Config, ConfigError, VERSION};
pub use conv::{Conv2d, ConvError, Padding, Shape, Window};
pub use device::GoldenDevice;
pub use golden::ShapeError;
pub use isa::{Command, CommandDecoder, CommandError, Counters, ErrorCode, Response, ResponseDecoder};
