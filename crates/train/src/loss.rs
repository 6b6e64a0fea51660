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
        let masks: Vec<Vec<bool>> = seqs
            .iter()
            .map(|(s, start)| from_start(s.len(), *start))
            .collect();
        let seqs: Vec<(&[u32], &[bool])> = seqs
            .iter()
            .zip(&masks)
            .map(|((s, _), m)| (s.as_slice(), m.as_slice()))
            .collect();
        Self::from_masked(&seqs, pad_id)
    }

    /// Builds a right-padded batch from sequences and, for each token, whether it is a target
    /// (predicted, with loss, from the positions before it; the first token never is).
    pub fn from_masked(seqs: &[(&[u32], &[bool])], pad_id: u32) -> Self {
        let ids: Vec<Vec<u32>> = seqs.iter().map(|(s, _)| s.to_vec()).collect();
        let inputs = ForwardBatch::padded(&ids, medtune_model::qwen3::PaddingSide::Right, pad_id);
        let mut batch = Self {
            positions: Vec::new(),
            targets: Vec::new(),
            inputs,
        };
        for (row, (seq, mask)) in seqs.iter().enumerate() {
            batch.add_targets(row * batch.inputs.seq, seq, mask);
        }
        batch
    }

    /// Packs several sequences per row (`rows[r]` = the sequences of row r, each with its target
    /// start); attention stays within each sequence (see [`ForwardBatch::packed`]).
    pub fn from_packs(rows: &[Vec<(Vec<u32>, usize)>], pad_id: u32) -> Self {
        let masks: Vec<Vec<Vec<bool>>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|(s, start)| from_start(s.len(), *start))
                    .collect()
            })
            .collect();
        let rows: Vec<Vec<(&[u32], &[bool])>> = rows
            .iter()
            .zip(&masks)
            .map(|(r, m)| {
                r.iter()
                    .zip(m)
                    .map(|((s, _), m)| (s.as_slice(), m.as_slice()))
                    .collect()
            })
            .collect();
        Self::from_masked_packs(&rows, pad_id)
    }

    /// [`Self::from_packs`] with a target mask per sequence (as [`Self::from_masked`]).
    pub fn from_masked_packs(rows: &[Vec<(&[u32], &[bool])>], pad_id: u32) -> Self {
        let ids: Vec<Vec<Vec<u32>>> = rows
            .iter()
            .map(|r| r.iter().map(|(s, _)| s.to_vec()).collect())
            .collect();
        let inputs = ForwardBatch::packed(&ids, pad_id);
        let mut batch = Self {
            positions: Vec::new(),
            targets: Vec::new(),
            inputs,
        };
        for (row, samples) in rows.iter().enumerate() {
            let mut offset = row * batch.inputs.seq;
            for (seq, mask) in samples {
                batch.add_targets(offset, seq, mask);
                offset += seq.len();
            }
        }
        batch
    }

    /// The targets of one sequence laid out from flat slot `first`: token `t` (a target, `t ≥ 1`)
    /// is predicted at slot `first + t − 1`.
    fn add_targets(&mut self, first: usize, seq: &[u32], mask: &[bool]) {
        for (t, (&id, &target)) in seq.iter().zip(mask).enumerate().skip(1) {
            if target {
                self.positions.push(first + t - 1);
                self.targets.push(id);
            }
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

/// The target mask of a sequence of `len` tokens whose targets start at `start`.
fn from_start(len: usize, start: usize) -> Vec<bool> {
    (0..len).map(|t| t >= start).collect()
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
