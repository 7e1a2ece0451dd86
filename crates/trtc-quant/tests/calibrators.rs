//! The range search of each calibrator against hand computations and an independent,
//! literal port of pytorch-quantization's `_compute_amax_entropy`.

use trtc_quant::calibrator::{entropy_bin, entropy_divergence, percentile_bin};
use trtc_quant::{AbsHistogram, Calibrator};

/// A tiny deterministic generator (no dependency, same numbers everywhere).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// pytorch-quantization's loop, line by line: `np.linspace`, `np.digitize`, the
/// `Counter` of levels, explicit P and Q arrays, `scipy.stats.entropy` (normalizing both;
/// a zero-sum Q counts as an infinite divergence). Returns every candidate's divergence.
fn reference_divergences(counts: &[u64]) -> Vec<(usize, f64)> {
    let mut bins: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
    bins[0] = bins[1];
    let n = bins.len();
    let levels = 128usize;
    let mut out = vec![];
    for i in 128..=n {
        let space: Vec<f64> = (0..=levels)
            .map(|k| k as f64 * i as f64 / levels as f64)
            .collect();
        // np.digitize(range(i), space) - 1, with empty source bins marked -1.
        let digitized: Vec<i64> = (0..i)
            .map(|j| {
                if bins[j] == 0.0 {
                    -1
                } else {
                    space.partition_point(|&e| e <= j as f64) as i64 - 1
                }
            })
            .collect();
        let mut density = vec![0f64; levels];
        let mut members = vec![0usize; levels];
        for (j, &d) in digitized.iter().enumerate() {
            if d >= 0 {
                density[d as usize] += bins[j];
                members[d as usize] += 1;
            }
        }
        let q: Vec<f64> = digitized
            .iter()
            .map(|&d| {
                if d >= 0 {
                    density[d as usize] / members[d as usize] as f64
                } else {
                    0.0
                }
            })
            .collect();
        let mut p: Vec<f64> = bins[..i].to_vec();
        p[i - 1] += bins[i..].iter().sum::<f64>();
        let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
        let kl = if sq == 0.0 {
            f64::INFINITY
        } else {
            p.iter()
                .zip(&q)
                .filter(|(p, _)| **p > 0.0)
                .map(|(p, q)| {
                    let (p, q) = (p / sp, q / sq);
                    if q == 0.0 {
                        f64::INFINITY
                    } else {
                        p * (p / q).ln()
                    }
                })
                .sum()
        };
        out.push((i, kl));
    }
    out
}

/// The reference's pick: the last minimum.
fn reference_entropy_bin(counts: &[u64]) -> usize {
    let mut best = (f64::INFINITY, counts.len());
    for (i, d) in reference_divergences(counts) {
        if d <= best.0 {
            best = (d, i);
        }
    }
    best.1
}

/// Mass in bins below 200 with a bumpy (not level-uniform) shape, plus three outliers in
/// the last of 2048 bins.
fn bulk_below_200_and_far_outliers() -> Vec<u64> {
    let mut rng = Lcg(7);
    let mut counts = vec![0u64; 2048];
    for (j, c) in counts.iter_mut().enumerate().take(200) {
        let shape = 1000.0 * (-(j as f64) / 80.0).exp();
        *c = (shape * (0.5 + rng.next())) as u64 + 1;
    }
    counts[2047] = 3;
    counts
}

#[test]
fn divergence_of_two_candidates_computed_by_hand() {
    // 129 bins of one count each. Candidate 129: no outliers; levels are bins {0,1}, {2},
    // ..., {128}, all uniform, so Q = P and KL = 0. Candidate 128: the outlier (bin 128)
    // joins bin 127, P = (1, ..., 1, 2)/129, Q = (1, ..., 1)/128:
    // KL = 127/129 ln(128/129) + 2/129 ln(256/129).
    let counts = vec![1u64; 129];
    let expected = 127.0 / 129.0 * (128f64 / 129.0).ln() + 2.0 / 129.0 * (256f64 / 129.0).ln();
    let d128 = entropy_divergence(&counts, 128);
    assert!((d128 - expected).abs() < 1e-12, "{d128} vs {expected}");
    assert!(entropy_divergence(&counts, 129).abs() < 1e-12);
    assert_eq!(entropy_bin(&counts), 129);
}

#[test]
fn an_empty_last_bin_with_outliers_is_an_infinite_divergence() {
    // Bin 130 empty, bin 140 full: candidate 131 puts the outliers where Q is 0.
    let mut counts = vec![5u64; 130];
    counts.extend([0u64; 9]);
    counts.push(5);
    counts.extend([0u64; 20]);
    assert_eq!(entropy_divergence(&counts, 131), f64::INFINITY);
    assert!(entropy_divergence(&counts, 130).is_finite());
}

