//! Convolutions compiled onto the array: random conv shapes (kernel 1..5, stride 1..3, padding
//! 0..2, C_in and C_out up to 3·DIM, odd spatial sizes), lowered by `driver::Network` (host
//! im2col + the tiling compiler) and run on the golden device, equal a direct convolution
//! written here independently (nested loops over the output, no im2col); a sample of them runs
//! on the native model and on the Verilator model of the RTL with equal outputs and equal cycles.

use driver::quant::QuantLayer;
use driver::{ConvLayer, Device, GoldenTransport, Layer, Network, Op, Output, OutputKind};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::{CycleSim, VerilatedSim};
use spec::conv::{Conv2d, Shape, Window};
use spec::{Config, Quant};

/// One random convolution and its input.
#[derive(Debug, Clone)]
struct Case {
    cfg: Config,
    input: Shape,
    window: Window,
    c_out: usize,
    images: usize,
    x: DMatrix<i8>,
    w: DMatrix<i8>,
    b: DVector<i32>,
    quant: Quant,
    raw: bool,
}

/// Prebuilt Verilator configurations (sim/build.rs): no run-time model builds in this test.
fn configs() -> Vec<Config> {
    vec![Config::new(2, 16, 8).unwrap(), Config::new(4, 16, 8).unwrap(), Config::new(8, 32, 16).unwrap()]
}

fn case() -> impl Strategy<Value = Case> {
    (0usize..3, 1usize..=5, 1usize..=5, 1usize..=3, 1usize..=3, proptest::array::uniform4(0usize..=2))
        .prop_flat_map(|(ci, kh, kw, sh, sw, pads)| {
            let cfg = configs()[ci];
            let lim = 3 * cfg.dim();
            // odd sizes, at least the kernel minus the padding
            let h = (kh.saturating_sub(pads[0] + pads[2]).max(1)..=9).prop_map(|v| v | 1);
            let w = (kw.saturating_sub(pads[1] + pads[3]).max(1)..=9).prop_map(|v| v | 1);
            let window = Window { kernel: (kh, kw), stride: (sh, sw), padding: pads.into() };
            (Just(cfg), Just(window), h, w, 1..=lim, 1..=lim, 1usize..=2)
        })
        .prop_flat_map(|(cfg, window, h, w, c_in, c_out, images)| {
            let input = Shape::new(h, w, c_in).unwrap();
            let k = window.kernel.0 * window.kernel.1 * c_in;
            (
                Just((cfg, window, input, c_out, images)),
                proptest::collection::vec(any::<i8>(), images * input.len()),
                proptest::collection::vec(any::<i8>(), k * c_out),
                proptest::collection::vec(-20_000i32..20_000, c_out),
                (any::<u16>(), 6u8..=18, any::<bool>()),
                any::<bool>(),
            )
        })
        .prop_filter("the kernel fits the padded input", |((_, window, input, _, _), ..)| {
            window.output_hw(*input).is_ok()
        })
        .prop_map(|((cfg, window, input, c_out, images), x, w, b, (m, s, relu), raw)| Case {
            cfg,
            input,
            window,
            c_out,
            images,
            x: DMatrix::from_row_slice(images, input.len(), &x),
            w: DMatrix::from_row_slice(w.len() / c_out, c_out, &w),
            b: DVector::from_vec(b),
            quant: Quant::new(m, s, relu).unwrap(),
            raw,
        })
}

impl Case {
    fn network(&self) -> Network {
        let conv = Conv2d { window: self.window, c_in: self.input.c, c_out: self.c_out };
        let layer = Layer::new(self.w.clone(), self.b.clone(), self.quant).unwrap();
        let op = Op::Conv2d(ConvLayer::new(conv, QuantLayer::new(layer, 1.0, 1.0).unwrap()).unwrap());
        let kind = if self.raw { OutputKind::Raw } else { OutputKind::Int8 };
        Network::new(self.input, 1.0, vec![op], kind).unwrap()
    }

