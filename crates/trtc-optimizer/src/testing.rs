//! Test helpers: run a pass and check it kept the graph valid and its outputs equal.

use crate::pass::Pass;
pub use crate::verify::random_tensor;
use crate::verify::verify;
use trtc_ir::Graph;

/// Relative tolerance every pass must meet.
pub const TOLERANCE: f32 = 1e-4;

/// Run `pass` on a copy of `g`; assert the result is valid and computes the same outputs.
pub fn assert_preserves(pass: &dyn Pass, g: &Graph) -> Graph {
    let mut after = g.clone();
    pass.run(&mut after)
        .unwrap_or_else(|e| panic!("{} failed: {e}", pass.name()));
    trtc_ir::infer_shapes(&mut after).unwrap();
    after
        .validate()
        .unwrap_or_else(|e| panic!("{} left an invalid graph: {e}", pass.name()));
    let v = verify(g, &after, 2, 42).unwrap();
    assert!(
        v.max_rel <= TOLERANCE,
        "{} changed the outputs: {v:?}",
        pass.name()
    );
    after
}
