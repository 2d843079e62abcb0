//! Each typed call does what its command does: checked against the golden device's state and
//! the arithmetic in `spec::arith`.

use driver::{Device, GoldenTransport, Info, Recorder};
use spec::arith::{dot, requantize};
use spec::isa::Command;
use spec::{Config, Quant};

fn open(cfg: Config) -> Device<GoldenTransport> {
    Device::open(GoldenTransport::new(cfg), &cfg).unwrap()
}

#[test]
fn info_and_sync() {
    let cfg = Config::new(5, 16, 8).unwrap();
    let mut dev = open(cfg);
    assert_eq!(dev.info().unwrap(), Info::of(&cfg));
    assert_eq!(dev.info().unwrap().to_string(), "version 3, DIM 5, 16 scratchpad rows, 8 accumulator rows");
    dev.sync().unwrap();
    // each SYNC carries a new token
    let mut rec = Device::open(Recorder::new(GoldenTransport::new(cfg)), &cfg).unwrap();
    rec.sync().unwrap();
    rec.sync().unwrap();
    let sent = &rec.transport().sent;
    assert_ne!(sent[sent.len() - 1], sent[sent.len() - 3]);
}

#[test]
fn write_then_read_activations() {
    let cfg = Config::new(5, 16, 8).unwrap();
    let mut dev = open(cfg);
    let rows = vec![vec![1, -2, 3, -4, 127], vec![-128, 0, 9, 8, 7], vec![5; 5]];
    dev.write_act(13, &rows).unwrap();
    assert_eq!(dev.read_act(13, 3).unwrap(), rows);
    assert_eq!(dev.read_act(14, 1).unwrap(), vec![rows[1].clone()]);
    assert_eq!(dev.transport().device().scratch_row(15), &rows[2][..]);
    assert_eq!(dev.read_act(0, 0).unwrap(), Vec::<Vec<i8>>::new());
}

#[test]
fn matmul_overwrites_then_accumulates() {
    let cfg = Config::new(3, 8, 8).unwrap();
    let mut dev = open(cfg);
    let w: Vec<i8> = vec![1, 2, 3, -4, -5, -6, 7, 8, 127];
    let x = vec![vec![10, -20, 30], vec![-128, 127, 1]];
    dev.write_act(0, &x).unwrap();
    dev.load_weights(&w).unwrap();
    dev.matmul(0, 2, 4, false).unwrap();
    let col = |n: usize| (0..3).map(|k| w[k * 3 + n]).collect::<Vec<i8>>();
    let want: Vec<Vec<i32>> =
        x.iter().map(|r| (0..3).map(|n| dot(r.iter().copied(), col(n))).collect()).collect();
    assert_eq!(dev.read_acc(4, 2).unwrap(), want);
    // accumulate with the same tile (no new load): doubled
    dev.matmul(0, 2, 4, true).unwrap();
    let doubled: Vec<Vec<i32>> = want.iter().map(|r| r.iter().map(|v| 2 * v).collect()).collect();
    assert_eq!(dev.read_acc(4, 2).unwrap(), doubled);
    assert_eq!(dev.transport().device().active_weights(), &w[..]);
}

#[test]
fn activate_applies_bias_and_quant() {
    let cfg = Config::new(2, 8, 8).unwrap();
    let mut dev = open(cfg);
    dev.write_act(0, &[vec![100, -50], vec![3, 4]]).unwrap();
    dev.load_weights(&[2, 0, 0, 3]).unwrap();
    dev.matmul(0, 2, 0, false).unwrap();
    let q = Quant::new(3, 2, true).unwrap();
    dev.set_quant(q).unwrap();
    dev.load_bias(&[10, -400]).unwrap();
    dev.activate(0, 2, 6).unwrap();
    let acc = dev.read_acc(0, 2).unwrap();
    assert_eq!(acc, vec![vec![200, -150], vec![6, 12]]);
    let want: Vec<Vec<i8>> =
        acc.iter().map(|r| vec![requantize(r[0], 10, q), requantize(r[1], -400, q)]).collect();
    assert_eq!(want, vec![vec![127, 0], vec![12, 0]]);
    assert_eq!(dev.read_act(6, 2).unwrap(), want);
    assert_eq!(dev.transport().device().quant(), q);
    assert_eq!(dev.transport().device().bias(), &[10, -400]);
}

#[test]
fn counters_count_commands_and_macs() {
    let cfg = Config::new(4, 8, 8).unwrap();
    let mut dev = open(cfg); // INFO is command 1
    dev.write_act(0, &vec![vec![1; 4]; 3]).unwrap();
    dev.matmul(0, 3, 0, false).unwrap();
    dev.execute(&Command::Matmul { src: 7, n: 2, dst: 0, accumulate: false }).unwrap(); // refused
    assert!(dev.sync().is_err()); // the refusal arrives ahead of the SYNC answer
    assert_eq!(dev.resync().unwrap(), 2); // which resync discards
    let c = dev.counters().unwrap();
    // INFO, WRITE_ACT, MATMUL, the refused MATMUL, SYNC, resync's two SYNCs and INFO
    assert_eq!(c.commands, 8);
    assert_eq!(c.errors, 1);
    assert_eq!(c.macs, 3 * 16);
}
