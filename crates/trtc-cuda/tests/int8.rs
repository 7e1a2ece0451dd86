//! INT8 on the GPU against tract running the same explicitly quantized (QDQ) graph: convs
//! between a DequantizeLinear and a QuantizeLinear run as cuDNN INT8 convolutions in fp16
//! NHWC engines, and Q/DQ steps run alone elsewhere (fp32 engines simulate INT8 in f32).
//! Run on a GPU machine: `cargo test -p trtc-cuda --test gpu int8:: -- --ignored`.

use crate::common::*;
use trtc_cuda::testing::{on_input_grid, qdq_conv_graph};

/// The INT8 layers (`conv_int8` in the profile) of `model` on `inputs`, with their tactics.
fn int8_tactics(model: &HybridModel, inputs: &[trtc_ir::Tensor]) -> Vec<(String, String)> {
    model
        .profile(inputs.to_vec())
        .unwrap()
        .into_iter()
        .filter(|(_, t)| t.kind == "conv_int8")
        .map(|(_, t)| (t.layer, t.tactic))
        .collect()
}

/// The INT8 layers of `model` on `inputs`.
fn int8_layers(model: &HybridModel, inputs: &[trtc_ir::Tensor]) -> Vec<String> {
    int8_tactics(model, inputs)
        .into_iter()
        .map(|(layer, _)| layer)
        .collect()
}

