//! An activation's range (`amax`) from its `|x|` histogram; the INT8 scale is `amax / 127`.
//!
//! The rules, after NVIDIA's pytorch-quantization (`calib/histogram.py`), which mirrors
//! TensorRT's own calibrators:
//!
//! - **Entropy** (TensorRT's `EntropyCalibration2`, `_compute_amax_entropy`): bin 0 takes
//!   bin 1's count (near-zero noise is discarded); for every candidate `i` from 128 to the
//!   bin count, the reference `P` is bins `[0, i)` with the outliers `sum(bins[i..])` added
//!   to `P[i-1]`; the candidate `Q` is bins `[0, i)` (without the outliers, as in
//!   pytorch-quantization and NVIDIA's GTC 2017 pseudo-code) merged into 128 levels, bin `j`
//!   in level `floor(128 j / i)`, each level's count spread evenly over its non-empty bins
//!   (empty bins stay 0). The candidate with the smallest `KL(P || Q)` of the normalized
//!   distributions wins, the last one on a tie, and `amax` is its edge `i * width`. A
//!   candidate whose `Q` is 0 where `P` is not has an infinite divergence; when every
//!   candidate does, or the histogram has fewer than 128 bins, `amax` is the range's top.
//! - **MinMax** (`MinMaxCalibration`): the exact largest `|x|` seen.
//! - **Percentile(p)**: the upper edge of the first bin where the cumulative count reaches
//!   `p`% of all values, so at least `p`% lie within `[-amax, amax]` (pytorch-quantization
//!   takes that bin's lower edge, one bin width less). Not a TensorRT calibrator: its cache
//!   header is trtc's own.
//!
//! A bin edge past the largest `|x|` seen (the top of a grown range) is cut to it: `amax`
//! never exceeds what the data reached. A histogram that saw nothing but zeros has `amax` 0 (scale 0, as TensorRT writes for
//! tensors it could not range).

use crate::error::{QuantError, Result};
use crate::histogram::AbsHistogram;
use std::fmt;
use std::str::FromStr;

/// The first candidate bin of the entropy search (pytorch-quantization's `start_bin`).
pub const ENTROPY_START_BIN: usize = 128;
/// Levels the entropy search quantizes into: `2^(8-1)` for signed 8-bit.
pub const ENTROPY_LEVELS: usize = 128;

/// How an activation's range is chosen.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Calibrator {
    Entropy,
    MinMax,
    /// Percentile in (0, 100].
    Percentile(f64),
}

impl Calibrator {
    pub const DEFAULT_PERCENTILE: f64 = 99.99;

    /// The first line of the calibration cache this calibrator writes.
    pub fn cache_header(&self) -> &'static str {
        match self {
            Calibrator::Entropy => "TRT-8600-EntropyCalibration2",
            Calibrator::MinMax => "TRT-8600-MinMaxCalibration",
            Calibrator::Percentile(_) => "TRTC-1-PercentileCalibration",
        }
    }

    /// The range `amax` (>= 0) this calibrator picks from a tensor's histogram.
    pub fn amax(&self, h: &AbsHistogram) -> f32 {
        if h.is_all_zero() {
            return 0.0;
        }
        let edge = match self {
            Calibrator::MinMax => return h.max_abs(),
            Calibrator::Entropy => h.edge(entropy_bin(h.counts())),
            Calibrator::Percentile(p) => h.edge(percentile_bin(h.counts(), *p)),
        };
        (edge as f32).min(h.max_abs())
    }
}

impl fmt::Display for Calibrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Calibrator::Entropy => write!(f, "entropy"),
            Calibrator::MinMax => write!(f, "minmax"),
            Calibrator::Percentile(p) => write!(f, "percentile:{p}"),
        }
    }
}

impl FromStr for Calibrator {
    type Err = QuantError;

