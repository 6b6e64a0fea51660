//! The statistics a reviewer needs to trust an accuracy: Wilson score intervals, the exact
//! McNemar test for paired answers, and calibration (expected calibration error with its
//! reliability bins).

use serde::Serialize;

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// An interval `[low, high]` for a proportion.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// Wilson score interval for `successes` out of `n` at normal quantile `z`. Unlike the Wald
/// interval it stays inside [0, 1] and behaves at 0 % and 100 %. `n = 0` gives `[0, 1]`.
pub fn wilson(successes: usize, n: usize, z: f64) -> Interval {
    if n == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    }
}

/// Exact (binomial) McNemar test: `b` pairs where only the first system was right, `c` where only
/// the second was. Two-sided p-value `min(1, 2 · P[X ≤ min(b, c)])` for `X ~ Binomial(b + c, ½)`;
/// 1 when there are no discordant pairs.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Sum the binomial pmf in log space: n may be in the thousands.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub low: f64,
    pub high: f64,
    pub count: usize,
    /// Mean confidence of the predictions in the bin.
    pub confidence: f64,
    /// Fraction of them that were right.
    pub accuracy: f64,
}

/// Expected calibration error over `bins` equal-width confidence bins (the usual 10):
/// `Σ_b (n_b / N) · |accuracy_b − confidence_b|`, with the bins for the reliability diagram.
/// `predictions` are `(confidence of the predicted option, was it right)`.
pub fn calibration(predictions: &[(f64, bool)], bins: usize) -> (f64, Vec<CalibrationBin>) {
    let bins = bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for &(conf, right) in predictions {
        let b = ((conf.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        sums[b].0 += 1;
        sums[b].1 += conf;
        sums[b].2 += usize::from(right);
    }
    let total = predictions.len().max(1) as f64;
    let mut ece = 0.0;
    let out = sums
        .iter()
        .enumerate()
        .map(|(i, &(count, conf_sum, right))| {
            let (confidence, accuracy) = if count == 0 {
                (0.0, 0.0)
            } else {
                (conf_sum / count as f64, right as f64 / count as f64)
            };
            ece += count as f64 / total * (accuracy - confidence).abs();
            CalibrationBin {
                low: i as f64 / bins as f64,
                high: (i + 1) as f64 / bins as f64,
                count,
                confidence,
                accuracy,
            }
        })
        .collect();
    (ece, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Reference values computed independently in Python from the closed form (they agree with
    /// statsmodels' `proportion_confint(method="wilson")` to the digits shown).
    #[test]
    fn wilson_matches_known_values() {
        let cases = [
            (50, 100, 0.403_831_5, 0.596_168_5),
            (0, 10, 0.0, 0.277_532_8),
            (10, 10, 0.722_467_2, 1.0),
            (81, 263, 0.255_288_5, 0.366_209_6),
            (1, 3, 0.061_491_9, 0.792_340_4),
        ];
        for (k, n, lo, hi) in cases {
            let i = wilson(k, n, Z95);
            assert!(
                close(i.low, lo, 1e-6) && close(i.high, hi, 1e-6),
                "{k}/{n}: {i:?}"
            );
        }
        assert_eq!(
            wilson(0, 0, Z95),
            Interval {
                low: 0.0,
                high: 1.0
            }
        );
    }

    /// Reference values from exact integer binomial sums in Python
    /// (`2 * sum(comb(n, i) for i in range(k + 1)) / 2**n`), and by hand: b=3, c=11 →
    /// 2·(1+14+91+364)/2¹⁴.
    #[test]
    fn mcnemar_matches_known_values() {
        assert!(close(mcnemar_exact(3, 11), 2.0 * 470.0 / 16384.0, 1e-12));
        assert!(close(mcnemar_exact(11, 3), 2.0 * 470.0 / 16384.0, 1e-12));
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert!(close(mcnemar_exact(0, 10), 2.0 / 1024.0, 1e-12));
        assert!(close(mcnemar_exact(40, 60), 0.056_887_933, 1e-8));
        // Large n stays finite and tiny.
        let p = mcnemar_exact(400, 600);
        assert!(close(p / 2.728_464_156e-10, 1.0, 1e-6), "{p}");
    }

    #[test]
    fn calibration_of_perfect_and_overconfident_models() {
        let perfect: Vec<(f64, bool)> = (0..10).map(|i| (1.0, i < 10)).collect();
        assert!(close(calibration(&perfect, 10).0, 0.0, 1e-12));
        // Always 90 % sure, right half the time: ECE 0.4.
        let over: Vec<(f64, bool)> = (0..10).map(|i| (0.9, i % 2 == 0)).collect();
        let (ece, bins) = calibration(&over, 10);
        assert!(close(ece, 0.4, 1e-12));
        assert_eq!(bins[9].count, 10);
        assert!(close(bins[9].accuracy, 0.5, 1e-12));
    }
}
