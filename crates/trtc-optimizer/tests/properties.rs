//! Property tests for the optimizer passes: on random small, valid CNN graphs every pass
//! (alone, in any order, and as the default pipeline) keeps the graph valid and its
//! outputs equal, the pipeline is idempotent, and horizontal fusion merges only convs
//! whose attributes are identical.
//!
//! The generators live in `support/`: random CNN graphs are described by block
//! descriptors (`support::generator`) and built deterministically from them
//! (`support::build`); `support::siblings` generates sibling convs for horizontal fusion.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use support::build::build_net;
use support::generator::{net, Act, Block, Branch, Net, Usage};
use support::siblings::{build_sib_net, sib_net};
use trtc_ir::{CpuModel, Graph};
use trtc_optimizer::testing::TOLERANCE;
use trtc_optimizer::verify::{compare, random_inputs, verify};
use trtc_optimizer::{pass_by_name, Pipeline, PASS_NAMES};

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

const VERIFY_SEED: u64 = 7;

/// The generator's seed unless `PROPTEST_RNG_SEED` says otherwise: the same graphs on every
/// run, so that CI is reproducible. (Some graph of a random seed once made tract's im2col
/// trip a debug-build pointer check, which aborts the process instead of failing the case.)
const GRAPH_SEED: u64 = 20261202;

/// `cases` per property, or `PROPTEST_CASES` from the environment for a longer hunt
/// (with `PROPTEST_RNG_SEED` for other graphs).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let rng_seed = match std::env::var("PROPTEST_RNG_SEED") {
        Ok(_) => ProptestConfig::default().rng_seed,
        Err(_) => RngSeed::Fixed(GRAPH_SEED),
    };
    // No regression files: failures print their shrunk input instead.
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed,
        ..ProptestConfig::default()
    }
}

/// Re-infer shapes and validate after a pass run directly.
fn revalidate(g: &mut Graph, pass: &str) -> Result<(), TestCaseError> {
    trtc_ir::infer_shapes(g).map_err(|e| {
        TestCaseError::fail(format!("{pass}: shape inference failed afterwards: {e}"))
    })?;
    g.validate()
        .map_err(|e| TestCaseError::fail(format!("{pass} left an invalid graph: {e}")))
}

