//! Learning-rate schedules with linear warm-up, as transformers' `get_*_schedule_with_warmup`.

use std::f64::consts::PI;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Cosine,
    Linear,
    Constant,
}

impl FromStr for ScheduleKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cosine" => Ok(Self::Cosine),
            "linear" => Ok(Self::Linear),
            "constant" => Ok(Self::Constant),
            _ => Err(format!(
                "unknown schedule `{s}`: use cosine, linear or constant"
            )),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// Warm-up steps for a ratio, rounded up as transformers' `get_warmup_steps` does.
    pub fn warmup_from_ratio(ratio: f64, total_steps: usize) -> usize {
        (ratio * total_steps as f64).ceil() as usize
    }

    /// Learning rate for optimiser step `step` (0-based), as the LambdaLR multiplier of
    /// transformers gives it.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / decay_steps;
        let factor = match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => (1.0 - progress).max(0.0),
            ScheduleKind::Cosine => (0.5 * (1.0 + (PI * progress).cos())).max(0.0),
        };
        self.peak_lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_with_warmup_matches_transformers() {
        // transformers: get_cosine_schedule_with_warmup(opt, 2, 10) with lr 1.0 gives
        // [0, .5, 1, .9619, .8536, .6913, .5, .3087, .1464, .0381].
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            peak_lr: 1.0,
            warmup_steps: 2,
            total_steps: 10,
        };
        let want = [
            0.0, 0.5, 1.0, 0.9619, 0.8536, 0.6913, 0.5, 0.3087, 0.1464, 0.0381,
        ];
        for (i, w) in want.iter().enumerate() {
            assert!((s.lr(i) - w).abs() < 1e-4, "step {i}: {} vs {w}", s.lr(i));
        }
    }

    #[test]
    fn linear_and_constant() {
        let mut s = Schedule {
            kind: ScheduleKind::Linear,
            peak_lr: 2.0,
            warmup_steps: 0,
            total_steps: 4,
        };
        assert_eq!(
            (0..4).map(|i| s.lr(i)).collect::<Vec<_>>(),
            vec![2.0, 1.5, 1.0, 0.5]
        );
        s.kind = ScheduleKind::Constant;
        assert_eq!(s.lr(3), 2.0);
        assert_eq!(Schedule::warmup_from_ratio(0.05, 250), 13);
    }
}