    /// The direct convolution: for every output pixel and filter, the sum over the kernel taps
    /// that fall inside the image (wrapping int32), plus the bias.
    fn direct(&self) -> DMatrix<i32> {
        let (s, (kh, kw), (sh, sw)) = (self.input, self.window.kernel, self.window.stride);
        let p = self.window.padding;
        let oh = (s.h + p.top + p.bottom - kh) / sh + 1;
        let ow = (s.w + p.left + p.right - kw) / sw + 1;
        DMatrix::from_fn(self.images, oh * ow * self.c_out, |n, idx| {
            let (pixel, f) = (idx / self.c_out, idx % self.c_out);
            let (r, c) = (pixel / ow, pixel % ow);
            let mut acc = self.b[f];
            for i in 0..kh {
                for j in 0..kw {
                    let y = (r * sh + i) as i64 - p.top as i64;
                    let x = (c * sw + j) as i64 - p.left as i64;
                    if y < 0 || x < 0 || y >= s.h as i64 || x >= s.w as i64 {
                        continue;
                    }
                    for ch in 0..s.c {
                        let v = self.x[(n, (y as usize * s.w + x as usize) * s.c + ch)];
                        let wv = self.w[((i * kw + j) * s.c + ch, f)];
                        acc = acc.wrapping_add(i32::from(v) * i32::from(wv));
                    }
                }
            }
            acc
        })
    }

    /// What the network must return: the direct accumulators, raw or requantised.
    fn expected(&self) -> Output {
        let acc = self.direct();
        if self.raw {
            Output::Raw(acc)
        } else {
            Output::Int8(acc.map(|a| spec::requantize(a, 0, self.quant)))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn compiled_convolutions_equal_a_direct_convolution(c in case()) {
        let net = c.network();
        let mut dev = Device::open(GoldenTransport::new(c.cfg), &c.cfg).unwrap();
        prop_assert_eq!(net.run(&mut dev, &c.x).unwrap(), c.expected());
        prop_assert_eq!(net.golden(&c.x).unwrap(), c.expected());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn on_the_native_model_and_the_rtl_equal_outputs_and_cycles(c in case()) {
        let net = c.network();
        let mut native = Device::open(SimTransport::new(NativeSim::new(&c.cfg)), &c.cfg).unwrap();
        let mut rtl = Device::open(SimTransport::new(VerilatedSim::new(&c.cfg).unwrap()), &c.cfg).unwrap();
        let a = net.run(&mut native, &c.x).unwrap();
        let b = net.run(&mut rtl, &c.x).unwrap();
        prop_assert_eq!(&a, &c.expected());
        prop_assert_eq!(&b, &c.expected());
        prop_assert_eq!(native.transport().sim().cycle(), rtl.transport().sim().cycle());
    }
}

/// A whole CNN (conv, pointwise conv chained on chip, strided conv, max pool, global average
/// pool, dense) on both simulators: equal to the host golden network, equal cycles.
#[test]
fn a_cnn_on_both_simulators_equals_the_golden_network() {
    let mut rng = spec::rng::SplitMix64::new(77);
    let mut layer = |k: usize, n: usize, relu: bool| {
        let w = DMatrix::from_fn(k, n, |_, _| (rng.next_u64() % 61) as i8 - 30);
        let b = DVector::from_fn(n, |_, _| (rng.next_u64() % 801) as i32 - 400);
        QuantLayer::new(Layer::new(w, b, Quant::new(5, 9, relu).unwrap()).unwrap(), 1.0, 1.0).unwrap()
    };
    let conv = |k: usize, s: usize, p: usize, c_in: usize, c_out: usize, l: QuantLayer| {
        Op::Conv2d(ConvLayer::new(Conv2d { window: Window::square(k, s, p), c_in, c_out }, l).unwrap())
    };
    let ops = vec![
        conv(3, 1, 1, 3, 6, layer(27, 6, true)),
        conv(1, 1, 0, 6, 5, layer(6, 5, true)),
        conv(3, 2, 1, 5, 7, layer(45, 7, true)),
        Op::MaxPool2d(Window::square(2, 1, 0)),
        Op::GlobalAvgPool,
        Op::Dense(layer(7, 4, false)),
    ];
    let net = Network::new(Shape::new(7, 7, 3).unwrap(), 1.0, ops, OutputKind::Raw).unwrap();
    let x = DMatrix::from_fn(3, 147, |_, _| (rng.next_u64() % 256) as u8 as i8);
    let want = net.golden(&x).unwrap();
    for cfg in [Config::new(4, 16, 8).unwrap(), Config::new(8, 32, 16).unwrap()] {
        let mut native = Device::open(SimTransport::new(NativeSim::new(&cfg)), &cfg).unwrap();
        let mut rtl = Device::open(SimTransport::new(VerilatedSim::new(&cfg).unwrap()), &cfg).unwrap();
        assert_eq!(net.run(&mut native, &x).unwrap(), want, "{cfg}");
        assert_eq!(net.run(&mut rtl, &x).unwrap(), want, "{cfg}");
        assert_eq!(native.transport().sim().cycle(), rtl.transport().sim().cycle(), "{cfg}");
    }
}
