//! The supervised fine-tuning loop: batches → loss on answer tokens → accumulated LoRA
//! gradients → clip → AdamW, with a schedule, per-step metrics and resumable checkpoints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use medtune_model::qwen3::{LoadedModel, LoraConfig};

use crate::batching::{epoch_batches, pack_examples};
use crate::checkpoint::{Checkpoint, TrainerState};
use crate::error::TrainError;
use crate::examples::Example;
use crate::flops::step_flops;
use crate::loss::{TrainBatch, target_nll, target_nll_sum};
use crate::metrics::StepMetrics;
use crate::optim::{AdamW, AdamWConfig, accumulate, global_norm, lora_grads};
use crate::schedule::{Schedule, ScheduleKind};
use medtune_model::ComputeDType;

/// Good f16 steps after which the loss scale doubles (torch's GradScaler default).
const GROWTH_INTERVAL: usize = 2000;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainSettings {
    pub epochs: usize,
    /// Stop after this many optimiser steps (overrides `epochs` when set).
    pub max_steps: Option<usize>,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub lr: f64,
    pub schedule: ScheduleKind,
    pub warmup_ratio: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    pub save_every: Option<usize>,
    pub adamw: AdamWConfig,
    pub pad_id: u32,
    /// Pack several examples into rows of at most this many tokens (no attention across them).
    pub pack_length: Option<usize>,
}

/// The units batches are made of: single examples, or packs of them with `pack_length`.
pub fn training_units(train: &[Example], settings: &TrainSettings) -> Vec<Vec<usize>> {
    match settings.pack_length {
        Some(max) => pack_examples(&train.iter().map(|e| e.ids.len()).collect::<Vec<_>>(), max),
        None => (0..train.len()).map(|i| vec![i]).collect(),
    }
}

/// Steps per epoch and in total for `num_units` training units.
pub fn plan_steps(num_units: usize, settings: &TrainSettings) -> (usize, usize) {
    let batches = num_units.div_ceil(settings.batch_size.max(1));
    let per_epoch = batches.div_ceil(settings.grad_accum.max(1)).max(1);
    let total = settings
        .max_steps
        .unwrap_or(per_epoch * settings.epochs.max(1));
    (per_epoch, total)
}

/// Mean loss over `examples` (no gradients), for validation.
pub fn evaluate_loss(
    model: &LoadedModel,
    examples: &[Example],
    batch_size: usize,
    pad_id: u32,
) -> f64 {
    let mut nll = 0.0;
    let mut count = 0usize;
    for chunk in examples.chunks(batch_size.max(1)) {
        let seqs: Vec<(&[u32], &[bool])> = chunk.iter().map(Example::masked).collect();
        let batch = TrainBatch::from_masked(&seqs, pad_id);
        if batch.num_targets() == 0 {
            continue;
        }
        nll += target_nll_sum(model, &batch);
        count += batch.num_targets();
    }
    nll / count.max(1) as f64
}

pub struct Trainer<'a> {
    pub model: &'a mut LoadedModel,
    pub lora: LoraConfig,
    pub settings: TrainSettings,
    pub out: PathBuf,
    pub base_model_name: String,
    /// Peak FLOP/s of the device, for MFU (None: not reported).
    pub peak_flops: Option<f64>,
}

