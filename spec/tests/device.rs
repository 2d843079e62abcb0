//! The golden device against the nalgebra golden model, and its error rules.

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use spec::isa::{decode_responses, header, opcode, Command, Response};
use spec::{golden, ColumnScale, CommandError, Config, ErrorCode, GoldenDevice, LayerQuant, Quant};

fn run(dev: &mut GoldenDevice, cmds: &[Command]) -> Vec<Response> {
    let dim = dev.config().dim();
    for c in cmds {
        dev.push_all(c.encode(dim).unwrap());
    }
    decode_responses(dim, &dev.take_output()).unwrap()
}

/// Y = act(X W + b) tiled by hand onto a DIM x DIM device: X's K-tiles go to the scratchpad
/// (tile kt of row m at row kt*M + m), each N-tile accumulates its K-tiles into acc rows 0..M,
/// is activated into the scratchpad after the inputs, and read back (int8 and raw int32).
fn gemm_on_device(
    cfg: Config,
    x: &DMatrix<i8>,
    w: &DMatrix<i8>,
    b: &DVector<i32>,
    q: &LayerQuant,
) -> (DMatrix<i8>, DMatrix<i32>) {
    let d = cfg.dim();
    let (m, k, n) = (x.nrows(), x.ncols(), w.ncols());
    let (kt, nt) = (k.div_ceil(d), n.div_ceil(d));
    assert!(kt * m + m <= cfg.scratch_rows() && m <= cfg.acc_rows(), "test shape too big");
    let mut dev = GoldenDevice::new(cfg);
    // v1 SET_QUANT when it is v1, else the 2-word form and, per N-tile, LOAD_QUANT
    let mut cmds = vec![match q.as_v1() {
        Some(v1) => Command::SetQuant(v1),
        None => Command::SetQuantZp { quant: q.scale(0).with_relu(q.relu()), zero_point: q.zero_point() },
    }];
    for t in 0..kt {
        let rows = (0..m)
            .map(|r| (0..d).map(|c| if t * d + c < k { x[(r, t * d + c)] } else { 0 }).collect())
            .collect();
        cmds.push(Command::WriteAct { dst: (t * m) as u16, rows });
    }
    let out_base = (kt * m) as u16;
    let mut y = DMatrix::zeros(m, n);
    let mut raw = DMatrix::zeros(m, n);
    for j in 0..nt {
        let mut tile = cmds.clone();
        cmds.clear();
        for t in 0..kt {
            let weights = (0..d * d)
                .map(|i| {
                    let (kk, nn) = (t * d + i / d, j * d + i % d);
                    if kk < k && nn < n {
                        w[(kk, nn)]
                    } else {
                        0
                    }
                })
                .collect();
            tile.push(Command::LoadWeights { weights });
            tile.push(Command::Matmul { src: (t * m) as u16, n: m as u16, dst: 0, accumulate: t > 0 });
        }
        tile.push(Command::LoadBias {
            bias: (0..d).map(|c| if j * d + c < n { b[j * d + c] } else { 0 }).collect(),
        });
        if !q.is_per_tensor() {
            let scales =
                (0..d).map(|c| if j * d + c < n { q.scale(j * d + c) } else { ColumnScale::default() });
            tile.push(Command::LoadQuant { scales: scales.collect() });
        }
        tile.push(Command::Activate { src: 0, n: m as u16, dst: out_base });
        tile.push(Command::ReadAct { src: out_base, n: m as u16 });
        tile.push(Command::ReadAcc { src: 0, n: m as u16 });
        let resp = run(&mut dev, &tile);
        let [Response::ReadAct { rows: act }, Response::ReadAcc { rows: acc }] = &resp[..] else {
            panic!("unexpected responses {resp:?}")
        };
        for r in 0..m {
            for c in 0..d.min(n - j * d) {
                y[(r, j * d + c)] = act[r][c];
                raw[(r, j * d + c)] = acc[r][c].wrapping_add(b[j * d + c]);
            }
        }
    }
    (y, raw)
}

