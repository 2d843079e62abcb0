//! The LANES framing (`spec::lanes`): hand-checked beats, the identity at LANES = 1, exact round
//! trips of random streams (valid and malformed commands) at every LANES, and an unframer that
//! survives any beats.

use spec::isa::{header, opcode, Command, RESPONSE_BIT};
use spec::lanes::{command_beats, command_layout, frame, unframe, Framer, Lanes, Layout, Stream, Unframer};
use spec::stimulus::{random_stream, Rng, StreamShape};
use spec::{Config, GoldenDevice};

fn cfg(dim: usize) -> Config {
    Config::new(dim, 64, 32).unwrap()
}

fn lanes(n: usize) -> Lanes {
    Lanes::new(n).unwrap()
}

const ALL_LANES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

#[test]
fn lanes_are_powers_of_two_up_to_64() {
    for n in ALL_LANES {
        assert_eq!(lanes(n).get(), n);
    }
    for n in [0, 3, 6, 128, usize::MAX] {
        let e = Lanes::new(n).unwrap_err();
        assert_eq!(e.to_string(), format!("LANES must be a power of two in 1..=64, got {n}"));
    }
}

/// The module docs' picture: WRITE_ACT of 2 rows at DIM 16 (4 words a row) and DIM 8 (2).
#[test]
fn write_act_rows_start_a_beat_each() {
    let rows = |d: usize| (0..2).map(|r| (0..d).map(|i| (16 * r + i) as i8).collect()).collect::<Vec<_>>();
    let w16 = Command::WriteAct { dst: 5, rows: rows(16) }.encode(16).unwrap();
    assert_eq!(w16.len(), 1 + 1 + 8);
    let b = frame(&w16, Stream::Commands, &cfg(16), lanes(4));
    #[rustfmt::skip]
    let want = [
        w16[0], 0, 0, 0,
        w16[1], 0, 0, 0,
        w16[2], w16[3], w16[4], w16[5],
        w16[6], w16[7], w16[8], w16[9],
    ];
    assert_eq!(b, want);
    assert_eq!(command_beats(&w16, &cfg(16), lanes(4)), 4);

    let w8 = Command::WriteAct { dst: 5, rows: rows(8) }.encode(8).unwrap();
    let b = frame(&w8, Stream::Commands, &cfg(8), lanes(4));
    #[rustfmt::skip]
    let want = [
        w8[0], 0, 0, 0,
        w8[1], 0, 0, 0,
        w8[2], w8[3], 0, 0,
        w8[4], w8[5], 0, 0,
    ];
    assert_eq!(b, want);
    // at LANES 2 a DIM 8 row is one full beat
    let b = frame(&w8, Stream::Commands, &cfg(8), lanes(2));
    assert_eq!(b, [w8[0], 0, w8[1], 0, w8[2], w8[3], w8[4], w8[5]]);
}

/// Argument words share one beat; LOAD_BIAS is one unit of DIM words; a rejected header's
/// payload and a WRITE_ACT whose length does not match its rows go dense.
#[test]
fn units_by_hand() {
    let c = cfg(4);
    let mm = Command::Matmul { src: 1, n: 2, dst: 3, accumulate: true }.encode(4).unwrap();
    assert_eq!(frame(&mm, Stream::Commands, &c, lanes(2)), [mm[0], 0, mm[1], mm[2]]);
    assert_eq!(frame(&mm, Stream::Commands, &c, lanes(4)), [mm[0], 0, 0, 0, mm[1], mm[2], 0, 0]);
    let bias = Command::LoadBias { bias: vec![1, 2, 3, 4] }.encode(4).unwrap();
    assert_eq!(frame(&bias, Stream::Commands, &c, lanes(2)), [bias[0], 0, 1, 2, 3, 4]);
    assert_eq!(frame(&bias, Stream::Commands, &c, lanes(8)).len(), 16);

    // an unknown opcode with 5 payload words: dense, 2 beats at LANES 4
    let junk = [header(0x77, 5), 1, 2, 3, 4, 5];
    assert_eq!(frame(&junk, Stream::Commands, &c, lanes(4)), [junk[0], 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0]);
    // WRITE_ACT announcing 2 rows (1 + 2 words at DIM 4) in a length of 4: argument, then dense
    let bad = [header(opcode::WRITE_ACT, 4), 2 << 16, 7, 8, 9];
    assert_eq!(
        command_layout(opcode::WRITE_ACT, 4, 2 << 16, &c),
        Layout { args: 1, dense: 3, ..Layout::default() }
    );
    assert_eq!(frame(&bad, Stream::Commands, &c, lanes(2)), [bad[0], 0, 2 << 16, 0, 7, 8, 9, 0]);
    // ... which the golden device consumes whole and answers with an error, then runs on
    let mut beats = frame(&bad, Stream::Commands, &c, lanes(2));
    beats.extend(frame(&Command::Sync { token: 9 }.encode(4).unwrap(), Stream::Commands, &c, lanes(2)));
    let out = GoldenDevice::run_lanes(c, lanes(2), &beats);
    assert_eq!(out, [header(0xFF, 1), 0, 2 | u32::from(opcode::WRITE_ACT) << 8, 0, header(0x82, 1), 0, 9, 0]);
}