impl Trainer<'_> {
    /// Runs (or resumes, from `state`) training on `train`, calling `on_step` after every
    /// optimiser step. Returns the metrics of every step run in this call.
    pub fn run(
        &mut self,
        train: &[Example],
        val: &[Example],
        resume: Option<Checkpoint>,
        mut on_step: impl FnMut(&StepMetrics),
    ) -> Result<Vec<StepMetrics>, TrainError> {
        let s = self.settings.clone();
        let units = training_units(train, &s);
        let (steps_per_epoch, total_steps) = plan_steps(units.len(), &s);
        let schedule = Schedule {
            kind: s.schedule,
            peak_lr: s.lr,
            warmup_steps: Schedule::warmup_from_ratio(s.warmup_ratio, total_steps),
            total_steps,
        };
        let lengths: Vec<usize> = units
            .iter()
            .map(|u| u.iter().map(|&i| train[i].ids.len()).sum())
            .collect();
        let mut optim = AdamW::new(s.adamw.clone());
        let mut state = TrainerState::default();
        let mut last_good: Option<PathBuf> = None;
        if let Some(ckpt) = resume {
            ckpt.restore(&mut self.model.model, &mut optim, &self.model.device)?;
            state = ckpt.state.clone();
            last_good = Some(ckpt.dir.clone());
        }
        let lora_params = self.model.model.num_lora_params();
        let mut history = Vec::new();
        let mut batches_cache: Option<(usize, Vec<Vec<usize>>)> = None;
        while state.step < total_steps {
            let step = state.step;
            let epoch = step / steps_per_epoch;
            let within = step % steps_per_epoch;
            let batches = match &batches_cache {
                Some((e, b)) if *e == epoch => b,
                _ => {
                    batches_cache =
                        Some((epoch, epoch_batches(&lengths, s.batch_size, s.seed, epoch)));
                    &batches_cache.as_ref().unwrap().1
                }
            };
            let first = within * s.grad_accum;
            let micro: Vec<TrainBatch> = batches
                [first.min(batches.len())..(first + s.grad_accum).min(batches.len())]
                .iter()
                .map(|idx| {
                    let rows: Vec<Vec<(&[u32], &[bool])>> = idx
                        .iter()
                        .map(|&u| units[u].iter().map(|&i| train[i].masked()).collect())
                        .collect();
                    if s.pack_length.is_some() {
                        TrainBatch::from_masked_packs(&rows, s.pad_id)
                    } else {
                        let seqs: Vec<(&[u32], &[bool])> = rows.into_iter().flatten().collect();
                        TrainBatch::from_masked(&seqs, s.pad_id)
                    }
                })
                .collect();
            let targets: usize = micro.iter().map(TrainBatch::num_targets).sum();
            let flops = step_flops(&self.model.config, lora_params, &micro);
            let tokens: usize = micro.iter().map(TrainBatch::num_tokens).sum();
            let start = Instant::now();
            // Dropout masks come from the device RNG: reseeding per step makes a resumed run
            // draw the same masks as an uninterrupted one.
            // f16 gradients underflow without loss scaling: scale the loss up, the gradients
            // back down, and on overflow halve the scale and redo the step (dynamic loss scaling,
            // as torch's GradScaler, but retrying rather than skipping the step).
            let scaled = self.model.dtype == ComputeDType::F16;
            let (mut grads, loss_sum, grad_norm) = loop {
                self.model.device.seed(s.seed.wrapping_add(step as u64));
                let scale = if scaled { state.loss_scale } else { 1.0 };
                let mut grads = None;
                let mut loss_sum = 0.0;
                for batch in &micro {
                    if batch.num_targets() == 0 {
                        continue;
                    }
                    // Normalised by the whole step's target count, so accumulation equals one
                    // big batch.
                    let norm = 1.0 / targets.max(1) as f64;
                    let nll = target_nll(self.model, batch);
                    loss_sum += nll.sum * norm;
                    let g = nll.backward(norm * scale);
                    let g = lora_grads(&self.model.model, &g);
                    let g = if scale != 1.0 {
                        g.into_iter().map(|t| t.div_scalar(scale)).collect()
                    } else {
                        g
                    };
                    accumulate(&mut grads, g);
                }
                let Some(grads) = grads else {
                    return Err(TrainError::Invalid(format!(
                        "step {step}: no supervised tokens (are all targets truncated away?)"
                    )));
                };
                let grad_norm = global_norm(&grads);
                let finite = loss_sum.is_finite() && grad_norm.is_finite();
                if finite {
                    if scaled {
                        state.good_steps += 1;
                        if state.good_steps.is_multiple_of(GROWTH_INTERVAL) {
                            state.loss_scale *= 2.0;
                        }
                    }
                    break (grads, loss_sum, grad_norm);
                }
                if scaled && loss_sum.is_finite() && state.loss_scale > 1.0 {
                    state.loss_scale /= 2.0;
                    state.good_steps = 0;
                    continue;
                }
                return Err(TrainError::NonFinite {
                    step,
                    loss: loss_sum,
                    last_good,
                });
            };
            if s.max_grad_norm > 0.0 && grad_norm > s.max_grad_norm {
                let factor = s.max_grad_norm / (grad_norm + 1e-6);
                grads = grads.into_iter().map(|g| g.mul_scalar(factor)).collect();
            }
            let lr = schedule.lr(step);
            optim.update(&mut self.model.model, grads, lr);
            let step_seconds = start.elapsed().as_secs_f64();
            state.step += 1;
            state.epoch = epoch;
            let tokens_per_s = tokens as f64 / step_seconds;
            let mut metrics = StepMetrics {
                step: state.step,
                epoch,
                loss: loss_sum,
                lr,
                grad_norm,
                step_seconds,
                tokens,
                tokens_per_s,
                mfu: self.peak_flops.map(|p| flops / step_seconds / p),
                val_loss: None,
            };
            let at_save = s.save_every.is_some_and(|n| n > 0 && state.step % n == 0);
            let at_end = state.step == total_steps;
            if !val.is_empty() && (at_save || at_end) {
                metrics.val_loss = Some(evaluate_loss(self.model, val, s.batch_size, s.pad_id));
            }
            state.losses.push(loss_sum);
            if at_save && !at_end {
                let dir = Checkpoint::save(
                    &self.out,
                    &self.model.model,
                    &optim,
                    &state,
                    &self.lora,
                    &self.base_model_name,
                )?;
                last_good = Some(dir);
            }
            on_step(&metrics);
            history.push(metrics);
        }
        self.model
            .model
            .save_adapter(&self.out, &self.lora, &self.base_model_name)?;
        Ok(history)
    }
}

/// `OUT/checkpoint-N` folders, newest last.
pub fn checkpoints(out: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = name.strip_prefix("checkpoint-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}
