//! Cross-entropy on the supervised (answer) tokens only. The language-model head is applied only
//! at those positions: with Qwen3's 151,936-token vocabulary the head over every position is most
//! of a small model's step.

use burn::tensor::{DType, Gradients, Int, Tensor, TensorData};
use medtune_model::qwen3::{ForwardBatch, LoadedModel, cast_to};

use crate::head_loss::head_nll;

/// A batch of token sequences with the positions whose next token is a target.
#[derive(Clone, Debug)]
pub struct TrainBatch {
    pub inputs: ForwardBatch,
    /// Flat indices `row * seq + position` whose output predicts a target token.
    pub positions: Vec<usize>,
    /// The token each of `positions` must predict.
    pub targets: Vec<u32>,
}

impl TrainBatch {
    /// Builds a right-padded batch from sequences and, for each, the index where its target
    /// (supervised) tokens start: tokens `[start, len)` are predicted from the positions before.
    pub fn from_sequences(seqs: &[(Vec<u32>, usize)], pad_id: u32) -> Self {
        let ids: Vec<Vec<u32>> = seqs.iter().map(|(s, _)| s.clone()).collect();
        let inputs = ForwardBatch::padded(&ids, medtune_model::qwen3::PaddingSide::Right, pad_id);
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (row, (seq, start)) in seqs.iter().enumerate() {
            let first = (*start).max(1);
            for (t, &id) in seq.iter().enumerate().skip(first) {
                positions.push(row * inputs.seq + t - 1);
                targets.push(id);
            }
        }
        Self {
            inputs,
            positions,
            targets,
        }
    }

    /// Packs several sequences per row (`rows[r]` = the sequences of row r, each with its target
    /// start); attention stays within each sequence (see [`ForwardBatch::packed`]).
    pub fn from_packs(rows: &[Vec<(Vec<u32>, usize)>], pad_id: u32) -> Self {
        let ids: Vec<Vec<Vec<u32>>> = rows
            .iter()
            .map(|r| r.iter().map(|(s, _)| s.clone()).collect())
            .collect();
        let inputs = ForwardBatch::packed(&ids, pad_id);
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (row, samples) in rows.iter().enumerate() {
            let mut offset = 0;
            for (seq, start) in samples {
                for (t, &id) in seq.iter().enumerate().skip((*start).max(1)) {
                    positions.push(row * inputs.seq + offset + t - 1);
                    targets.push(id);
                }
                offset += seq.len();
            }
        }
        Self {
            inputs,
            positions,
            targets,
        }
    }

    /// Number of supervised tokens.
    pub fn num_targets(&self) -> usize {
        self.targets.len()
    }

    /// Non-padding tokens fed through the model.
    pub fn num_tokens(&self) -> usize {
        self.inputs.valid.iter().filter(|v| **v).count()
    }
}

/// The negative log-likelihood of a batch's targets, summed over them, and the way back into the
/// model's graph for its gradient.
pub struct TargetNll {
    /// Σ −log p(target) over the batch's targets.
    pub sum: f64,
    /// `Σ h ⊙ ∂sum/∂h` over the supervised hidden states `h`, the gradient held constant: its
    /// gradient with respect to the model is the NLL's (see [`crate::head_loss`]).
    surrogate: Option<Tensor<1>>,
}

impl TargetNll {
    /// Backpropagates `factor × sum` (a normalisation and a loss scale) through the model.
    ///
    /// # Panics
    /// When the NLL was computed without its gradient ([`target_nll_sum`]).
    pub fn backward(self, factor: f64) -> Gradients {
        self.surrogate
            .expect("target_nll was asked for its gradient")
            .mul_scalar(factor)
            .backward()
    }
}

/// The summed negative log-likelihood of `batch`'s targets with what [`TargetNll::backward`] needs
/// for its gradient. The head and cross-entropy run fused, outside autodiff ([`head_nll`]).
pub fn target_nll(model: &LoadedModel, batch: &TrainBatch) -> TargetNll {
    nll(model, batch, true)
}

/// The summed negative log-likelihood of `batch`'s targets, its value only (validation, scoring).
pub fn target_nll_sum(model: &LoadedModel, batch: &TrainBatch) -> f64 {
    nll(model, batch, false).sum
}

fn nll(model: &LoadedModel, batch: &TrainBatch, with_grad: bool) -> TargetNll {
    let hidden = model.forward(&batch.inputs, None);
    let device = hidden.device();
    let [b, t, h] = hidden.dims();
    let index: Vec<i64> = batch.positions.iter().map(|&p| p as i64).collect();
    let n = index.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
    let picked = hidden.reshape([b * t, h]).select(0, index);
    let head = model.model.head_weight();
    let (sum, grad) = head_nll(picked.clone(), head, &batch.targets, with_grad);
    let surrogate = grad.map(|grad| (cast_to(picked, DType::F32) * grad).sum());
    TargetNll { sum, surrogate }
}