/// Responses: READ_ACC rows of DIM words, READ_ACT rows of ⌈DIM/4⌉, INFO one unit.
#[test]
fn response_units_by_hand() {
    let c = Config::new(2, 16, 8).unwrap();
    let mut beats = Vec::new();
    for cmd in [
        Command::Info,
        Command::WriteAct { dst: 0, rows: vec![vec![1, 2], vec![3, -4]] },
        Command::ReadAct { src: 0, n: 2 },
        Command::ReadAcc { src: 0, n: 1 },
    ] {
        beats.extend(frame(&cmd.encode(2).unwrap(), Stream::Commands, &c, lanes(4)));
    }
    let out = GoldenDevice::run_lanes(c, lanes(4), &beats);
    #[rustfmt::skip]
    let want = [
        header(0x81, 4), 0, 0, 0,
        spec::VERSION, 2, 16, 8,
        header(opcode::READ_ACT | RESPONSE_BIT, 2), 0, 0, 0,
        0x0201, 0, 0, 0,
        0xFC03, 0, 0, 0,
        header(opcode::READ_ACC | RESPONSE_BIT, 2), 0, 0, 0,
        0, 0, 0, 0,
    ];
    assert_eq!(out, want);
    assert_eq!(
        unframe(&out, Stream::Responses, &c, lanes(4)),
        GoldenDevice::run(c, &unframe(&beats, Stream::Commands, &c, lanes(4)))
    );
}

/// At LANES 1 every word is a beat: framing and unframing change nothing, for random streams
/// with malformed commands and for pure garbage.
#[test]
fn one_lane_is_the_identity() {
    let mut rng = Rng::new(0x1a);
    for case in 0..200 {
        let c = cfg(1 + rng.below(20) as usize);
        let words: Vec<u32> = if case % 4 == 0 {
            (0..rng.below(60)).map(|_| rng.next_u64() as u32).collect()
        } else {
            random_stream(&c, &mut rng, StreamShape::default())
        };
        for stream in [Stream::Commands, Stream::Responses] {
            assert_eq!(frame(&words, stream, &c, Lanes::ONE), words, "case {case}");
            assert_eq!(unframe(&words, stream, &c, Lanes::ONE), words, "case {case}");
        }
    }
}

