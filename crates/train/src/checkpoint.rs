//! Resumable checkpoints `OUT/checkpoint-N/`: the adapter (PEFT format), the optimiser moments
//! and the trainer state (step, losses so far). The batch plan is a pure function of the seed,
//! so the step number is the data position. Written into a temporary folder, then renamed.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use medtune_model::ComputeDType;
use medtune_model::checkpoint::{HostTensor, WeightFiles, WeightSource, write_safetensors};
use medtune_model::qwen3::{LoraConfig, Qwen3};

use crate::error::TrainError;
use crate::optim::AdamW;

const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "trainer_state.json";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Optimiser steps completed.
    pub step: usize,
    pub epoch: usize,
    /// Loss of every step so far.
    pub losses: Vec<f64>,
    /// f16 dynamic loss scale and the good steps since it last changed.
    #[serde(default = "initial_loss_scale")]
    pub loss_scale: f64,
    #[serde(default)]
    pub good_steps: usize,
}

fn initial_loss_scale() -> f64 {
    65_536.0
}

impl Default for TrainerState {
    fn default() -> Self {
        Self {
            step: 0,
            epoch: 0,
            losses: Vec::new(),
            loss_scale: initial_loss_scale(),
            good_steps: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainerState,
}

fn err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Invalid(format!("{}: {e}", path.display()))
}

impl Checkpoint {
    /// Writes `out/checkpoint-{step}` and returns its path.
    pub fn save(
        out: &Path,
        model: &Qwen3,
        optim: &AdamW,
        state: &TrainerState,
        lora: &LoraConfig,
        base_model: &str,
    ) -> Result<PathBuf, TrainError> {
        let dir = out.join(format!("checkpoint-{}", state.step));
        let tmp = out.join(format!(".checkpoint-{}.partial", state.step));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
        model.save_adapter(&tmp, lora, base_model)?;
        let mut tensors = Vec::new();
        for (i, (m, v)) in optim.m.iter().zip(&optim.v).enumerate() {
            tensors.push((
                format!("m.{i:05}"),
                HostTensor::from_tensor(m.clone(), ComputeDType::F32),
            ));
            tensors.push((
                format!("v.{i:05}"),
                HostTensor::from_tensor(v.clone(), ComputeDType::F32),
            ));
        }
        tensors.push((
            "step".into(),
            HostTensor::from_f32(&[optim.step as f32], vec![1], ComputeDType::F32),
        ));
        write_safetensors(&tmp.join(OPTIMIZER), &tensors)?;
        let text = serde_json::to_string_pretty(state).expect("json");
        std::fs::write(tmp.join(STATE), text).map_err(|e| err(&tmp, e))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| err(&dir, e))?;
        Ok(dir)
    }

    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join(STATE);
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e))?;
        let state = serde_json::from_str(&text).map_err(|e| err(&path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            state,
        })
    }

    /// Puts the adapter and optimiser state back (the model must already carry adapters of the
    /// same shape, e.g. freshly attached).
    pub fn restore(
        &self,
        model: &mut Qwen3,
        optim: &mut AdamW,
        device: &Device,
    ) -> Result<(), TrainError> {
        model.load_adapter(&self.dir, device)?;
        let path = self.dir.join(OPTIMIZER);
        let files = WeightFiles::open_files(&self.dir, std::slice::from_ref(&path))?;
        let mut names: Vec<String> = files.names().map(str::to_string).collect();
        names.sort();
        let load = |name: &str| -> Result<Tensor<2>, TrainError> {
            let raw = files
                .raw(name)
                .ok_or_else(|| err(&path, format!("no tensor {name}")))?;
            let shape: [usize; 2] = raw
                .shape
                .try_into()
                .map_err(|_| err(&path, format!("{name} is not 2-D")))?;
            let t = files.load::<2>(name, shape, ComputeDType::F32, device)?;
            // Moments live on the inner backend, like the gradients they combine with.
            Ok(t.inner())
        };
        optim.m = names
            .iter()
            .filter(|n| n.starts_with("m."))
            .map(|n| load(n))
            .collect::<Result<_, _>>()?;
        optim.v = names
            .iter()
            .filter(|n| n.starts_with("v."))
            .map(|n| load(n))
            .collect::<Result<_, _>>()?;
        let step = files
            .raw("step")
            .ok_or_else(|| err(&path, "no tensor step"))?;
        optim.step = f32::from_le_bytes(step.data[..4].try_into().expect("4 bytes")) as u64;
        Ok(())
    }
}