#[test]
fn divergences_match_the_reference_port() {
    let counts = bulk_below_200_and_far_outliers();
    let reference = reference_divergences(&counts);
    for &(i, want) in reference.iter().filter(|(i, _)| i % 37 == 0 || *i < 260) {
        let got = entropy_divergence(&counts, i);
        if want.is_infinite() {
            assert_eq!(got, want, "candidate {i}");
        } else {
            assert!(
                (got - want).abs() <= 1e-10 * want.abs().max(1e-3),
                "candidate {i}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn entropy_picks_the_bulk_and_ignores_far_outliers() {
    let counts = bulk_below_200_and_far_outliers();
    let i = entropy_bin(&counts);
    assert_eq!(i, reference_entropy_bin(&counts));
    assert!((150..=200).contains(&i), "entropy picked bin {i}");
    // Through a histogram: values at bin centres, width 1, the top value 2047.5.
    let mut h = AbsHistogram::new();
    let mut values = vec![2048.0f32];
    for (j, &c) in counts.iter().enumerate() {
        values.extend(std::iter::repeat_n(j as f32 + 0.5, c as usize));
    }
    // The 2048.0 sets the range [0, 2048] (width 1) and lands in the last bin with the
    // outliers, so drop one of those to keep the counts above.
    let top = values.iter().rposition(|&v| v == 2047.5).unwrap();
    values.remove(top);
    h.add(&values);
    assert_eq!(h.counts(), counts.as_slice());
    assert_eq!(Calibrator::Entropy.amax(&h), i as f32);
    assert_eq!(Calibrator::MinMax.amax(&h), 2048.0);
}

#[test]
fn entropy_matches_the_reference_on_varied_histograms() {
    let mut rng = Lcg(42);
    for case in 0..12 {
        let n = 128 + (rng.next() * 600.0) as usize;
        let counts: Vec<u64> = (0..n)
            .map(|j| {
                let bump = (-((j as f64 - n as f64 * 0.3) / (n as f64 * 0.15)).powi(2)).exp();
                let empty = case % 3 == 0 && rng.next() < 0.2;
                if empty {
                    0
                } else {
                    (bump * 500.0 * rng.next()) as u64
                }
            })
            .collect();
        if counts.iter().sum::<u64>() == 0 {
            continue;
        }
        let got = entropy_bin(&counts);
        let reference = reference_divergences(&counts);
        let best = reference
            .iter()
            .map(|&(_, d)| d)
            .fold(f64::INFINITY, f64::min);
        let at_got = reference.iter().find(|&&(i, _)| i == got).map(|&(_, d)| d);
        // The pick is the reference's minimum (up to rounding on a near-tie).
        match at_got {
            Some(d) => assert!(
                d <= best + 1e-12 || (d.is_infinite() && best.is_infinite()),
                "case {case}: bin {got} has {d}, the minimum is {best}"
            ),
            None => panic!("case {case}: bin {got} is not a candidate"),
        }
        if best.is_finite() {
            assert_eq!(got, reference_entropy_bin(&counts), "case {case}");
        }
    }
}

#[test]
fn percentile_takes_the_upper_edge_where_the_cdf_crosses() {
    let counts = [10u64, 0, 0, 80, 10];
    assert_eq!(percentile_bin(&counts, 10.0), 1);
    assert_eq!(percentile_bin(&counts, 50.0), 4);
    assert_eq!(percentile_bin(&counts, 90.0), 4);
    assert_eq!(percentile_bin(&counts, 90.01), 5);
    assert_eq!(percentile_bin(&counts, 100.0), 5);
    // Width 1 from the first batch, grown to 40 bins by the second.
    let mut h = AbsHistogram::with_bins(4);
    h.add(&[4.0]);
    let mut v = vec![0.5f32; 9998];
    v.push(39.5);
    h.add(&v);
    assert_eq!(h.counts().len(), 40);
    // 99.99% of 10000 values is 9999: reached in bin 0 (9998) + bin 3 (the 4.0).
    assert_eq!(Calibrator::Percentile(99.99).amax(&h), 4.0);
    // The top bin's edge, 40, is past the largest value: cut to it.
    assert_eq!(Calibrator::Percentile(100.0).amax(&h), 39.5);
    assert_eq!(Calibrator::MinMax.amax(&h), 39.5);
}

#[test]
fn cache_headers_name_the_algorithm() {
    assert_eq!(
        Calibrator::Entropy.cache_header(),
        "TRT-8600-EntropyCalibration2"
    );
    assert_eq!(
        Calibrator::MinMax.cache_header(),
        "TRT-8600-MinMaxCalibration"
    );
    assert!(Calibrator::Percentile(99.9)
        .cache_header()
        .starts_with("TRTC-"));
}
