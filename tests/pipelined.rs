//! `HybridModel::run_pipelined`: batches come back in order with their index, a batch that
//! does not fit is delivered as its error (index and reason) while the rest still run, and
//! a batch over the limit is refused before anything runs. On a machine without a GPU the
//! batches run one after another (and the report says why); the overlapped GPU path has
//! the same tests in `crates/trtc-cuda/tests/pipelined.rs`.

mod common;
use common::*;
use trtc::backend::{compile, CompileOptions, HybridModel};
use trtc::ir::load_model;
use trtc::ir::tract_onnx::prelude::Tensor;
use trtc::optimizer::verify::random_tensor;

fn efficientnet_model(max_batch_size: usize) -> HybridModel {
    let g = load_model(efficientnet()).unwrap();
    let opts = CompileOptions {
        max_batch_size,
        ..Default::default()
    };
    let plan = compile("e", g, &opts, trtc::gpu()).unwrap();
    HybridModel::from_plan(&plan, trtc::gpu()).unwrap()
}

#[test]
fn batches_come_back_in_order_and_a_bad_one_is_reported_with_its_index() {
    let model = efficientnet_model(2);
    let shape = vec![2, 3, 224, 224];
    let batches: Vec<Vec<Tensor>> = (0..6u64)
        .map(|i| match i {
            // The wrong height, then the wrong dtype.
            2 => vec![random_tensor(&[2, 3, 200, 224], i)],
            4 => vec![Tensor::zero::<u8>(&shape).unwrap()],
            _ => vec![random_tensor(&shape, i)],
        })
        .collect();
    let mut got = vec![];
    let report = model
        .run_pipelined(std::slice::from_ref(&shape), batches.clone(), 3, |i, r| {
            got.push((i, r))
        })
        .unwrap();
    let order: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5], "every batch, in order");
    assert_eq!((report.delivered, report.failed), (4, 2));
    for (i, r) in &got {
        match i {
            2 | 4 => {
                let e = r.as_ref().unwrap_err().to_string();
                assert!(e.starts_with(&format!("batch {i}: input `")), "{e}");
                let want = if *i == 2 { "[2, 3, 200, 224]" } else { "U8" };
                assert!(e.contains(want), "{e}");
            }
            _ => {
                let outs = r.as_ref().unwrap();
                let want = model.run(batches[*i].clone()).unwrap();
                assert_eq!(outs.len(), 1);
                assert_eq!(outs[0].shape(), &[2, 1000]);
                assert_eq!(outs[0], want[0], "batch {i}: the outputs of its own inputs");
            }
        }
    }
    // Different inputs, different outputs: the batches were not mixed up.
    let first = |i: usize| got[i].1.as_ref().unwrap()[0].clone();
    assert_ne!(first(0), first(1));
    if trtc::gpu().unavailable().is_some() {
        let why = report.sequential_because.unwrap_or_default();
        assert!(why.contains("segment"), "{why}");
    }
}

#[test]
fn a_stream_over_the_batch_limit_is_refused_before_anything_runs() {
    let model = efficientnet_model(2);
    let shape = vec![3, 3, 224, 224];
    let batches = vec![vec![random_tensor(&shape, 1)]];
    let mut delivered = 0;
    let e = model
        .run_pipelined(&[shape], batches, 2, |_, _| delivered += 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch 3, over --max-batch-size 2"), "{e}");
    assert_eq!(delivered, 0);
    // Shapes that do not fit the model at all.
    let e = model
        .run_pipelined(&[vec![1, 3, 224]], Vec::<Vec<Tensor>>::new(), 2, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("input"), "{e}");
}

#[test]
fn an_empty_stream_delivers_nothing() {
    let model = efficientnet_model(1);
    let report = model
        .run_pipelined(
            &[vec![1, 3, 224, 224]],
            Vec::<Vec<Tensor>>::new(),
            3,
            |_, _| panic!("no batch was given"),
        )
        .unwrap();
    assert_eq!((report.delivered, report.failed), (0, 0));
}

/// `run_pipelined_with`: the caller writes each batch's bytes into the stream's buffers
/// itself; a batch it cannot fill is delivered as its reason, in its turn.
#[test]
fn a_caller_filling_the_buffers_itself_gets_the_outputs_of_what_it_wrote() {
    let model = efficientnet_model(1);
    let shape = vec![1, 3, 224, 224];
    let inputs: Vec<Tensor> = (0..3u64).map(|i| random_tensor(&shape, 40 + i)).collect();
    let mut got = vec![];
    let report = model
        .run_pipelined_with(
            std::slice::from_ref(&shape),
            2,
            |i, bufs| match i {
                1 => Some(Err("the camera dropped a frame".into())),
                0 | 2 => {
                    bufs[0].copy_from_slice(inputs[i].as_bytes());
                    Some(Ok(()))
                }
                _ => None,
            },
            |i, r| got.push((i, r)),
        )
        .unwrap();
    assert_eq!((report.delivered, report.failed), (2, 1));
    assert_eq!(got.len(), 3);
    for (i, r) in got {
        if i == 1 {
            let e = r.unwrap_err().to_string();
            assert_eq!(e, "batch 1: the camera dropped a frame");
        } else {
            let want = model.run(vec![inputs[i].clone()]).unwrap();
            assert_eq!(r.unwrap()[0], want[0], "batch {i}");
        }
    }
}
