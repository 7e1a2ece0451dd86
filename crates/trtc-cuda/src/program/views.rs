//! Identity, Flatten and Reshape inside an engine: a view of the input's memory where the
//! storage order allows it, a relayout where NHWC storage gets in the way.
//!
//! A 4-D tensor stored NHWC has the same memory as its NCHW self when it has one channel or
//! one pixel; any other NHWC tensor must be put in NCHW order before it is viewed with
//! another shape, and a 4-D result of an NHWC engine is put back in NHWC order.

use super::{Program, Step};
use trtc_ir::{Dim, Graph, Outlet};

impl Program {
    /// Whether slot `s` is stored in an order other than its logical (row-major) one.
    fn reordered(&self, shape: &[Dim], nhwc: bool) -> bool {
        if !nhwc || shape.len() != 4 {
            return false;
        }
        let known = |d: &Dim| d.known();
        let c = known(&shape[1]);
        let hw = known(&shape[2]).zip(known(&shape[3])).map(|(h, w)| h * w);
        c != Some(1) && hw != Some(1)
    }

    /// The slot of `y_out`, the reshaped `x`; relayout steps are added where needed.
    pub fn reshape(&mut self, g: &Graph, x: usize, y_out: Outlet, name: &str) -> usize {
        let y_shape = g.tensor(y_out).shape.clone().unwrap_or_default();
        let y_nhwc = self.nhwc && y_shape.len() == 4;
        let (x_shape, x_nhwc, half) = {
            let s = &self.slots[x];
            (s.shape.clone(), s.nhwc, s.half)
        };
        let x_reordered = self.reordered(&x_shape, x_nhwc);
        let y_reordered = self.reordered(&y_shape, y_nhwc);
        if (!x_reordered && !y_reordered) || (x_shape == y_shape && x_nhwc == y_nhwc) {
            return self.push_slot(y_shape, Some(x), y_nhwc, half);
        }
        // x in logical order: itself, or an NCHW copy.
        let src = if x_reordered {
            let t = self.push_slot(x_shape, None, false, half);
            self.names.push(format!("{name} (to NCHW)"));
            self.steps.push(Step::Relayout { x, y: t });
            t
        } else {
            x
        };
        if !y_reordered {
            return self.push_slot(y_shape, Some(src), y_nhwc, half);
        }
        let view = self.push_slot(y_shape.clone(), Some(src), false, half);
        let y = self.push_slot(y_shape, None, true, half);
        self.names.push(format!("{name} (to NHWC)"));
        self.steps.push(Step::Relayout { x: view, y });
        y
    }
}