    /// `entropy`, `minmax`, `percentile` (99.99) or `percentile:P`.
    fn from_str(s: &str) -> Result<Calibrator> {
        let bad = || QuantError::BadCalibrator(s.to_string());
        match s.trim() {
            "entropy" => Ok(Calibrator::Entropy),
            "minmax" => Ok(Calibrator::MinMax),
            "percentile" => Ok(Calibrator::Percentile(Self::DEFAULT_PERCENTILE)),
            other => {
                let p: f64 = other
                    .strip_prefix("percentile:")
                    .ok_or_else(bad)?
                    .trim()
                    .parse()
                    .map_err(|_| bad())?;
                if p > 0.0 && p <= 100.0 {
                    Ok(Calibrator::Percentile(p))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// The bin index `i` whose edge is the entropy calibrator's `amax` (see the module rule).
pub fn entropy_bin(counts: &[u64]) -> usize {
    let n = counts.len();
    if n < ENTROPY_START_BIN.max(2) {
        return n;
    }
    let sums = PrefixSums::new(counts);
    let mut best = (f64::INFINITY, n);
    for i in ENTROPY_START_BIN..=n {
        let d = sums.divergence(i);
        // `<=`: the last minimum wins; a NaN never does.
        if d <= best.0 {
            best = (d, i);
        }
    }
    best.1
}

/// `KL(P || Q)` of entropy candidate `i` (`1 <= i <= counts.len()`, see the module
/// rule), for diagnostics and tests.
pub fn entropy_divergence(counts: &[u64], i: usize) -> f64 {
    if counts.len() < 2 || i == 0 || i > counts.len() {
        return f64::NAN;
    }
    PrefixSums::new(counts).divergence(i)
}

/// Prefix sums of the bins (bin 0 replaced by bin 1), of `count * ln(count)` and of the
/// non-empty bins. With them each candidate costs O(levels), not O(i):
/// `KL(P || Q) = (sum P ln P - sum_levels P_level * ln(S_level / nonempty_level)) / SP
/// + ln(SQ / SP)`, where `SP` is the total count and `SQ` the count below `i`.
struct PrefixSums {
    bins: Vec<f64>,
    sum: Vec<f64>,
    sum_x_ln_x: Vec<f64>,
    nonempty: Vec<usize>,
}

impl PrefixSums {
    fn new(counts: &[u64]) -> Self {
        let mut bins: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        bins[0] = bins[1];
        let n = bins.len();
        let mut sum = vec![0f64; n + 1];
        let mut sum_x_ln_x = vec![0f64; n + 1];
        let mut nonempty = vec![0usize; n + 1];
        for (j, &b) in bins.iter().enumerate() {
            sum[j + 1] = sum[j] + b;
            sum_x_ln_x[j + 1] = sum_x_ln_x[j] + x_ln_x(b);
            nonempty[j + 1] = nonempty[j] + usize::from(b > 0.0);
        }
        PrefixSums {
            bins,
            sum,
            sum_x_ln_x,
            nonempty,
        }
    }

    fn divergence(&self, i: usize) -> f64 {
        let total = self.sum[self.bins.len()];
        let below = self.sum[i];
        let outliers = total - below;
        let last = self.bins[i - 1];
        if below == 0.0 || (last == 0.0 && outliers > 0.0) {
            return f64::INFINITY;
        }
        // sum P ln P: bins below i-1 as they are, the last one with the outliers.
        let p_ln_p = self.sum_x_ln_x[i - 1] + x_ln_x(last + outliers);
        // sum P ln Q, level by level: Q is S/c on each of the level's c non-empty bins,
        // and P is non-zero only there.
        let mut p_ln_q = 0.0;
        for k in 0..ENTROPY_LEVELS {
            let lo = (k * i).div_ceil(ENTROPY_LEVELS);
            let hi = ((k + 1) * i).div_ceil(ENTROPY_LEVELS);
            let c = self.nonempty[hi] - self.nonempty[lo];
            if c == 0 {
                continue;
            }
            let s = self.sum[hi] - self.sum[lo];
            let p = if hi == i { s + outliers } else { s };
            p_ln_q += p * (s / c as f64).ln();
        }
        (p_ln_p - p_ln_q) / total + (below / total).ln()
    }
}

/// `x ln x`, 0 at 0.
fn x_ln_x(x: f64) -> f64 {
    if x > 0.0 {
        x * x.ln()
    } else {
        0.0
    }
}

/// The bin index whose edge is the percentile calibrator's `amax`: one past the first bin
/// where the cumulative count reaches `p`% of the total (to 1e-12 relative, so that a
/// share reached exactly, 9999 of 10000 for 99.99, counts as reached despite `p`'s
/// binary rounding).
pub fn percentile_bin(counts: &[u64], p: f64) -> usize {
    let total: u64 = counts.iter().sum();
    let target = p * total as f64 * (1.0 - 1e-12);
    let mut cum = 0u64;
    for (j, &c) in counts.iter().enumerate() {
        cum += c;
        if cum as f64 * 100.0 >= target {
            return j + 1;
        }
    }
    counts.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_percentiles() {
        assert_eq!(
            "entropy".parse::<Calibrator>().unwrap(),
            Calibrator::Entropy
        );
        assert_eq!("minmax".parse::<Calibrator>().unwrap(), Calibrator::MinMax);
        assert_eq!(
            "percentile".parse::<Calibrator>().unwrap(),
            Calibrator::Percentile(99.99)
        );
        assert_eq!(
            "percentile:99.9".parse::<Calibrator>().unwrap(),
            Calibrator::Percentile(99.9)
        );
        for bad in [
            "",
            "kl",
            "percentile:",
            "percentile:0",
            "percentile:101",
            "percentile:x",
        ] {
            let e = bad.parse::<Calibrator>().unwrap_err().to_string();
            assert!(e.contains("unknown calibrator"), "{bad}: {e}");
        }
        assert_eq!(Calibrator::Percentile(99.9).to_string(), "percentile:99.9");
    }

    #[test]
    fn zero_histograms_have_zero_range() {
        let mut h = AbsHistogram::new();
        h.add(&[0.0; 10]);
        for c in [
            Calibrator::Entropy,
            Calibrator::MinMax,
            Calibrator::Percentile(99.0),
        ] {
            assert_eq!(c.amax(&h), 0.0);
        }
    }

    #[test]
    fn short_histograms_take_the_whole_range() {
        assert_eq!(entropy_bin(&[5, 4, 3]), 3);
    }
}
