//! Encoding properties: round trips, and decoders that survive any word stream.

use proptest::prelude::*;
use spec::isa::{self, decode_responses, header, opcode, Command, CommandDecoder, Response};
use spec::{ColumnScale, CommandError, Config, Counters, ErrorCode, Quant, ResponseDecoder};

fn cfg(dim: usize) -> Config {
    Config::new(dim, 64, 32).unwrap()
}

fn command(dim: usize) -> impl Strategy<Value = Command> {
    let row = proptest::collection::vec(any::<i8>(), dim);
    prop_oneof![
        Just(Command::Info),
        Just(Command::Counters),
        any::<u32>().prop_map(|token| Command::Sync { token }),
        proptest::collection::vec(any::<i8>(), dim * dim)
            .prop_map(|weights| Command::LoadWeights { weights }),
        proptest::collection::vec(any::<i32>(), dim).prop_map(|bias| Command::LoadBias { bias }),
        (any::<u16>(), 0u8..=47, any::<bool>())
            .prop_map(|(m, s, r)| Command::SetQuant(Quant::new(m, s, r).unwrap())),
        (any::<u16>(), 0u8..=47, any::<bool>(), any::<i8>()).prop_map(|(m, s, r, zero_point)| {
            Command::SetQuantZp { quant: Quant::new(m, s, r).unwrap(), zero_point }
        }),
        proptest::collection::vec((any::<u16>(), 0u8..=47), dim).prop_map(|v| Command::LoadQuant {
            scales: v.into_iter().map(|(m, s)| ColumnScale::new(m, s).unwrap()).collect()
        }),
        (0u16..64, proptest::collection::vec(row, 0..5))
            .prop_filter("fits", |(d, rows)| *d as usize + rows.len() <= 64)
            .prop_map(|(dst, rows)| Command::WriteAct { dst, rows }),
        (0u16..32, 0u16..32).prop_map(|(src, n)| Command::ReadAct { src, n }),
        (0u16..16, 0u16..16).prop_map(|(src, n)| Command::ReadAcc { src, n }),
        (0u16..16, 0u16..16, 0u16..16, any::<bool>()).prop_map(|(src, n, dst, accumulate)| Command::Matmul {
            src,
            n,
            dst,
            accumulate
        }),
        (0u16..16, 0u16..16, 0u16..16).prop_map(|(src, n, dst)| Command::Activate { src, n, dst }),
        (0u16..(64 - dim as u16)).prop_map(|src| Command::LoadTile { src }),
    ]
}

