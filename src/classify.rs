//! Softmax and top-k over classifier logits.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScore {
    pub index: usize,
    pub probability: f32,
    pub label: Option<String>,
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The index of the largest logit (the first of equal ones) and its softmax probability.
pub fn top1(logits: &[f32]) -> (usize, f32) {
    let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
    let max = logits.get(best).copied().unwrap_or(0.0);
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    (best, 1.0 / sum)
}

/// The `k` most probable classes, most probable first.
pub fn top_k(logits: &[f32], k: usize, labels: Option<&[String]>) -> Vec<ClassScore> {
    let probs = softmax(logits);
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    idx.into_iter()
        .take(k)
        .map(|i| ClassScore {
            index: i,
            probability: probs[i],
            label: labels.and_then(|l| l.get(i).cloned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_is_the_first_largest_logit_with_its_probability() {
        let (i, p) = top1(&[1.0, 3.0, 3.0, 0.0]);
        assert_eq!(i, 1);
        assert!((p - softmax(&[1.0, 3.0, 3.0, 0.0])[1]).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_by_probability() {
        let labels = vec!["a".to_string(), "b".into(), "c".into()];
        let top = top_k(&[1.0, 3.0, 2.0], 2, Some(&labels));
        assert_eq!(top[0].index, 1);
        assert_eq!(top[0].label.as_deref(), Some("b"));
        assert_eq!(top[1].index, 2);
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((top[0].probability - p[1]).abs() < 1e-7);
    }
}