#[test]
fn two_by_two_on_paper() {
    // Same numbers as golden::tests::two_by_two_on_paper, through the command stream.
    // X = [1 -2; 3 4], W = [5 6; -7 8] -> X·W = [19 -10; -13 50]; b = [1 -100]; M=3, S=2 -> [15 -82; -9 -37]
    let cfg = Config::new(2, 8, 4).unwrap();
    let mut dev = GoldenDevice::new(cfg);
    let cmds = [
        Command::WriteAct { dst: 5, rows: vec![vec![1, -2], vec![3, 4]] },
        Command::LoadWeights { weights: vec![5, 6, -7, 8] },
        Command::LoadBias { bias: vec![1, -100] },
        Command::SetQuant(Quant::new(3, 2, false).unwrap()),
        Command::Matmul { src: 5, n: 2, dst: 1, accumulate: false },
        Command::ReadAcc { src: 1, n: 2 },
        Command::Activate { src: 1, n: 2, dst: 0 },
        Command::ReadAct { src: 0, n: 2 },
        // accumulate the same product again: 2 * X·W = [38 -20; -26 100]
        Command::Matmul { src: 5, n: 2, dst: 1, accumulate: true },
        Command::ReadAcc { src: 1, n: 2 },
        Command::Sync { token: 0xC0FFEE },
    ];
    assert_eq!(
        run(&mut dev, &cmds),
        vec![
            Response::ReadAcc { rows: vec![vec![19, -10], vec![-13, 50]] },
            Response::ReadAct { rows: vec![vec![15, -82], vec![-9, -37]] },
            Response::ReadAcc { rows: vec![vec![38, -20], vec![-26, 100]] },
            Response::Sync { token: 0xC0FFEE },
        ]
    );
}

#[test]
fn info_and_counters() {
    let cfg = Config::new(3, 16, 8).unwrap();
    let mut dev = GoldenDevice::new(cfg);
    let words = [
        header(opcode::INFO, 0),
        header(opcode::MATMUL, 2),
        0x0004_0000,
        0,
        header(0x66, 0),
        header(opcode::COUNTERS, 0),
    ];
    dev.push_all(words);
    let resp = decode_responses(3, &dev.take_output()).unwrap();
    assert_eq!(resp[0], Response::Info { version: spec::VERSION, dim: 3, scratch_rows: 16, acc_rows: 8 });
    assert_eq!(resp[1], Response::Error(CommandError { opcode: 0x66, code: ErrorCode::UnknownOpcode }));
    let Response::Counters(c) = resp[2] else { panic!() };
    assert_eq!((c.macs, c.commands, c.errors), (4 * 9, 3, 1));
    assert_eq!((c.cycles, c.array_busy_cycles, c.in_stall_cycles, c.out_stall_cycles), (0, 0, 0, 0));
}

#[test]
fn weights_swap_on_the_next_valid_matmul_only() {
    let cfg = Config::new(1, 4, 4).unwrap();
    let mut dev = GoldenDevice::new(cfg);
    let resp = run(
        &mut dev,
        &[
            Command::WriteAct { dst: 0, rows: vec![vec![3]] },
            Command::LoadWeights { weights: vec![2] },
            Command::Matmul { src: 0, n: 1, dst: 0, accumulate: false }, // swaps in 2: 6
            Command::LoadWeights { weights: vec![5] },
            Command::Matmul { src: 3, n: 2, dst: 0, accumulate: false }, // out of range: no swap
            Command::Matmul { src: 0, n: 1, dst: 1, accumulate: false }, // swaps in 5: 15
            Command::LoadWeights { weights: vec![7] },
            Command::Matmul { src: 0, n: 0, dst: 0, accumulate: false }, // n = 0 swaps in 7
            Command::Matmul { src: 0, n: 1, dst: 2, accumulate: false }, // 21
            Command::ReadAcc { src: 0, n: 3 },
        ],
    );
    assert_eq!(
        resp,
        vec![
            Response::Error(CommandError { opcode: opcode::MATMUL, code: ErrorCode::OutOfRange }),
            Response::ReadAcc { rows: vec![vec![6], vec![15], vec![21]] },
        ]
    );
}

