//! A histogram of `|x|`, as pytorch-quantization's `HistogramCalibrator` collects it.
//!
//! The rule: the first batch with a non-zero value sets the range `[0, max|x|]`, split into
//! `bins` (2048) equal bins; a later batch reaching past the range appends bins of the same
//! width until it fits, so earlier counts never move. A value equal to a bin's upper edge
//! counts in the bin above it, except the range's maximum, which counts in the last bin.
//! Non-finite values (NaN, infinities) are not binned but counted apart, for the caller to
//! report. Two departures from pytorch-quantization, both for inputs it cannot handle:
//! batches that are all zeros before any range is set are held as zeros and land in bin 0
//! once a range exists (pytorch-quantization would divide by a zero width); and a range
//! that would need more than [`MAX_BINS`] bins is coarsened by merging neighbouring bins
//! (doubling the width, as TensorRT grows its histogram) so a single huge value cannot
//! exhaust memory.

/// Bins of a new histogram (pytorch-quantization's default).
pub const DEFAULT_BINS: usize = 2048;

/// The most bins a histogram grows to before neighbouring bins are merged.
pub const MAX_BINS: usize = 1 << 16;

/// Counts of `|x|` in equal-width bins starting at 0.
#[derive(Clone, Debug)]
pub struct AbsHistogram {
    counts: Vec<u64>,
    /// Bin width; 0 while no range is set.
    width: f64,
    initial_bins: usize,
    /// Finite values seen while no range was set (all of them zero).
    pending_zeros: u64,
    max_abs: f32,
    finite: u64,
    non_finite: u64,
}

impl Default for AbsHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl AbsHistogram {
    /// A histogram that will start with [`DEFAULT_BINS`] bins.
    pub fn new() -> Self {
        Self::with_bins(DEFAULT_BINS)
    }

    /// A histogram whose first range is split into `bins` bins (at least 1, at most
    /// [`MAX_BINS`]).
    pub fn with_bins(bins: usize) -> Self {
        AbsHistogram {
            counts: Vec::new(),
            width: 0.0,
            initial_bins: bins.clamp(1, MAX_BINS),
            pending_zeros: 0,
            max_abs: 0.0,
            finite: 0,
            non_finite: 0,
        }
    }

    /// Add one batch of values. Returns how many of them were non-finite (not binned).
    pub fn add(&mut self, values: &[f32]) -> u64 {
        let mut batch_max = 0f32;
        let mut bad = 0u64;
        for &v in values {
            if v.is_finite() {
                batch_max = batch_max.max(v.abs());
            } else {
                bad += 1;
            }
        }
        self.non_finite += bad;
        let finite = values.len() as u64 - bad;
        self.finite += finite;
        self.max_abs = self.max_abs.max(batch_max);
        if self.width == 0.0 {
            if batch_max == 0.0 {
                self.pending_zeros += finite;
                return bad;
            }
            self.width = f64::from(batch_max) / self.initial_bins as f64;
            self.counts = vec![0; self.initial_bins];
            self.counts[0] = std::mem::take(&mut self.pending_zeros);
        } else if f64::from(batch_max) > self.range_max() {
            self.grow_to(f64::from(batch_max));
        }
        let last = self.counts.len() - 1;
        let inv = 1.0 / self.width;
        for &v in values {
            if v.is_finite() {
                let i = ((f64::from(v.abs()) * inv) as usize).min(last);
                self.counts[i] += 1;
            }
        }
        bad
    }

    /// Append bins of the current width until `max` is covered, merging neighbours first
    /// when that would take more than `MAX_BINS` bins.
    fn grow_to(&mut self, max: f64) {
        let bins_for = |width: f64| (max / width).ceil().max(1.0);
        // A power of two, held as f64: a value 1e30 times the first range needs ~2^100.
        let mut factor = 1f64;
        while bins_for(self.width * factor) > MAX_BINS as f64 {
            factor *= 2.0;
        }
        if factor > 1.0 {
            let len = self.counts.len();
            // A factor past the bin count merges everything into the new first bin.
            let chunk = if factor >= len as f64 {
                len
            } else {
                factor as usize
            };
            let merged = self.counts.chunks(chunk).map(|c| c.iter().sum()).collect();
            self.counts = merged;
            self.width *= factor;
        }
        let mut n = bins_for(self.width) as usize;
        // `ceil` of a rounded quotient can fall one short of covering `max`.
        if (n as f64) * self.width < max && n < MAX_BINS {
            n += 1;
        }
        if n > self.counts.len() {
            self.counts.resize(n, 0);
        }
    }

