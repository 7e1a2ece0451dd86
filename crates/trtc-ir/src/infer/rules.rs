//! Pure dimension arithmetic of shape inference: axes, products, broadcasting,
//! sliding windows, slices and Reshape targets.

use super::SymInt;
use crate::op::AutoPad;
use crate::shape::{Dim, Shape};

pub(super) fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

pub(super) fn unknown_dim() -> Dim {
    Dim::Sym("?".into())
}

/// Product of dims: known, a lone symbol, or a symbolic product.
pub(super) fn product(dims: &[Dim]) -> Dim {
    let known: u64 = dims.iter().filter_map(|d| d.known()).product();
    let syms: Vec<String> = dims
        .iter()
        .filter_map(|d| match d {
            Dim::Sym(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    match (syms.len(), known) {
        (0, k) => Dim::Known(k),
        (1, 1) => Dim::Sym(syms[0].clone()),
        _ if syms.iter().any(|s| s == "?") => unknown_dim(),
        _ => Dim::Sym(format!("{}*{}", syms.join("*"), known)),
    }
}

pub(crate) fn broadcast(a: &[Dim], b: &[Dim]) -> std::result::Result<Shape, String> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            Some(&a[i + a.len() - rank])
        } else {
            None
        };
        let db = if i + b.len() >= rank {
            Some(&b[i + b.len() - rank])
        } else {
            None
        };
        out.push(match (da, db) {
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (Some(x), Some(y)) => match (x, y) {
                (Dim::Known(1), o) | (o, Dim::Known(1)) => o.clone(),
                (Dim::Known(p), Dim::Known(q)) if p != q => {
                    return Err(format!(
                        "cannot broadcast {} with {}",
                        crate::shape::shape_to_string(a),
                        crate::shape::shape_to_string(b)
                    ))
                }
                (Dim::Known(_), _) => x.clone(),
                (_, Dim::Known(_)) => y.clone(),
                _ => x.clone(),
            },
            (None, None) => unknown_dim(),
        });
    }
    Ok(out)
}

/// One axis of a sliding window (Conv or pooling): its kernel, stride, dilation,
/// explicit pads, `auto_pad`, and whether the output size rounds up (`ceil_mode`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    pub kernel: i64,
    pub stride: i64,
    pub dilation: i64,
    pub pad_begin: i64,
    pub pad_end: i64,
    pub auto_pad: AutoPad,
    pub ceil: bool,
}

/// Output size of a sliding window along one axis.
pub(super) fn window(i: &Dim, w: &Window) -> Dim {
    let Window {
        kernel: k,
        stride: s,
        dilation: d,
        pad_begin: pb,
        pad_end: pe,
        auto_pad: auto,
        ceil,
    } = *w;
    let Dim::Known(i) = i else {
        return unknown_dim();
    };
    let i = *i as i64;
    let s = s.max(1);
    let out = match auto {
        AutoPad::SameUpper | AutoPad::SameLower => (i + s - 1) / s,
        _ => {
            let (pb, pe) = if auto == AutoPad::Valid {
                (0, 0)
            } else {
                (pb, pe)
            };
            let span = i + pb + pe - d * (k - 1) - 1;
            if span < 0 {
                return Dim::Known(0);
            }
            let mut o = if ceil {
                (span + s - 1) / s + 1
            } else {
                span / s + 1
            };
            if ceil && (o - 1) * s >= i + pb {
                o -= 1;
            }
            o
        }
    };
    Dim::Known(out.max(0) as u64)
}

pub(super) fn slice_len(n: i64, start: i64, end: i64, step: i64) -> u64 {
    if step == 0 {
        return 0;
    }
    let clamp = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
    let norm = |v: i64| if v < 0 { v + n } else { v };
    let (s, e) = if step > 0 {
        (clamp(norm(start), 0, n), clamp(norm(end), 0, n))
    } else {
        (clamp(norm(start), -1, n - 1), clamp(norm(end), -1, n - 1))
    };
    let len = if step > 0 {
        (e - s + step - 1) / step
    } else {
        (s - e + (-step) - 1) / (-step)
    };
    len.max(0) as u64
}