/// `g` built as an fp16 engine with `TRTC_INT8_CONV` set to `forced` (left unset for
/// `None`) while it runs `inputs` `runs` times: the outputs, and the INT8 layers' tactics.
fn run_with_int8_conv(
    g: &trtc_ir::Graph,
    forced: Option<&str>,
    inputs: &[trtc_ir::Tensor],
    runs: usize,
) -> (Vec<Vec<trtc_ir::Tensor>>, Vec<(String, String)>) {
    // The GPU tests run one at a time (--test-threads=1): no other test reads it meanwhile.
    if let Some(f) = forced {
        std::env::set_var("TRTC_INT8_CONV", f);
    }
    let model = gpu_model(g, &opts_for(Precision::Fp16, Layout::Auto));
    let outs = (0..runs)
        .map(|_| model.run(inputs.to_vec()).unwrap())
        .collect();
    let tactics = int8_tactics(&model, inputs);
    std::env::remove_var("TRTC_INT8_CONV");
    (outs, tactics)
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn quantized_convs_run_in_int8_and_match_tract() {
    let g = qdq_conv_graph(4, true);
    let inputs = vec![on_input_grid(&[4, 8, 10, 10], 21)];
    // One int8 step of a quantized tensor flipped by rounding moves the output by a
    // fraction of a percent; fp16 storage between the INT8 layers adds its own.
    // fp16 engines run a QDQ graph as it says (INT8 where a kernel takes it); `--precision
    // int8` engines also time an FP16 alternative (the test after this one).
    for (precision, layout, tolerance) in [
        (Precision::Fp16, Layout::Auto, 3e-2),
        (Precision::Fp32, Layout::Nchw, 1e-2),
        (Precision::Fp32, Layout::Nhwc, 1e-2),
    ] {
        let what = format!("{precision:?} {layout:?}");
        let (rel, model) = gpu_vs_tract_model(&g, inputs.clone(), &opts_for(precision, layout));
        println!("{what}: relative error {rel}");
        assert!(
            rel <= tolerance,
            "{what}: relative error {rel} over {tolerance}"
        );
        let int8 = int8_layers(&model, &inputs);
        let want: Vec<String> = if precision.is_half() {
            vec!["conv1".into(), "conv2".into()]
        } else {
            vec![]
        };
        assert_eq!(int8, want, "{what}");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn int8_engine_computes_the_quantized_model_not_the_float_one() {
    // The same convs and int8 weights without the activations' Q/DQ: the INT8 engine must
    // be much closer to the quantized graph than to this float one (an engine computing
    // in fp16 would be the other way round). The pointwise graph: its convs are INT8 but
    // the last, so no fp16 layer's rounding flips a quantized value (in `qdq_conv_graph`
    // the fp16 depthwise conv's do, about 1% of the output).
    use trtc_cuda::testing::qdq_pointwise_graph;
    let (g, float) = (
        qdq_pointwise_graph(2, 9, 7, true),
        qdq_pointwise_graph(2, 9, 7, false),
    );
    // On the input's int8 grid: the fp16 input quantizes as tract's f32 one does.
    let inputs = vec![on_input_grid(&[2, 64, 9, 7], 5)];
    // An fp16 engine runs the QDQ graph as it says (an INT8 one might time FP16 faster).
    let (rel, model) =
        gpu_vs_tract_model(&g, inputs.clone(), &opts_for(Precision::Fp16, Layout::Auto));
    let out = model.run(inputs.clone()).unwrap();
    let reference = CpuModel::new(&float).unwrap().run(inputs).unwrap();
    let (_, rel_float) = compare(&reference, &out).unwrap();
    println!("INT8 engine against the QDQ graph {rel}, against the float graph {rel_float}");
    assert!(
        rel_float > 10.0 * rel,
        "against the QDQ graph {rel}, against the float graph {rel_float}"
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn int8_precision_times_int8_against_fp16_and_runs_the_faster() {
    // `--precision int8`: INT8 is allowed, not required. Both engines are timed at the
    // batch size and the faster runs it; its output is the QDQ graph's (INT8) or the
    // float graph's (FP16, the Q/DQ dropped).
    let (g, float) = (qdq_conv_graph(64, true), qdq_conv_graph(64, false));
    let inputs = vec![random_tensor(&[64, 8, 10, 10], 9)];
    let opts = opts_for(Precision::Int8, Layout::Auto);
    let (_, model) = gpu_vs_tract_model(&g, inputs.clone(), &opts);
    let payload = model
        .payloads()
        .into_values()
        .next()
        .expect("an engine payload");
    assert_eq!(payload.kind, "cuda-int8-choice");
    let stored: serde_json::Value = serde_json::from_slice(&payload.bytes).unwrap();
    let choice = &stored["chosen"]["64"];
    let (int8, t8, t16) = (
        choice[0].as_bool().unwrap(),
        choice[1].as_f64().unwrap(),
        choice[2].as_f64().unwrap(),
    );
    println!("batch 64: INT8 {t8} ms, FP16 {t16} ms, INT8 chosen: {int8}");
    assert!(t8 > 0.0 && t16 > 0.0 && t8.is_finite() && t16.is_finite());
    assert_eq!(int8, t8 <= t16);
    let reference = CpuModel::new(if int8 { &g } else { &float })
        .unwrap()
        .run(inputs.clone())
        .unwrap();
    let (_, rel) = compare(&reference, &model.run(inputs).unwrap()).unwrap();
    assert!(
        rel <= 3e-2,
        "against the {} graph: {rel}",
        if int8 { "QDQ" } else { "float" }
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pointwise_int8_convs_match_tract_with_every_kernel() {
    // pw1..pw4 run in INT8: K = 64, 128, 128 and 256, a residual, 80 output channels (a
    // partial tile of channels), 37,636 pixels (a partial tile of pixels, and more tiles than
    // the streaming kernels have blocks, so that each block walks several). Each kernel of
    // trtc's runs the layers it takes, forced with TRTC_INT8_CONV (the streaming ones in two
    // sets that cover every K), and cuDNN's all of them. Every run must match tract's QDQ
    // graph and the profile must name who ran each layer; trtc's kernels, which share one
    // epilogue, must give the same outputs bit for bit.
    let g = trtc_cuda::testing::qdq_pointwise_graph(4, 97, 97, true);
    let inputs = vec![on_input_grid(&[4, 64, 97, 97], 31)];
    let reference = CpuModel::new(&g).unwrap().run(inputs.clone()).unwrap();
    let kernels = trtc_cuda::testing::int8_kernels();
    let streaming: Vec<&str> = kernels
        .iter()
        .filter(|(_, k)| k.is_some())
        .map(|(n, _)| *n)
        .collect();
    let mut runs: Vec<String> = vec!["cudnn".into()];
    runs.extend(
        kernels
            .iter()
            .filter(|(_, k)| k.is_none())
            .map(|(n, _)| n.to_string()),
    );
    // The first and the last streaming kernel for each K.
    for pick in [0, 1] {
        let set: Vec<&str> = [64, 128, 256]
            .iter()
            .filter_map(|&k| {
                let of_k: Vec<&&str> = streaming
                    .iter()
                    .filter(|n| kernels.contains(&(**n, Some(k))))
                    .collect();
                (if pick == 0 { of_k.first() } else { of_k.last() }).map(|n| **n)
            })
            .collect();
        assert_eq!(set.len(), 3, "a streaming kernel for each K: {streaming:?}");
        runs.push(set.join(","));
    }
    let mut trtc_output: Option<Vec<trtc_ir::Tensor>> = None;
    for run in &runs {
        let (mut outs, tactics) = run_with_int8_conv(&g, Some(run), &inputs, 1);
        let out = outs.remove(0);
        let (_, rel) = compare(&reference, &out).unwrap();
        println!("{run}: relative error {rel}, {tactics:?}");
        assert!(rel <= 3e-2, "{run}: relative error {rel}");
        let names: Vec<&str> = tactics.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(names, ["pw1", "pw2", "pw3", "pw4"], "{run}");
        for ((layer, tactic), k) in tactics.iter().zip([64, 128, 128, 256]) {
            let by = run
                .split(',')
                .find(|n| kernels.contains(&(*n, None)) || kernels.contains(&(*n, Some(k))));
            let want = match by {
                Some(name) => format!("trtc int8 mma {}", &name["conv1x1_i8_".len()..]),
                None => "cudnn int8 fused".into(),
            };
            assert_eq!(tactic, &want, "{run}: {layer}");
        }
        if run != "cudnn" {
            match &trtc_output {
                None => trtc_output = Some(out),
                Some(first) => {
                    let (abs, _) = compare(first, &out).unwrap();
                    assert_eq!(abs, 0.0, "{run}: not the first kernel's output");
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn per_channel_weights_run_on_trtcs_kernels_and_match_tract() {
    // pc1..pc3 have weights quantized per output channel, their scales ten times apart:
    // only trtc's kernels take them (cuDNN's INT8 convolution takes one scale), so they run
    // there even when TRTC_INT8_CONV asks for cuDNN, and they must match tract's QDQ graph,
    // which one scale for all the channels would not (the test graph's smallest channels
    // would lose 3 of their 8 bits). K = 48 runs the tiled kernels past K as zeros.
    let g = trtc_cuda::testing::qdq_per_channel_graph(2, 45, 45);
    let inputs = vec![on_input_grid(&[2, 48, 45, 45], 33)];
    let reference = CpuModel::new(&g).unwrap().run(inputs.clone()).unwrap();
    for forced in [None, Some("cudnn"), Some("conv1x1_i8_64x64")] {
        let (outs, tactics) = run_with_int8_conv(&g, forced, &inputs, 1);
        let (_, rel) = compare(&reference, &outs[0]).unwrap();
        println!("{forced:?}: relative error {rel}, {tactics:?}");
        assert!(rel <= 3e-2, "{forced:?}: relative error {rel}");
        let names: Vec<&str> = tactics.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(names, ["pc1", "pc2", "pc3"], "{forced:?}");
        for (layer, tactic) in &tactics {
            assert!(
                tactic.starts_with("trtc int8 mma"),
                "{forced:?}: {layer} {tactic}"
            );
            if forced == Some("conv1x1_i8_64x64") {
                assert_eq!(tactic, "trtc int8 mma 64x64", "{layer}");
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn split_k_gives_the_unsplit_sums_run_after_run() {
    // 49 pixels, K = 1024: one output tile, so the tiled kernels split K across blocks. Each
    // split count must give the unsplit kernel's output bit for bit, on a second run too (the
    // last block of a tile puts the workspace back to zero), and match tract's QDQ graph.
    let g = trtc_cuda::testing::qdq_deep_pointwise_graph(1, 7, 7);
    let inputs = vec![on_input_grid(&[1, 1024, 7, 7], 35)];
    let reference = CpuModel::new(&g).unwrap().run(inputs.clone()).unwrap();
    let mut first: Option<Vec<trtc_ir::Tensor>> = None;
    for (forced, tactic) in [
        ("conv1x1_i8_64x64:1", "trtc int8 mma 64x64"),
        ("conv1x1_i8_64x64:2", "trtc int8 mma 64x64 split 2"),
        ("conv1x1_i8_64x64:4", "trtc int8 mma 64x64 split 4"),
        ("conv1x1_i8_64x64:8", "trtc int8 mma 64x64 split 8"),
        (
            "conv1x1_i8_128x128_4st:8",
            "trtc int8 mma 128x128_4st split 8",
        ),
        ("conv1x1_i8_64x64_4st:4", "trtc int8 mma 64x64_4st split 4"),
    ] {
        let (outs, tactics) = run_with_int8_conv(&g, Some(forced), &inputs, 3);
        assert_eq!(
            tactics,
            [("deep1".to_string(), tactic.to_string())],
            "{forced}"
        );
        let (_, rel) = compare(&reference, &outs[0]).unwrap();
        println!("{forced}: relative error {rel}");
        assert!(rel <= 3e-2, "{forced}: relative error {rel}");
        for again in &outs[1..] {
            let (abs, _) = compare(&outs[0], again).unwrap();
            assert_eq!(abs, 0.0, "{forced}: a second run differs");
        }
        match &first {
            None => first = Some(outs[0].clone()),
            Some(f) => {
                let (abs, _) = compare(f, &outs[0]).unwrap();
                assert_eq!(abs, 0.0, "{forced}: not the unsplit kernel's output");
            }
        }
    }
}