fn assert_same_outputs(
    original: &Graph,
    optimized: &Graph,
    what: &str,
) -> Result<(), TestCaseError> {
    // Once in a few thousand generated graphs tract has returned NaN for a graph in one
    // process and not in the next (see the closing note). Two runs of the same graph that
    // disagree, or a non-finite reference, say nothing about the pass: reject the case.
    let run = |g: &Graph| -> Result<Vec<trtc_ir::Tensor>, TestCaseError> {
        let inputs = random_inputs(original, 1, VERIFY_SEED)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let m = CpuModel::new(g).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        m.run(inputs)
            .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
    };
    let stable = |a: &[trtc_ir::Tensor], b: &[trtc_ir::Tensor]| {
        compare(a, b).map(|(abs, _)| abs == 0.0).unwrap_or(false)
    };
    let (a1, a2) = match (run(original), run(original)) {
        (Ok(a1), Ok(a2)) => (a1, a2),
        _ => return Err(TestCaseError::reject("tract cannot run the original graph")),
    };
    if !stable(&a1, &a2)
        || compare(&a1, &a1)
            .map(|(abs, _)| !abs.is_finite())
            .unwrap_or(true)
    {
        return Err(TestCaseError::reject(
            "tract is unstable or non-finite on the original graph",
        ));
    }
    let (b1, b2) = (run(optimized)?, run(optimized)?);
    if !stable(&b1, &b2) {
        return Err(TestCaseError::reject(
            "tract is unstable on the optimized graph",
        ));
    }
    let (max_abs, max_rel) =
        compare(&a1, &b1).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    prop_assert!(
        max_rel <= TOLERANCE,
        "{} changed the outputs: max abs {}, max rel {}",
        what,
        max_abs,
        max_rel
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn every_pass_preserves_outputs(net in net()) {
        let g = build_net(&net);
        for &name in PASS_NAMES {
            let pass = pass_by_name(name).unwrap();
            let mut after = g.clone();
            pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("{name} failed: {e}")))?;
            revalidate(&mut after, name)?;
            assert_same_outputs(&g, &after, name)?;
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn pipeline_preserves_outputs_and_is_idempotent(net in net()) {
        let g = build_net(&net);
        let pipeline = Pipeline::default_pipeline();
        let mut after = g.clone();
        pipeline.run(&mut after).map_err(|e| TestCaseError::fail(format!("pipeline failed: {e}")))?;
        after.validate().map_err(|e| TestCaseError::fail(format!("pipeline left an invalid graph: {e}")))?;
        assert_same_outputs(&g, &after, "the default pipeline")?;

        let nodes = after.compute_node_count();
        let mut again = after.clone();
        let report = pipeline.run(&mut again).map_err(|e| TestCaseError::fail(format!("second pipeline run failed: {e}")))?;
        let rewrites: usize = report.passes.iter().map(|p| p.rewrites).sum();
        let by_pass: Vec<(String, usize)> = report.passes.iter().filter(|p| p.rewrites > 0).map(|p| (p.name.clone(), p.rewrites)).collect();
        prop_assert_eq!(rewrites, 0, "second run rewrote: {:?}", by_pass);
        prop_assert_eq!(again.compute_node_count(), nodes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn every_pass_leaves_a_valid_graph(
        net in net(),
        order in proptest::collection::vec(0..PASS_NAMES.len(), 1..=10),
    ) {
        let g = build_net(&net);
        let mut after = g.clone();
        for &i in &order {
            let name = PASS_NAMES[i];
            let pass = pass_by_name(name).unwrap();
            pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("{name} failed: {e}")))?;
            revalidate(&mut after, name)?;
        }
        let names: Vec<&str> = order.iter().map(|&i| PASS_NAMES[i]).collect();
        assert_same_outputs(&g, &after, &format!("passes {names:?}"))?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn horizontal_fusion_never_merges_different_convs(net in sib_net()) {
        let (g, attrs) = build_sib_net(&net);
        let mut after = g.clone();
        if net.prefuse {
            let pass = pass_by_name("vertical-fusion").unwrap();
            pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("vertical-fusion failed: {e}")))?;
            revalidate(&mut after, "vertical-fusion")?;
        }
        let pass = pass_by_name("horizontal-fusion").unwrap();
        pass.run(&mut after).map_err(|e| TestCaseError::fail(format!("horizontal-fusion failed: {e}")))?;
        revalidate(&mut after, "horizontal-fusion")?;

        for id in after.node_ids() {
            let node = after.node(id);
            let convs: Vec<&String> = node.origin.iter().filter(|n| attrs.contains_key(*n)).collect();
            if convs.len() < 2 {
                continue;
            }
            let first = &attrs[convs[0]];
            for other in &convs[1..] {
                let a = &attrs[*other];
                // A separate activation node stays behind the merged conv's Split, so
                // activations only have to agree when they were fused into the convs.
                let same = first.kernel == a.kernel
                    && first.strides == a.strides
                    && first.pads == a.pads
                    && first.dilations == a.dilations
                    && first.group == a.group
                    && (!net.prefuse || first.activation == a.activation);
                prop_assert!(
                    same,
                    "`{}` merged {} ({:?}) with {} ({:?})",
                    node.name, convs[0], first, other, a
                );
            }
        }
        assert_same_outputs(&g, &after, "horizontal-fusion")?;
    }
}

/// The shrunk counterexample the properties found first, kept as a plain test so that it
/// fails every run until fixed: two sibling groups where the second reads the output of a
/// conv the first group merges. Horizontal fusion then wires the second merged conv to the
/// removed conv's (stale, reused) node index, here one of its own new weight constants.
#[test]
fn horizontal_fusion_chained_sibling_groups() {
    let branch = || Branch {
        cout: 1,
        act: Act::None,
        bias: false,
    };
    let net = Net {
        c: 1,
        h: 4,
        w: 4,
        blocks: vec![
            Block::Siblings {
                k3: false,
                branches: vec![branch(), branch()],
                usage: Usage::FirstContinues,
                seed: 0,
            },
            Block::Siblings {
                k3: false,
                branches: vec![branch(), branch()],
                usage: Usage::ConcatInOrder,
                seed: 0,
            },
        ],
        head: None,
    };
    let g = build_net(&net);
    let mut after = g.clone();
    pass_by_name("horizontal-fusion")
        .unwrap()
        .run(&mut after)
        .unwrap();
    trtc_ir::infer_shapes(&mut after).unwrap();
    after.validate().unwrap();
    let v = verify(&g, &after, 1, VERIFY_SEED).unwrap();
    assert!(
        v.max_rel <= TOLERANCE,
        "horizontal-fusion changed the outputs: {v:?}"
    );
}