/// Output shape of Reshape to `target` (0 copies, -1 infers), keeping symbols.
pub(super) fn reshape(x: &[Dim], target: &[SymInt], allowzero: bool) -> Option<Shape> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, t) in target.iter().enumerate() {
        out.push(match t {
            SymInt::Int(0) if !allowzero => Some(x.get(i)?.clone()),
            SymInt::Int(-1) => {
                infer_at = Some(i);
                None
            }
            SymInt::Int(v) if *v >= 0 => Some(Dim::Known(*v as u64)),
            SymInt::Int(_) => return None,
            SymInt::Sym(s) => Some(Dim::Sym(s.clone())),
        });
    }
    if let Some(at) = infer_at {
        let mut in_syms: Vec<String> = vec![];
        let mut in_known = 1u64;
        for d in x {
            match d {
                Dim::Known(v) => in_known *= v,
                Dim::Sym(s) => in_syms.push(s.clone()),
            }
        }
        let mut out_known = 1u64;
        for d in out.iter().flatten() {
            match d {
                Dim::Known(v) => out_known *= v,
                Dim::Sym(s) => {
                    let pos = in_syms.iter().position(|x| x == s && x != "?")?;
                    in_syms.remove(pos);
                }
            }
        }
        if out_known == 0 || !in_known.is_multiple_of(out_known) {
            return None;
        }
        let rest = in_known / out_known;
        out[at] = Some(match in_syms.as_slice() {
            [] => Dim::Known(rest),
            [s] if rest == 1 && s != "?" => Dim::Sym(s.clone()),
            _ => unknown_dim(),
        });
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window with dilation 1, no auto_pad and no ceil_mode.
    fn win(kernel: i64, stride: i64, pad_begin: i64, pad_end: i64) -> Window {
        Window {
            kernel,
            stride,
            dilation: 1,
            pad_begin,
            pad_end,
            auto_pad: AutoPad::NotSet,
            ceil: false,
        }
    }

    #[test]
    fn windows_follow_onnx_rules() {
        let d = Dim::Known(299);
        assert_eq!(window(&d, &win(3, 2, 0, 0)), Dim::Known(149));
        assert_eq!(window(&Dim::Known(224), &win(3, 2, 0, 1)), Dim::Known(112));
        let same_upper = Window {
            auto_pad: AutoPad::SameUpper,
            ..win(3, 2, 0, 0)
        };
        assert_eq!(window(&Dim::Known(7), &same_upper), Dim::Known(4));
        let ceil = Window {
            ceil: true,
            ..win(3, 2, 0, 0)
        };
        assert_eq!(window(&Dim::Known(6), &ceil), Dim::Known(3));
        assert_eq!(
            window(&Dim::Sym("H".into()), &win(3, 1, 1, 1)),
            unknown_dim()
        );
    }

    #[test]
    fn reshape_keeps_the_batch_symbol() {
        let x = vec![
            Dim::Sym("N".into()),
            Dim::Known(1280),
            Dim::Known(1),
            Dim::Known(1),
        ];
        let t = vec![SymInt::Sym("N".into()), SymInt::Int(-1)];
        assert_eq!(
            reshape(&x, &t, false),
            Some(vec![Dim::Sym("N".into()), Dim::Known(1280)])
        );
        let t = vec![SymInt::Int(0), SymInt::Int(-1)];
        assert_eq!(
            reshape(&x, &t, false),
            Some(vec![Dim::Sym("N".into()), Dim::Known(1280)])
        );
        let t = vec![SymInt::Int(-1)];
        assert_eq!(reshape(&x, &t, false), Some(vec![unknown_dim()]));
    }

    #[test]
    fn broadcasting() {
        let a = vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(1)];
        let b = vec![Dim::Known(4)];
        assert_eq!(
            broadcast(&a, &b).unwrap(),
            vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(4)]
        );
        assert!(broadcast(&[Dim::Known(3)], &[Dim::Known(4)]).is_err());
    }

    #[test]
    fn slices() {
        assert_eq!(slice_len(10, 0, i64::MAX, 1), 10);
        assert_eq!(slice_len(10, -1, i64::MIN, -1), 10);
        assert_eq!(slice_len(10, 2, 8, 3), 2);
    }
}