    /// The counts per bin (empty while no non-zero value has been seen).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The width of every bin (0 while no range is set).
    pub fn bin_width(&self) -> f64 {
        self.width
    }

    /// The lower edge of bin `i` (`edge(counts().len())` is the range's top).
    pub fn edge(&self, i: usize) -> f64 {
        i as f64 * self.width
    }

    /// The top of the binned range.
    pub fn range_max(&self) -> f64 {
        self.edge(self.counts.len())
    }

    /// The exact largest `|x|` seen among finite values.
    pub fn max_abs(&self) -> f32 {
        self.max_abs
    }

    /// Finite values seen (binned, or held as zeros while no range is set).
    pub fn finite_count(&self) -> u64 {
        self.finite
    }

    /// NaN and infinite values seen (never binned).
    pub fn non_finite_count(&self) -> u64 {
        self.non_finite
    }

    /// No value but zeros (or nothing) has been seen: there is no range to calibrate.
    pub fn is_all_zero(&self) -> bool {
        self.width == 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_batch_sets_the_range() {
        let mut h = AbsHistogram::with_bins(4);
        assert_eq!(h.add(&[-4.0, 0.5, 1.0, 3.9, 2.0]), 0);
        assert_eq!(h.bin_width(), 1.0);
        // 0.5 -> 0, 1.0 -> 1 (lower edge belongs to the bin), 2.0 -> 2, 3.9 and |-4| -> 3.
        assert_eq!(h.counts(), &[1, 1, 1, 2]);
        assert_eq!(h.max_abs(), 4.0);
        assert_eq!(h.range_max(), 4.0);
    }

    #[test]
    fn later_batches_append_bins_of_the_same_width() {
        let mut h = AbsHistogram::with_bins(4);
        h.add(&[4.0]);
        h.add(&[1.5, 6.5]);
        assert_eq!(h.bin_width(), 1.0);
        assert_eq!(h.counts(), &[0, 1, 0, 1, 0, 0, 1]);
        assert_eq!(h.range_max(), 7.0);
        // A batch inside the range changes no widths.
        h.add(&[6.9, 0.1]);
        assert_eq!(h.counts(), &[1, 1, 0, 1, 0, 0, 2]);
        assert_eq!(h.finite_count(), 5);
    }

    #[test]
    fn growth_lands_exactly_on_a_bin_edge() {
        let mut h = AbsHistogram::with_bins(2);
        h.add(&[2.0]);
        h.add(&[4.0]);
        assert_eq!(h.counts(), &[0, 1, 0, 1]);
    }

    #[test]
    fn zeros_before_a_range_go_to_bin_zero() {
        let mut h = AbsHistogram::with_bins(4);
        h.add(&[0.0, -0.0, 0.0]);
        assert!(h.is_all_zero());
        assert!(h.counts().is_empty());
        h.add(&[8.0]);
        assert_eq!(h.counts(), &[3, 0, 0, 1]);
    }

    #[test]
    fn non_finite_values_are_counted_apart() {
        let mut h = AbsHistogram::with_bins(4);
        assert_eq!(h.add(&[f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY]), 3);
        assert_eq!(h.non_finite_count(), 3);
        assert_eq!(h.finite_count(), 1);
        assert_eq!(h.max_abs(), 1.0);
        assert_eq!(h.counts().iter().sum::<u64>(), 1);
    }

    #[test]
    fn a_huge_value_merges_bins_instead_of_exhausting_memory() {
        let mut h = AbsHistogram::with_bins(DEFAULT_BINS);
        h.add(&[1.0, 0.25]);
        h.add(&[1.0e30]);
        assert!(h.counts().len() <= MAX_BINS);
        assert!(h.range_max() >= 1.0e30);
        assert_eq!(h.counts().iter().sum::<u64>(), 3);
        assert_eq!(*h.counts().last().unwrap(), 1);
    }
}
