//! The accuracy guard on a model with one layer planted to be sensitive: a 1x1 conv whose
//! input range is set by one channel 1000x larger than the others, while its weights read
//! only the small channels. INT8 of that input leaves the small channels a few levels; the
//! guard must rank that conv first and keep it (and only it) in f32.

use trtc_ir::tensor::random_uniform;
use trtc_ir::{ConvAttrs, Graph, GraphBuilder, Op, Tensor};
use trtc_quant::{
    calibrate, guard, guard_with, insert_qdq, Calibrator, QdqOptions, QuantError, Tolerance,
};

fn one_by_one() -> ConvAttrs {
    ConvAttrs {
        kernel_shape: vec![1, 1],
        group: 1,
        ..Default::default()
    }
}

/// x[1,4,6,6] -> a = conv1x1 (out channel 0 scaled 1000x) -> relu -> s = conv1x1 (reads
/// channels 1..4 only) -> y.
fn planted() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 4, 6, 6]);
    let mut wa: Vec<f32> = random_uniform(&[4, 4, 1, 1], 1)
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.abs() + 0.1)
        .collect();
    for v in &mut wa[..4] {
        *v *= 1000.0;
    }
    let wa = b.constant("wa", Tensor::from_shape(&[4, 4, 1, 1], &wa).unwrap());
    let a = b.op("benign", Op::Conv(one_by_one()), &[x, wa]);
    let r = b.op("relu", Op::Relu, &[a]);
    let mut ws: Vec<f32> = random_uniform(&[3, 4, 1, 1], 2)
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect();
    for o in 0..3 {
        ws[o * 4] = 0.0; // channel 0 (the large one) is not read
    }
    let ws = b.constant("ws", Tensor::from_shape(&[3, 4, 1, 1], &ws).unwrap());
    let y = b.op("sensitive", Op::Conv(one_by_one()), &[r, ws]);
    b.output(y);
    b.build().unwrap()
}

fn samples(n: u64) -> Vec<Vec<Tensor>> {
    (0..n)
        .map(|i| {
            let t = random_uniform(&[1, 4, 6, 6], 100 + i);
            let v: Vec<f32> = t
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.abs())
                .collect();
            vec![Tensor::from_shape(&[1, 4, 6, 6], &v).unwrap()]
        })
        .collect()
}

#[test]
fn the_planted_layer_is_ranked_first_and_kept_in_f32() {
    let g = planted();
    let table = calibrate(&g, samples(6), Calibrator::MinMax, |_, _| {}).unwrap();
    let held_out = samples(10)[6..].to_vec();
    let (q, qdq, report) =
        guard(&g, &table, &held_out, Tolerance::RelErr(0.02), |_, _| {}).unwrap();
    assert_eq!(qdq.weights, 1, "only the benign conv's weights are INT8");
    assert_eq!(
        report.sensitivity[0].layer, "sensitive",
        "{:?}",
        report.sensitivity
    );
    assert!(
        report.sensitivity[0].rel_err > 10.0 * report.sensitivity[1].rel_err,
        "{:?}",
        report.sensitivity
    );
    assert!(
        report.before > 0.02,
        "fully quantized it misses: {}",
        report.before
    );
    assert_eq!(report.demoted, vec!["sensitive".to_string()]);
    assert!(report.met && report.after <= 0.02, "{report:?}");
    // The model returned keeps the other layer quantized: it is not the f32 model.
    let (full, _) = insert_qdq(&g, &table).unwrap();
    assert!(q.node_ids().len() < full.node_ids().len());
    assert!(q.node_ids().len() > g.node_ids().len());
}

#[test]
fn the_guard_measures_the_model_the_gpu_computes_when_asked() {
    // With `QdqOptions::gpu_simulated` the model measured has per-tensor weights for the
    // dense convs: the benign conv's 1000x channel then crushes its other channels' weights,
    // so that conv alone costs far more than with per-channel weights, and the guard keeps
    // it in float too; what it returns holds, and its remaining weights are per tensor.
    let g = planted();
    let table = calibrate(&g, samples(6), Calibrator::MinMax, |_, _| {}).unwrap();
    let held_out = samples(10)[6..].to_vec();
    let tol = Tolerance::RelErr(0.02);
    let opts = QdqOptions::gpu_simulated(Default::default());
    let (q, _, gpu) = guard_with(&g, &table, &held_out, tol, &opts, |_, _| {}).unwrap();
    let (_, _, per_channel) = guard(&g, &table, &held_out, tol, |_, _| {}).unwrap();
    let benign = |r: &trtc_quant::GuardReport| {
        r.sensitivity
            .iter()
            .find(|l| l.layer == "benign")
            .map(|l| l.rel_err)
            .unwrap()
    };
    assert!(
        benign(&gpu) > 10.0 * benign(&per_channel),
        "{gpu:?} {per_channel:?}"
    );
    assert!(gpu.demoted.contains(&"benign".to_string()), "{gpu:?}");
    assert!(gpu.met && gpu.after <= 0.02, "{gpu:?}");
    for id in q.node_ids() {
        let n = q.node(id);
        let is_dq = matches!(&n.op, Op::Other(o) if o.op_type == "DequantizeLinear");
        if is_dq && q.input_const(id, 0).is_some() {
            assert_eq!(q.input_const(id, 1).unwrap().len(), 1, "{}", n.name);
        }
    }
}

#[test]
fn a_tolerance_met_at_once_demotes_nothing() {
    let g = planted();
    let table = calibrate(&g, samples(6), Calibrator::MinMax, |_, _| {}).unwrap();
    let (_, _, report) = guard(
        &g,
        &table,
        &samples(8)[6..],
        Tolerance::RelErr(10.0),
        |_, _| {},
    )
    .unwrap();
    assert!(report.demoted.is_empty() && report.met, "{report:?}");
}

#[test]
fn tolerances_parse_and_bad_ones_and_no_samples_are_errors() {
    assert_eq!(
        "top1:0.99".parse::<Tolerance>().unwrap(),
        Tolerance::Top1(0.99)
    );
    assert_eq!(
        "rel:0.05".parse::<Tolerance>().unwrap(),
        Tolerance::RelErr(0.05)
    );
    for bad in ["top1:1.5", "rel:-1", "top1", "abs:0.1", "rel:x"] {
        assert!(bad.parse::<Tolerance>().is_err(), "{bad}");
    }
    let g = planted();
    let table = calibrate(&g, samples(2), Calibrator::MinMax, |_, _| {}).unwrap();
    let e = guard(&g, &table, &[], Tolerance::Top1(0.9), |_, _| {}).unwrap_err();
    assert!(matches!(e, QuantError::Guard(_)), "{e}");
}
