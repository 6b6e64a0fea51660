//! AdamW over the LoRA factors only, with global-norm gradient clipping, written by hand so
//! that its whole state (moments and step count) saves as plain tensors for exact resumption.
//! The arithmetic follows `torch.optim.AdamW` (decoupled weight decay applied first, bias
//! corrections folded into the step size and the denominator).

use burn::module::Param;
use burn::tensor::{Gradients, Tensor};
use medtune_model::qwen3::{LoraTarget, Qwen3};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// transformers' Trainer defaults.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The adapter factors in a fixed order: for each (layer, target) with an adapter, A then B.
pub fn lora_slots(model: &Qwen3) -> Vec<(usize, LoraTarget)> {
    model.loras().iter().map(|(l, t, _)| (*l, *t)).collect()
}

/// Gradients of every adapter factor (A then B per slot), on the inner (non-autodiff) backend.
/// A factor without a gradient (not reached by the loss) gets zeros.
pub fn lora_grads(model: &Qwen3, grads: &Gradients) -> Vec<Tensor<2>> {
    let mut out = Vec::new();
    for (_, _, lora) in model.loras() {
        for p in [&lora.a, &lora.b] {
            let value = p.val();
            let g = value
                .grad(grads)
                .unwrap_or_else(|| value.clone().inner().zeros_like());
            out.push(g);
        }
    }
    out
}

/// Adds `more` into `acc` element-wise (gradient accumulation).
pub fn accumulate(acc: &mut Option<Vec<Tensor<2>>>, more: Vec<Tensor<2>>) {
    *acc = Some(match acc.take() {
        None => more,
        Some(prev) => prev.into_iter().zip(more).map(|(a, b)| a + b).collect(),
    });
}

/// The L2 norm of all gradients together.
pub fn global_norm(grads: &[Tensor<2>]) -> f64 {
    grads
        .iter()
        .map(|g| g.clone().square().sum().into_scalar::<f32>() as f64)
        .sum::<f64>()
        .sqrt()
}

pub struct AdamW {
    pub config: AdamWConfig,
    /// Optimiser steps taken so far.
    pub step: u64,
    /// First and second moments, one per factor in [`lora_grads`] order.
    pub m: Vec<Tensor<2>>,
    pub v: Vec<Tensor<2>>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// One update of every adapter factor of `model` with `grads` (already clipped and
    /// normalised) at learning rate `lr`.
    pub fn update(&mut self, model: &mut Qwen3, grads: Vec<Tensor<2>>, lr: f64) {
        let c = self.config.clone();
        self.step += 1;
        if self.m.is_empty() {
            self.m = grads.iter().map(|g| g.zeros_like()).collect();
            self.v = grads.iter().map(|g| g.zeros_like()).collect();
        }
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        let step_size = lr / bias1;
        let bias2_sqrt = bias2.sqrt();
        let slots = lora_slots(model);
        let mut grads = grads.into_iter();
        for (slot, (layer, target)) in slots.into_iter().enumerate() {
            let lora = model
                .linear_mut(layer, target)
                .lora
                .as_mut()
                .expect("slot has an adapter");
            for (k, param) in [&mut lora.a, &mut lora.b].into_iter().enumerate() {
                let i = 2 * slot + k;
                let g = grads.next().expect("one gradient per factor");
                let m = self.m[i]
                    .clone()
                    .mul_scalar(c.beta1)
                    .add(g.clone().mul_scalar(1.0 - c.beta1));
                let v = self.v[i]
                    .clone()
                    .mul_scalar(c.beta2)
                    .add(g.square().mul_scalar(1.0 - c.beta2));
                let value = param.val();
                // The updated parameter must keep the device's gradient-checkpointing strategy,
                // or autodiff refuses to mix it with activations on the next forward pass.
                let strategy = value.gradient_checkpointing_strategy();
                let p = value.inner();
                let p = if c.weight_decay > 0.0 {
                    p.mul_scalar(1.0 - lr * c.weight_decay)
                } else {
                    p
                };
                let denom = v.clone().sqrt().div_scalar(bias2_sqrt).add_scalar(c.eps);
                let p = p - m.clone().div(denom).mul_scalar(step_size);
                let mut updated = Tensor::from_inner(p);
                if let Some(strategy) = strategy {
                    updated = updated.with_gradient_checkpointing_strategy(strategy);
                }
                *param = Param::from_tensor(updated.require_grad());
                self.m[i] = m;
                self.v[i] = v;
            }
        }
    }
}