fn response(dim: usize) -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(version, dim, scratch_rows, acc_rows)| Response::Info { version, dim, scratch_rows, acc_rows }
        ),
        any::<u32>().prop_map(|token| Response::Sync { token }),
        proptest::collection::vec(proptest::collection::vec(any::<i8>(), dim), 0..4)
            .prop_map(|rows| Response::ReadAct { rows }),
        proptest::collection::vec(proptest::collection::vec(any::<i32>(), dim), 0..4)
            .prop_map(|rows| Response::ReadAcc { rows }),
        (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(
                |(cycles, macs, array_busy_cycles, in_stall_cycles, out_stall_cycles, commands, errors)| {
                    Response::Counters(Counters {
                        cycles,
                        macs,
                        array_busy_cycles,
                        in_stall_cycles,
                        out_stall_cycles,
                        commands,
                        errors,
                    })
                }
            ),
        (any::<u8>(), 1u8..=3).prop_map(|(opcode, c)| Response::Error(CommandError {
            opcode,
            code: ErrorCode::from_u8(c).unwrap()
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn commands_round_trip((dim, cmds) in (1usize..=9).prop_flat_map(|d| (Just(d), proptest::collection::vec(command(d), 0..12)))) {
        let mut words = Vec::new();
        for c in &cmds {
            let before = words.len();
            c.encode_into(dim, &mut words).unwrap();
            prop_assert_eq!(words.len() - before, 1 + c.payload_len(dim));
        }
        let mut dec = CommandDecoder::new(cfg(dim));
        let decoded: Vec<_> = words.iter().filter_map(|&w| dec.push(w)).collect();
        prop_assert!(dec.is_idle());
        prop_assert_eq!(decoded, cmds.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn responses_round_trip((dim, rs) in (1usize..=9).prop_flat_map(|d| (Just(d), proptest::collection::vec(response(d), 0..12)))) {
        let mut words = Vec::new();
        for r in &rs {
            r.encode_into(dim, &mut words);
        }
        prop_assert_eq!(decode_responses(dim, &words).unwrap(), rs);
    }

    /// Arbitrary words: the command decoder never panics, and every header it reads is
    /// answered exactly once (a command or an error) by the time its payload has been consumed.
    #[test]
    fn command_decoder_survives_garbage(dim in 1usize..=9, words in proptest::collection::vec(
        prop_oneof![any::<u32>(), (any::<u8>(), 0u32..6).prop_map(|(o, l)| header(o, l)),
                    (proptest::sample::select(opcode::ALL.to_vec()), 0u32..20).prop_map(|(o, l)| header(o, l))], 0..300)) {
        let mut dec = CommandDecoder::new(cfg(dim));
        for w in words {
            if let Some(Err(e)) = dec.push(w) {
                prop_assert!(e.code as u8 >= 1 && e.code as u8 <= 3);
            }
        }
    }

    #[test]
    fn response_decoder_survives_garbage(dim in 1usize..=9, words in proptest::collection::vec(
        prop_oneof![any::<u32>(), (any::<u8>(), 0u32..10).prop_map(|(o, l)| header(o, l))], 0..300)) {
        let mut dec = ResponseDecoder::new(dim);
        for w in words {
            let _ = dec.push(w);
        }
    }
}

#[test]
fn a_huge_length_does_not_allocate_ahead() {
    // a header announcing 16M words of an unknown opcode is skipped word by word
    let mut dec = CommandDecoder::new(cfg(4));
    assert_eq!(dec.push(header(0x77, isa::MAX_LEN)), None);
    assert!(!dec.is_idle());
    let mut dec = CommandDecoder::new(cfg(4));
    // WRITE_ACT claiming 65535 rows: valid length, collected as words arrive
    assert_eq!(dec.push(header(opcode::WRITE_ACT, 1 + 65535)), None);
    assert_eq!(dec.push(0xFFFF_0000), None);
}

#[test]
fn packing_is_little_endian_four_per_word() {
    let words = Command::WriteAct { dst: 3, rows: vec![vec![1, -1, 2, -128, 5]] }.encode(5).unwrap();
    assert_eq!(words, vec![0x2000_0003, 0x0001_0003, 0x80_02_FF_01, 0x0000_0005]);
    let words = Command::Matmul { src: 2, n: 7, dst: 9, accumulate: true }.encode(8).unwrap();
    assert_eq!(words, vec![0x3000_0002, 0x0007_0002, 0x0001_0009]);
    assert_eq!(
        Command::SetQuant(Quant::new(0x1234, 47, true).unwrap()).encode(1).unwrap(),
        vec![0x1200_0001, 0x012F_1234]
    );
    // contract v2: Z in bits 7:0 of the second SET_QUANT word; LOAD_QUANT one word per column
    assert_eq!(
        Command::SetQuantZp { quant: Quant::new(0x1234, 47, true).unwrap(), zero_point: -128 }
            .encode(1)
            .unwrap(),
        vec![0x1200_0002, 0x012F_1234, 0x80]
    );
    let scales = vec![ColumnScale::new(0xBEEF, 3).unwrap(), ColumnScale::new(1, 47).unwrap()];
    assert_eq!(Command::LoadQuant { scales }.encode(2).unwrap(), vec![0x1300_0002, 0x0003_BEEF, 0x002F_0001]);
    // resident weights: one word, the first scratchpad row of the tile
    assert_eq!(Command::LoadTile { src: 0x1234 }.encode(8).unwrap(), vec![0x1400_0001, 0x1234]);
    let e = Response::Error(CommandError { opcode: 0x30, code: ErrorCode::OutOfRange }).encode(4);
    assert_eq!(e, vec![0xFF00_0001, 0x0000_3003]);
}

#[test]
fn decoder_error_rules() {
    let c = Config::new(4, 16, 8).unwrap();
    let run = |words: &[u32]| {
        let mut dec = CommandDecoder::new(c);
        let out: Vec<_> = words.iter().filter_map(|&w| dec.push(w)).collect();
        assert!(dec.is_idle(), "decoder must end between commands");
        out
    };
    let err = |opcode, code| Err(CommandError { opcode, code });
    // unknown opcode with payload: the payload is consumed, then the next command parses
    assert_eq!(
        run(&[header(0x55, 2), 1, 2, header(opcode::INFO, 0)]),
        vec![err(0x55, ErrorCode::UnknownOpcode), Ok(Command::Info)]
    );
    // bad length on a fixed-size command
    assert_eq!(run(&[header(opcode::SYNC, 2), 1, 2]), vec![err(opcode::SYNC, ErrorCode::BadLength)]);
    assert_eq!(run(&[header(opcode::SYNC, 0)]), vec![err(opcode::SYNC, ErrorCode::BadLength)]);
    assert_eq!(run(&[header(opcode::WRITE_ACT, 0)]), vec![err(opcode::WRITE_ACT, ErrorCode::BadLength)]);
    // WRITE_ACT says n = 2 rows (3 words with DIM 4) but the header says 2 words
    assert_eq!(
        run(&[header(opcode::WRITE_ACT, 2), 0x0002_0000, 7]),
        vec![err(opcode::WRITE_ACT, ErrorCode::BadLength)]
    );
    // rows out of range: start + n > ROWS, no wrap of 16-bit arithmetic
    assert_eq!(
        run(&[header(opcode::READ_ACT, 1), 0x0001_000F]),
        vec![Ok(Command::ReadAct { src: 15, n: 1 })]
    );
    assert_eq!(
        run(&[header(opcode::READ_ACT, 1), 0x0002_000F]),
        vec![err(opcode::READ_ACT, ErrorCode::OutOfRange)]
    );
    assert_eq!(
        run(&[header(opcode::READ_ACC, 1), 0xFFFF_FFFF]),
        vec![err(opcode::READ_ACC, ErrorCode::OutOfRange)]
    );
    assert_eq!(
        run(&[header(opcode::MATMUL, 2), 0x0001_0000, 8]),
        vec![err(opcode::MATMUL, ErrorCode::OutOfRange)]
    );
    assert_eq!(
        run(&[header(opcode::ACTIVATE, 2), 0x0001_0007, 16]),
        vec![err(opcode::ACTIVATE, ErrorCode::OutOfRange)]
    );
    assert_eq!(
        run(&[header(opcode::SET_QUANT, 1), 48 << 16]),
        vec![err(opcode::SET_QUANT, ErrorCode::OutOfRange)]
    );
    // contract v2: SET_QUANT takes 1 or 2 words; anything else is a bad length
    let q = Quant::new(5, 3, true).unwrap();
    assert_eq!(
        run(&[header(opcode::SET_QUANT, 2), q.to_word(), 0xFFFF_FF85]),
        vec![Ok(Command::SetQuantZp { quant: q, zero_point: -123 })]
    );
    assert_eq!(run(&[header(opcode::SET_QUANT, 0)]), vec![err(opcode::SET_QUANT, ErrorCode::BadLength)]);
    assert_eq!(
        run(&[header(opcode::SET_QUANT, 3), q.to_word(), 0, 0]),
        vec![err(opcode::SET_QUANT, ErrorCode::BadLength)]
    );
    // a bad shift in the 2-word form: both words consumed, then out of range
    assert_eq!(
        run(&[header(opcode::SET_QUANT, 2), 63 << 16, 0, header(opcode::INFO, 0)]),
        vec![err(opcode::SET_QUANT, ErrorCode::OutOfRange), Ok(Command::Info)]
    );
    // LOAD_QUANT: DIM words; one shift > 47 in any column refuses the command (code 3), a wrong
    // length is code 2 whatever the shifts
    let good = [0x0001_0002, 0x002F_FFFF, 0xFFC0_0000, 7];
    assert_eq!(
        run(&[&[header(opcode::LOAD_QUANT, 4)][..], &good].concat()),
        vec![Ok(Command::LoadQuant {
            scales: vec![
                ColumnScale::new(2, 1).unwrap(),
                ColumnScale::new(0xFFFF, 47).unwrap(),
                ColumnScale::new(0, 0).unwrap(),
                ColumnScale::new(7, 0).unwrap(),
            ]
        })]
    );
    for col in 0..4 {
        let mut p = good;
        p[col] = 48 << 16;
        assert_eq!(
            run(&[&[header(opcode::LOAD_QUANT, 4)][..], &p].concat()),
            vec![err(opcode::LOAD_QUANT, ErrorCode::OutOfRange)]
        );
    }
    assert_eq!(
        run(&[header(opcode::LOAD_QUANT, 3), 48 << 16, 0, 0]),
        vec![err(opcode::LOAD_QUANT, ErrorCode::BadLength)]
    );
    // n = 0 at the very end of a memory is fine
    assert_eq!(run(&[header(opcode::READ_ACT, 1), 16]), vec![Ok(Command::ReadAct { src: 16, n: 0 })]);
    // a response opcode sent as a command is unknown
    assert_eq!(run(&[header(0x81, 0)]), vec![err(0x81, ErrorCode::UnknownOpcode)]);
}

#[test]
fn encode_errors_are_clear() {
    let e = Command::LoadWeights { weights: vec![0; 3] }.encode(2).unwrap_err();
    assert_eq!(e.to_string(), "LOAD_WEIGHTS: expected 4 elements for DIM 2, got 3");
    let e = Command::WriteAct { dst: 0, rows: vec![vec![0; 3]] }.encode(2).unwrap_err();
    assert_eq!(e.to_string(), "WRITE_ACT row: expected 2 elements for DIM 2, got 3");
    assert_eq!(
        decode_responses(2, &[header(0x82, 1)]).unwrap_err().to_string(),
        "the stream ends inside a response"
    );
}
