//! `HybridModel::run_pipelined` on a model that is one GPU engine: copies overlapped with
//! compute on three streams, batches delivered in order with the numbers `run` gives, a
//! batch that does not fit delivered as its error while the rest still run.

use crate::common::*;
use trtc_ir::Tensor;

fn conv_model() -> (Graph, CompileOptions) {
    let opts = CompileOptions {
        max_batch_size: 4,
        ..opts_for(Precision::Fp16, Layout::Auto)
    };
    (conv_relu_pool(16, 32), opts)
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pipelined_batches_match_run_in_order() {
    let (g, opts) = conv_model();
    let shape = vec![3, 3, 32, 32];
    let x0 = random_tensor(&shape, 1);
    let (_, model) = gpu_vs_tract_model(&g, vec![x0], &opts);
    let batches: Vec<Vec<Tensor>> = (0..9u64)
        .map(|i| match i {
            4 => vec![random_tensor(&[2, 3, 32, 32], i)],
            _ => vec![random_tensor(&shape, 10 + i)],
        })
        .collect();
    for depth in [1, 2, 3] {
        let mut got = vec![];
        let report = model
            .run_pipelined(
                std::slice::from_ref(&shape),
                batches.clone(),
                depth,
                |i, r| got.push((i, r)),
            )
            .unwrap();
        assert_eq!(
            report.sequential_because, None,
            "one GPU engine: overlapped"
        );
        assert_eq!((report.delivered, report.failed), (8, 1), "depth {depth}");
        let order: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..9).collect::<Vec<_>>(), "depth {depth}");
        for (i, r) in &got {
            if *i == 4 {
                let e = r.as_ref().unwrap_err().to_string();
                assert!(e.starts_with("batch 4: input `x`"), "{e}");
                continue;
            }
            let want = model.run(batches[*i].clone()).unwrap();
            assert_eq!(r.as_ref().unwrap()[0], want[0], "depth {depth}, batch {i}");
        }
        assert_ne!(got[0].1.as_ref().unwrap()[0], got[1].1.as_ref().unwrap()[0]);
    }
    // The caller writing the staging buffers itself: the same numbers.
    let mut got = vec![];
    model
        .run_pipelined_with(
            std::slice::from_ref(&shape),
            2,
            |i, bufs| {
                let t = batches.get(i + 5)?;
                bufs[0].copy_from_slice(t[0].as_bytes());
                Some(Ok(()))
            },
            |i, r| got.push((i, r.unwrap())),
        )
        .unwrap();
    assert_eq!(got.len(), 4);
    for (i, outs) in got {
        assert_eq!(outs[0], model.run(batches[i + 5].clone()).unwrap()[0]);
    }
    // Over the batch limit: refused before anything runs.
    let e = model
        .run_pipelined(&[vec![5, 3, 32, 32]], batches, 2, |_, _| {
            panic!("nothing runs")
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("over --max-batch-size 4"), "{e}");
}
