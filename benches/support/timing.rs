//! Shared timing helpers for the benches (included with `#[path]`).
#![allow(dead_code)]

use std::time::Instant;

/// Run `f` `warmup` times, then time `n` runs; returns sorted seconds.
pub fn time_runs(warmup: usize, n: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

pub fn median(t: &[f64]) -> f64 {
    t[t.len() / 2]
}

/// Interleave two workloads round by round so drift affects both alike; sorted times each.
pub fn time_pair(
    warmup: usize,
    rounds: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Vec<f64>, Vec<f64>) {
    for _ in 0..warmup {
        a();
        b();
    }
    let (mut ta, mut tb) = (vec![], vec![]);
    for i in 0..rounds {
        let one = |f: &mut dyn FnMut(), v: &mut Vec<f64>| {
            let s = Instant::now();
            f();
            v.push(s.elapsed().as_secs_f64());
        };
        if i % 2 == 0 {
            one(&mut a, &mut ta);
            one(&mut b, &mut tb);
        } else {
            one(&mut b, &mut tb);
            one(&mut a, &mut ta);
        }
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    (ta, tb)
}

pub fn shared_model(name: &str) -> String {
    format!("{}/../shared/models/{name}", env!("CARGO_MANIFEST_DIR"))
}
