//! One LoRA training step against PEFT's: loss, gradients of every adapter factor, the AdamW
//! update, and logits with a PEFT-saved adapter (fixtures from tools/make_lora_fixtures.py).

use std::path::{Path, PathBuf};

use medtune_model::qwen3::{LoadedModel, peft_name};
use medtune_model::{ComputeDType, DeviceSpec};
use medtune_train::loss::{TrainBatch, target_nll};
use medtune_train::optim::{AdamW, AdamWConfig, lora_grads};
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures")
}

fn device() -> medtune_model::Device {
    let spec: DeviceSpec = std::env::var("MEDTUNE_TEST_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .unwrap();
    spec.device().unwrap()
}

struct File(Vec<u8>);

impl File {
    fn open(p: &Path) -> Self {
        Self(std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
    }
    fn f32(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("no tensor {name}"));
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
    fn i64(&self, name: &str) -> (Vec<usize>, Vec<i64>) {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st.tensor(name).unwrap();
        let v = t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (t.shape().to_vec(), v)
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check(base: &str) {
    let dir = fixtures().join("lora").join(format!("step_{base}"));
    let golden = File::open(&dir.join("golden.safetensors"));
    let batch_file = File::open(&dir.join("batch.safetensors"));
    let device = device().autodiff();
    let mut model =
        LoadedModel::from_dir(&fixtures().join(base), ComputeDType::F32, &device).unwrap();
    let vocab = model.config.vocab_size;

    // The batch: labels are -100 on the prompt and on padding.
    let (shape, ids) = batch_file.i64("input_ids");
    let (_, mask) = batch_file.i64("attention_mask");
    let (_, labels) = batch_file.i64("labels");
    let (rows, seq) = (shape[0], shape[1]);
    let seqs: Vec<(Vec<u32>, usize)> = (0..rows)
        .map(|r| {
            let row = r * seq..(r + 1) * seq;
            let len = mask[row.clone()].iter().filter(|m| **m == 1).count();
            let ids: Vec<u32> = ids[row.clone()][..len].iter().map(|&x| x as u32).collect();
            let start = labels[row].iter().position(|&l| l != -100).unwrap();
            (ids, start)
        })
        .collect();
    let batch = TrainBatch::from_sequences(&seqs, 0);

    // Without the adapter: transformers' base logits.
    let base_logits: Vec<f32> = model.batch_logits(&batch.inputs);
    model.model.load_adapter(&dir, &device).unwrap();
    let logits: Vec<f32> = model.batch_logits(&batch.inputs);
    let (want_base, want) = (golden.f32("base_logits"), golden.f32("logits"));
    let valid = |v: &[f32]| -> Vec<f32> {
        (0..rows * seq)
            .filter(|i| mask[*i] == 1)
            .flat_map(|i| v[i * vocab..(i + 1) * vocab].to_vec())
            .collect()
    };
    let d_base = max_diff(&valid(&base_logits), &valid(&want_base));
    let d = max_diff(&valid(&logits), &valid(&want));
    assert!(d_base <= 1e-4, "{base}: base logits differ by {d_base}");
    assert!(
        d <= 1e-4,
        "{base}: adapted logits differ from PEFT's by {d}"
    );
    assert!(
        max_diff(&valid(&logits), &valid(&base_logits)) > 1e-3,
        "adapter changed nothing"
    );

    // Loss: mean over supervised tokens, as transformers' causal-LM loss.
    let n = batch.num_targets() as f64;
    let nll = target_nll(&model, &batch);
    let value = (nll.sum / n) as f32;
    let want_loss = golden.f32("loss")[0];
    let rel = ((value - want_loss) / want_loss).abs();
    println!("{base}: loss {value} vs PEFT {want_loss} (rel {rel:.2e})");
    assert!(rel <= 1e-5, "{base}: loss rel error {rel}");

    let grads = nll.backward(1.0 / n);
    let ours = lora_grads(&model.model, &grads);
    let mut factors = Vec::new();
    for (layer, target, _) in model.model.loras() {
        factors.push(peft_name(layer, target, 'A'));
        factors.push(peft_name(layer, target, 'B'));
    }
    for (name, g) in factors.iter().zip(&ours) {
        let g: Vec<f32> = g.to_data().convert::<f32>().try_into_vec::<f32>().unwrap();
        let want = golden.f32(&format!("{name}.grad"));
        let rel = max_diff(&g, &want) / max_abs(&want).max(1e-12);
        assert!(rel <= 1e-3, "{base}: {name} grad rel error {rel}");
        assert!(max_abs(&want) > 0.0, "{name}: golden gradient is zero");
    }

    // One AdamW step, lr 1e-2.
    let mut opt = AdamW::new(AdamWConfig::default());
    opt.update(&mut model.model, ours, 1e-2);
    let after = File::open(&dir.join("after_step.safetensors"));
    for (name, t) in model.model.lora_tensors() {
        let got: Vec<f32> = t
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let d = max_diff(&got, &after.f32(&name));
        assert!(d <= 1e-5, "{base}: {name} after AdamW differs by {d}");
    }
}

#[test]
fn one_step_matches_peft_all_linear() {
    check("tied_gqa");
}

#[test]
fn one_step_matches_peft_rslora_q_v() {
    check("untied_hd32");
}
