//! # protobrain driver
//!
//! The host side of a protobrain core: a word-stream [`Transport`], the typed [`Device`] API,
//! and the tiling compiler that turns GEMMs and MLPs of any size into [`Program`]s.
//!
//! ```text
//!   X, [Layer] ──► compile_mlp / compile_layer ──► Program (commands + where results land)
//!                                                    │  JSON / .bin (Program::words)
//!                                                    ▼
//!                          Device::run ──► Transport ──► GoldenTransport (spec::GoldenDevice)
//!                              │                     ──► SerialTransport (UART board)
//!                              ▼                     ──► cycle simulators (implemented in sim/)
//!                          RunOutput: results, responses, words sent/received
//! ```
//!
//! It depends on `spec` only (plus small crates): the encoding, the arithmetic and the golden
//! device come from there and are not re-implemented. See `docs/driver.md` for a walk-through.
//!
//! ```
//! use driver::{Device, GoldenTransport, Layer, OutputKind};
//! use nalgebra::{DMatrix, DVector};
//! use spec::{Config, Quant};
//!
//! let cfg = Config::new(4, 64, 32).unwrap();
//! let mut dev = Device::open(GoldenTransport::new(cfg), &cfg).unwrap();
//! let x = DMatrix::from_fn(10, 9, |m, k| (m as i8) - (k as i8));
//! let w = DMatrix::from_fn(9, 6, |k, n| (k as i8) * 3 - (n as i8));
//! let layer = Layer::new(w.clone(), DVector::from_element(6, 5), Quant::new(3, 4, true).unwrap()).unwrap();
//! let y = dev.layer(&x, &layer, OutputKind::Int8).unwrap();
//! let want = spec::golden::layer(&x, &w, layer.bias(), layer.quant()).unwrap();
//! assert_eq!(y.as_int8(), Some(&want));
//! ```

pub mod compile;
pub mod device;
pub mod network;
pub mod program;
pub mod serial;
pub mod transport;

pub use compile::{
    compile_layer, compile_mlp, compile_mlp_buffered, compile_mlp_resident, plan, plan_buffered, stream_mlp,
    stream_mlp_buffered, Buffering, CompileError, Layer, OutputKind, Plan, ProgramStream, Residency,
};
pub use device::{Device, DriverError, Info, LinkStats};
pub use network::{ConvLayer, Network, NetworkError, Op};
pub use program::{Block, Output, Program, ProgramError, ProgramStats, ResultKind, RunOutput, Step};
pub use serial::{BytePort, SerialTransport};
pub use transport::{GoldenTransport, Recorder, Transport, TransportError};
pub mod quant;