fn shapes() -> impl Strategy<Value = (Config, DMatrix<i8>, DMatrix<i8>, DVector<i32>, Quant)> {
    (1usize..=5, 1usize..=12, 1usize..=14, 1usize..=13).prop_flat_map(|(d, m, k, n)| {
        let cfg = Config::new(d, 256, 16).unwrap();
        (
            Just(cfg),
            proptest::collection::vec(any::<i8>(), m * k)
                .prop_map(move |v| DMatrix::from_row_slice(m, k, &v)),
            proptest::collection::vec(any::<i8>(), k * n)
                .prop_map(move |v| DMatrix::from_row_slice(k, n, &v)),
            proptest::collection::vec(-100_000i32..100_000, n).prop_map(DVector::from_vec),
            (any::<u16>(), 0u8..=20, any::<bool>()).prop_map(|(m, s, r)| Quant::new(m, s, r).unwrap()),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn gemm_through_the_command_stream_equals_nalgebra((cfg, x, w, b, q) in shapes()) {
        let (y, raw) = gemm_on_device(cfg, &x, &w, &b, &q.into());
        prop_assert_eq!(y, golden::layer(&x, &w, &b, q).unwrap());
        prop_assert_eq!(raw, golden::layer_raw(&x, &w, &b).unwrap());
    }

    /// A refused command changes nothing: the state after [prefix, bad, probe] equals the
    /// state after [prefix, probe], and the only extra output is the one 0xFF response.
    #[test]
    fn bad_commands_change_nothing(
        seed in proptest::collection::vec(any::<i8>(), 8),
        bad in prop_oneof![
            (0x41u8..=0x7f, 0u32..5).prop_map(|(o, l)| { let mut v = vec![header(o, l)]; v.extend((0..l).map(|i| i * 0x0101_0101)); v }),
            proptest::sample::select(vec![0u32, 1, 3]).prop_map(|l| { let mut v = vec![header(opcode::LOAD_WEIGHTS, l)]; v.extend((0..l).map(|_| 0x7f7f_7f7f)); v }),
            Just(vec![header(opcode::WRITE_ACT, 3), 0x0001_0003, 0x0505_0505, 0x0505_0505]),
            Just(vec![header(opcode::WRITE_ACT, 2), 0x0001_0004, 0x0505_0505]),
            Just(vec![header(opcode::MATMUL, 2), 0x0001_0000, 0x0001_0004]),
            Just(vec![header(opcode::ACTIVATE, 2), 0x0002_0003, 0]),
            Just(vec![header(opcode::SET_QUANT, 1), 0x0130_0001]),
            Just(vec![header(opcode::SET_QUANT, 2), 0x0030_0001, 0x05]),
            Just(vec![header(opcode::SET_QUANT, 3), 0x0001_0001, 0x05, 0x05]),
            Just(vec![header(opcode::LOAD_QUANT, 2), 0x0001_0001, 0x0030_0001]),
            Just(vec![header(opcode::LOAD_QUANT, 2), 0x0031_0001, 0x0001_0001]),
            Just(vec![header(opcode::LOAD_QUANT, 1), 0x0001_0001]),
            Just(vec![header(opcode::LOAD_BIAS, 3), 1, 2, 3]),
        ],
    ) {
        let cfg = Config::new(2, 4, 4).unwrap();
        let prefix = [
            Command::WriteAct { dst: 0, rows: vec![seed[0..2].to_vec(), seed[2..4].to_vec()] },
            Command::LoadWeights { weights: seed[4..8].to_vec() },
            Command::Matmul { src: 0, n: 2, dst: 0, accumulate: false },
            Command::LoadWeights { weights: vec![1, 1, 1, 1] },
            Command::SetQuantZp { quant: Quant::new(3, 1, true).unwrap(), zero_point: -7 },
            Command::LoadQuant { scales: vec![ColumnScale::new(3, 1).unwrap(), ColumnScale::new(5, 2).unwrap()] },
            Command::LoadBias { bias: vec![5, -5] },
        ];
        let probe = [
            Command::Matmul { src: 0, n: 2, dst: 2, accumulate: true },
            Command::Activate { src: 0, n: 4, dst: 0 },
            Command::ReadAct { src: 0, n: 4 },
            Command::ReadAcc { src: 0, n: 4 },
        ];
        let words = |with_bad: bool| {
            let mut w = Vec::new();
            prefix.iter().for_each(|c| c.encode_into(2, &mut w).unwrap());
            if with_bad { w.extend(&bad); }
            probe.iter().for_each(|c| c.encode_into(2, &mut w).unwrap());
            w
        };
        let good = decode_responses(2, &GoldenDevice::run(cfg, &words(false))).unwrap();
        let mut with_bad = decode_responses(2, &GoldenDevice::run(cfg, &words(true))).unwrap();
        prop_assert!(matches!(with_bad.remove(0), Response::Error(_)));
        prop_assert_eq!(with_bad, good);
    }
}

fn v2_shapes() -> impl Strategy<Value = (Config, DMatrix<i8>, DMatrix<i8>, DVector<i32>, LayerQuant)> {
    (shapes(), any::<i8>(), any::<bool>()).prop_flat_map(|((cfg, x, w, b, q), z, per_column)| {
        let n = w.ncols();
        let scales = if per_column { n } else { 1 };
        (
            Just((cfg, x, w, b)),
            proptest::collection::vec((any::<u16>(), 0u8..=20), scales).prop_map(move |v| {
                let scales = v.into_iter().map(|(m, s)| ColumnScale::new(m, s).unwrap()).collect();
                LayerQuant::per_column(scales, q.relu, z).unwrap()
            }),
        )
            .prop_map(|((cfg, x, w, b), q)| (cfg, x, w, b, q))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Contract v2 (per-column scales via LOAD_QUANT, zero point via the 2-word SET_QUANT)
    /// through the command stream equals `golden::layer_v2`.
    #[test]
    fn v2_gemm_through_the_command_stream_equals_nalgebra((cfg, x, w, b, q) in v2_shapes()) {
        let (y, raw) = gemm_on_device(cfg, &x, &w, &b, &q);
        prop_assert_eq!(y, golden::layer_v2(&x, &w, &b, &q).unwrap());
        prop_assert_eq!(raw, golden::layer_raw(&x, &w, &b).unwrap());
    }
}

#[test]
fn v2_quant_state_rules() {
    // SET_QUANT sets every column and Z; LOAD_QUANT only the columns; the 1-word SET_QUANT
    // resets Z to 0. X = [10 -10], W = I -> acc = [10 -10], bias 0.
    let cfg = Config::new(2, 8, 4).unwrap();
    let mut dev = GoldenDevice::new(cfg);
    let c = |m, s| ColumnScale::new(m, s).unwrap();
    let act = |dev: &mut GoldenDevice, cmds: &[Command]| {
        let mut all = cmds.to_vec();
        all.push(Command::Activate { src: 0, n: 1, dst: 1 });
        all.push(Command::ReadAct { src: 1, n: 1 });
        match &run(dev, &all)[..] {
            [Response::ReadAct { rows }] => rows[0].clone(),
            r => panic!("{r:?}"),
        }
    };
    run(
        &mut dev,
        &[
            Command::WriteAct { dst: 0, rows: vec![vec![10, -10]] },
            Command::LoadWeights { weights: vec![1, 0, 0, 1] },
            Command::Matmul { src: 0, n: 1, dst: 0, accumulate: false },
        ],
    );
    let q = Quant::new(1, 0, true).unwrap();
    assert_eq!(act(&mut dev, &[Command::SetQuant(q)]), vec![10, 0]);
    assert_eq!(act(&mut dev, &[Command::SetQuantZp { quant: q, zero_point: -100 }]), vec![-90, -100]);
    // LOAD_QUANT keeps ReLU and Z: column 0 x 3 (30 - 100), column 1 x 1/2 (-5 -> ReLU -> Z)
    assert_eq!(act(&mut dev, &[Command::LoadQuant { scales: vec![c(3, 0), c(1, 1)] }]), vec![-70, -100]);
    assert_eq!(dev.scales(), &[c(3, 0), c(1, 1)]);
    assert_eq!(dev.zero_point(), -100);
    // the 1-word SET_QUANT resets every column and Z = 0
    assert_eq!(act(&mut dev, &[Command::SetQuant(q.with_relu(false))]), vec![10, -10]);
    assert_eq!((dev.scales(), dev.zero_point()), (&[c(1, 0), c(1, 0)][..], 0));
}

/// LOAD_TILE: scratchpad rows src .. src + DIM become the shadow tile (row k = W[k][..]), the
/// next MATMUL swaps it in like a streamed tile; the rows must fit.
#[test]
fn load_tile_takes_the_shadow_tile_from_scratchpad_rows() {
    let cfg = Config::new(2, 8, 4).unwrap();
    let mut dev = GoldenDevice::new(cfg);
    let got = run(
        &mut dev,
        &[
            // X = [1 2] in row 0; W = [[3 4] [5 6]] stored in rows 6, 7
            Command::WriteAct { dst: 0, rows: vec![vec![1, 2]] },
            Command::WriteAct { dst: 6, rows: vec![vec![3, 4], vec![5, 6]] },
            Command::LoadTile { src: 6 },
            Command::Matmul { src: 0, n: 1, dst: 0, accumulate: false },
            Command::ReadAcc { src: 0, n: 1 },
            Command::LoadTile { src: 7 },
        ],
    );
    // [1 2] x [[3 4] [5 6]] = [13 16]; rows 7, 8 do not fit 8 rows
    assert_eq!(
        got,
        vec![
            Response::ReadAcc { rows: vec![vec![13, 16]] },
            Response::Error(CommandError { opcode: 0x14, code: ErrorCode::OutOfRange })
        ]
    );
    assert_eq!(dev.active_weights(), &[3, 4, 5, 6]);
}