/// Random streams (valid commands, GEMM blocks, malformed commands) at DIM 1..=20 and every
/// LANES: unframing the beats gives the words back exactly; every command starts a beat and
/// takes `command_beats`; the golden device answers the beats with the framed answer to the
/// words.
#[test]
fn random_streams_round_trip_at_every_lanes() {
    let mut rng = Rng::new(0x1a2e5);
    for case in 0..300 {
        let c = cfg(1 + rng.below(20) as usize);
        let words = random_stream(&c, &mut rng, StreamShape { commands: 12, max_rows: 5, malformed: 0.25 });
        let l = lanes(ALL_LANES[case % ALL_LANES.len()]);
        let beats = frame(&words, Stream::Commands, &c, l);
        assert_eq!(beats.len() % l.get(), 0);
        assert_eq!(unframe(&beats, Stream::Commands, &c, l), words, "case {case} on {c}, LANES {l}");
        let mut at = 0;
        let mut counted = 0;
        while at < words.len() {
            let len = (words[at] & 0xFF_FFFF) as usize;
            counted += command_beats(&words[at..], &c, l);
            at += 1 + len;
        }
        assert_eq!(counted * l.get() as u64, beats.len() as u64, "case {case}");
        let answer = GoldenDevice::run(c, &words);
        assert_eq!(GoldenDevice::run_lanes(c, l, &beats), frame(&answer, Stream::Responses, &c, l));
        assert_eq!(unframe(&frame(&answer, Stream::Responses, &c, l), Stream::Responses, &c, l), answer);
    }
}

/// Any beats: the unframer never panics, and framing what it took gives back the same number
/// of beats, equal to the input except where the input's padding was not zero.
#[test]
fn the_unframer_survives_any_beats() {
    let mut rng = Rng::new(0xbea7);
    for case in 0..400 {
        let c = cfg(1 + rng.below(12) as usize);
        let l = lanes(ALL_LANES[rng.below(5) as usize]);
        let n = l.get() * rng.below(40) as usize;
        let beats: Vec<u32> = (0..n)
            .map(|_| match rng.below(4) {
                // mostly plausible headers with short lengths, so that payloads end
                0 => header(spec::isa::opcode::ALL[rng.below(13) as usize], rng.below(12) as u32),
                1 => header(rng.next_u64() as u8, rng.below(9) as u32),
                _ => rng.next_u64() as u32,
            })
            .collect();
        for stream in [Stream::Commands, Stream::Responses] {
            let mut u = Unframer::new(stream, c, l);
            let mut words = Vec::new();
            for b in beats.chunks(l.get()) {
                u.push(b, &mut words);
            }
            let again = frame(&words, stream, &c, l);
            assert_eq!(again.len(), beats.len(), "case {case}");
            for (i, (&a, &b)) in again.iter().zip(&beats).enumerate() {
                assert!(a == b || a == 0, "case {case}: word {i} is {a:#x}, the beat had {b:#x}");
            }
        }
    }
}

/// The streaming framer, fed a stream cut at random points, gives exactly `frame` of the
/// whole messages it has seen, and holds back the incomplete one.
#[test]
fn the_framer_streams_what_frame_gives_whole() {
    let mut rng = Rng::new(0xf4a3e);
    for case in 0..200 {
        let c = cfg(1 + rng.below(20) as usize);
        let words = random_stream(&c, &mut rng, StreamShape { commands: 10, max_rows: 4, malformed: 0.25 });
        let l = lanes(ALL_LANES[case % ALL_LANES.len()]);
        for stream in [Stream::Commands, Stream::Responses] {
            let mut f = Framer::new(stream, c, l);
            let mut beats = Vec::new();
            let mut at = 0;
            while at < words.len() {
                let n = (1 + rng.below(9) as usize).min(words.len() - at);
                f.push(&words[at..at + n], &mut beats);
                at += n;
                // what is out is whole beats of whole messages, a prefix of the framed stream
                let whole = &words[..at - f.held()];
                assert_eq!(beats, frame(whole, stream, &c, l), "case {case} at word {at}");
            }
            assert_eq!(f.held(), 0, "case {case}: the stream ends on a whole message");
        }
    }
    // a message cut short is held, not padded out
    let c = cfg(8);
    let mut f = Framer::new(Stream::Commands, c, lanes(4));
    let mut beats = Vec::new();
    f.push(&[header(opcode::MATMUL, 2), 0x0004_0000], &mut beats);
    assert!(beats.is_empty());
    assert_eq!(f.held(), 2);
    f.push(&[0x0000_0010], &mut beats);
    assert_eq!(beats, [header(opcode::MATMUL, 2), 0, 0, 0, 0x0004_0000, 0x10, 0, 0]);
    f.push(&[header(opcode::INFO, 0)], &mut beats);
    assert_eq!(beats.len(), 12);
}
