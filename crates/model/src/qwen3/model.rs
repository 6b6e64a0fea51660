//! The whole decoder: embeddings, layers, final norm and the language-model head.

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};

use super::attention::{Attention, AttentionMask};
use super::batch::ForwardBatch;
use super::cache::KvCache;
use super::layers::{Linear, RmsNorm, cast_to, matmul_transposed};
use super::mlp::Mlp;
use super::rope::{Rope, RopeTables};
use crate::checkpoint::{WeightFiles, WeightSource};
use crate::config::Qwen3Config;
use crate::device::ComputeDType;
use crate::error::Result;

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        tables: &RopeTables,
        mask: &AttentionMask,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor<3> {
        let h =
            self.self_attn
                .forward(self.input_layernorm.forward(x.clone()), tables, mask, cache);
        let x = x + h;
        let h = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        x + h
    }

    /// The layer's output `[rows.len(), hidden]` at `rows` (indices into `x`'s `[b · t]` slots),
    /// or `None` where [`Attention::forward_rows`] does not apply.
    fn forward_rows(
        &self,
        x: Tensor<3>,
        tables: &RopeTables,
        mask: &AttentionMask,
        rows: &[usize],
    ) -> Option<Tensor<2>> {
        let h = self.self_attn.forward_rows(
            self.input_layernorm.forward(x.clone()),
            tables,
            mask,
            rows,
        )?;
        let x = (select_rows(x, rows) + h).unsqueeze_dim::<3>(0);
        let h = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        Some((x + h).squeeze_dim::<2>(0))
    }
}

/// `x` `[b, t, h]` at `rows` (indices into its `[b · t]` slots): `[rows.len(), h]`.
pub(crate) fn select_rows(x: Tensor<3>, rows: &[usize]) -> Tensor<2> {
    let [b, t, h] = x.dims();
    let device = x.device();
    let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [rows.len()]), &device);
    x.reshape([b * t, h]).select(0, index)
}

#[derive(Module, Debug)]
pub struct Qwen3 {
    pub embed_tokens: Param<Tensor<2>>,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `None` when the head is tied to the embeddings.
    pub lm_head: Option<Linear>,
}

/// A loaded model with what it needs beside its weights.
pub struct LoadedModel {
    pub model: Qwen3,
    pub config: Qwen3Config,
    pub rope: Rope,
    pub dtype: ComputeDType,
    pub device: Device,
}

fn frozen<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(t).set_require_grad(false)
}

impl LoadedModel {
    /// Whether the model computes on the CPU backend (where batches are split across threads
    /// rather than each operation, see `medtune_eval::scoring::last_logits`).
    pub fn on_cpu(&self) -> bool {
        #[cfg(feature = "flex")]
        {
            self.device == Device::flex()
        }
        #[cfg(not(feature = "flex"))]
        {
            false
        }
    }
}

impl Qwen3 {
    /// Loads every tensor of a Hugging Face Qwen3 checkpoint from `source`, converted to `dtype`.
    pub fn load(
        source: &impl WeightSource,
        cfg: &Qwen3Config,
        dtype: ComputeDType,
        device: &Device,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let get2 = |name: &str, shape: [usize; 2]| source.load(name, shape, dtype, device);
        let linear = |name: String, out: usize, inp: usize| {
            get2(&format!("{name}.weight"), [out, inp]).map(Linear::new)
        };
        let norm = |name: String, d: usize| {
            source
                .load(&format!("{name}.weight"), [d], dtype, device)
                .map(|w| RmsNorm::new(w, cfg.rms_norm_eps))
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            layers.push(DecoderLayer {
                input_layernorm: norm(format!("{p}.input_layernorm"), h)?,
                self_attn: Attention {
                    q_proj: linear(format!("{p}.self_attn.q_proj"), nh * hd, h)?,
                    k_proj: linear(format!("{p}.self_attn.k_proj"), nkv * hd, h)?,
                    v_proj: linear(format!("{p}.self_attn.v_proj"), nkv * hd, h)?,
                    o_proj: linear(format!("{p}.self_attn.o_proj"), h, nh * hd)?,
                    q_norm: norm(format!("{p}.self_attn.q_norm"), hd)?,
                    k_norm: norm(format!("{p}.self_attn.k_norm"), hd)?,
                    num_heads: nh,
                    num_kv_heads: nkv,
                    head_dim: hd,
                },
                post_attention_layernorm: norm(format!("{p}.post_attention_layernorm"), h)?,
                mlp: Mlp {
                    gate_proj: linear(format!("{p}.mlp.gate_proj"), cfg.intermediate_size, h)?,
                    up_proj: linear(format!("{p}.mlp.up_proj"), cfg.intermediate_size, h)?,
                    down_proj: linear(format!("{p}.mlp.down_proj"), h, cfg.intermediate_size)?,
                },
            });
        }
        let embed = get2("model.embed_tokens.weight", [cfg.vocab_size, h])?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(linear("lm_head".into(), cfg.vocab_size, h)?)
        };
        Ok(Self {
            embed_tokens: frozen(embed),
            layers,
            norm: norm("model.norm".into(), h)?,
            lm_head,
        })
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Runs the decoder over `batch` and returns the final hidden states `[b, t, hidden]`
    /// (after the last norm). With a cache, keys and values are appended to it and the batch's
    /// positions must continue from `cache.next_positions()`.
    pub fn forward(
        &self,
        batch: &ForwardBatch,
        rope: &Rope,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let (mut x, tables, mask) = self.embed(batch, rope, cache.as_deref());
        for (i, layer) in self.layers.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(x, &tables, &mask, c);
        }
        if let Some(cache) = cache {
            cache.commit(batch.batch, batch.seq, &batch.valid, &batch.positions);
        }
        self.norm.forward(x)
    }

    /// The final hidden states `[rows.len(), hidden]` at `rows` only (indices into the batch's
    /// `[b · t]` slots), as [`Self::forward`] followed by a selection computes them.
    ///
    /// Nothing after the last layer's attention mixes positions, so there only the selected
    /// rows go on: the last layer computes its queries, output projection and MLP for them
    /// alone (keys and values still for every slot). Evaluation needs one row per sequence:
    /// on the small preset that is a sixth of the products left out. Where the CPU kernel for
    /// selected queries does not apply (another backend, an explicit mask), the whole last
    /// layer runs and the rows are selected after it.
    pub fn forward_rows(&self, batch: &ForwardBatch, rope: &Rope, rows: &[usize]) -> Tensor<2> {
        let (mut x, tables, mask) = self.embed(batch, rope, None);
        let (last, others) = self.layers.split_last().expect("a model has layers");
        for layer in others {
            x = layer.forward(x, &tables, &mask, None);
        }
        let x = match last.forward_rows(x.clone(), &tables, &mask, rows) {
            Some(x) => x,
            None => select_rows(last.forward(x, &tables, &mask, None), rows),
        };
        self.norm.forward(x)
    }

    /// The embedded tokens, the rotary tables and the attention mask of one forward pass.
    fn embed(
        &self,
        batch: &ForwardBatch,
        rope: &Rope,
        cache: Option<&KvCache>,
    ) -> (Tensor<3>, RopeTables, AttentionMask) {
        let device = self.embed_tokens.device();
        let dtype = self.embed_tokens.val().dtype();
        let (b, t) = (batch.batch, batch.seq);
        let ids: Vec<i64> = batch.ids.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &device);
        let tables = rope.tables(&batch.positions, b, t, dtype, &device);
        let mask = build_mask(batch, cache, &device);
        (embedding(self.embed_tokens.val(), ids), tables, mask)
    }

    /// The language-model head `[vocab, hidden]` in the compute dtype: `lm_head`, or the input
    /// embeddings when they are tied.
    pub fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(l) => l.weight.val(),
            None => self.embed_tokens.val(),
        }
    }

    /// Logits `[b, t, vocab]` in f32 for hidden states `[b, t, hidden]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, h] = hidden.dims();
        let head = self.head_weight();
        let vocab = head.dims()[0];
        let logits = matmul_transposed(hidden.reshape([b * t, h]), head);
        cast_to(logits, DType::F32).reshape([b, t, vocab])
    }
}

/// The attention mask for `batch` given what the cache already holds: the fused causal path
/// when nothing is padded, else an explicit `[b, 1, q, k]` mask.
fn build_mask(batch: &ForwardBatch, cache: Option<&KvCache>, device: &Device) -> AttentionMask {
    let past = cache.map_or(0, KvCache::len);
    let cache_padded = cache.is_some_and(|c| c.valid.iter().any(|v| !v));
    if batch.segments.is_none()
        && !cache_padded
        && (!batch.has_padding() || (past == 0 && batch.padded_on_the_right_only()))
    {
        // Right padding without a cache needs no mask of its own: real queries only see
        // earlier slots, all real; padding queries see real tokens and stay finite, and their
        // outputs are never read. The fused causal kernel is much faster than an explicit mask.
        return AttentionMask::Causal;
    }
    // Packed rows (never with a cache): a key is visible only within the query's own sample.
    let same_sample = |row: usize, i: usize, j: usize| -> bool {
        match (&batch.segments, cache) {
            (Some(seg), None) => seg[row * batch.seq + i] == seg[row * batch.seq + j],
            _ => true,
        }
    };
    let (b, t) = (batch.batch, batch.seq);
    let tk = past + t;
    let mut hidden = vec![false; b * t * tk];
    for row in 0..b {
        let key_valid = |j: usize| -> bool {
            if j < past {
                cache.expect("past > 0 implies a cache").valid_row(row)[j]
            } else {
                batch.valid[row * t + (j - past)]
            }
        };
        for i in 0..t {
            let q_slot = past + i;
            let base = (row * t + i) * tk;
            let mut any_visible = false;
            for j in 0..tk {
                let visible = j <= q_slot && key_valid(j) && same_sample(row, i, j);
                hidden[base + j] = !visible;
                any_visible |= visible;
            }
            // A padding query sees nothing; let it see itself so softmax stays finite.
            if !any_visible {
                hidden[base + q_slot] = false;
            }
        }
    }
    AttentionMask::Explicit(Box::new(Tensor::<4, Bool>::from_data(
        TensorData::new(hidden, [b, 1, t, tk]),
        device,
    )))
}

impl LoadedModel {
    /// Loads a checkpoint folder (config.json + safetensors).
    pub fn from_dir(dir: &Path, dtype: ComputeDType, device: &Device) -> Result<Self> {
        let config = Qwen3Config::from_file(&dir.join("config.json"))?;
        let weights = WeightFiles::open(dir)?;
        Self::from_source(&weights, config, dtype, device)
    }

    pub fn from_source(
        source: &impl WeightSource,
        config: Qwen3Config,
        dtype: ComputeDType,
        device: &Device,
    ) -> Result<Self> {
        if !device.supports_dtype(dtype.dtype()) {
            return Err(crate::error::ModelError::Device(format!(
                "this device cannot compute in {dtype} (e.g. Vulkan has no bf16 arithmetic): \
                 use --dtype f16 or --dtype f32"
            )));
        }
        let model = Qwen3::load(source, &config, dtype, device)?;
        Ok(Self {
            rope: Rope::new(config.head_dim, config.rope_theta),
            model,
            config,
            dtype,
            device: device.clone(),
        })
    }

    pub fn forward(&self, batch: &ForwardBatch, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.model.forward(batch, &self.rope, cache)
    }

    /// The final hidden states at `rows` of the batch's `[b · t]` slots (see
    /// [`Qwen3::forward_rows`]).
    pub fn forward_rows(&self, batch: &ForwardBatch, rows: &[usize]) -> Tensor<2> {
        self.model.forward_rows(batch, &self.rope, rows)
    }

    /// f32 logits of every position of one sequence, as host values `[seq * vocab]`.
    pub fn sequence_logits(&self, ids: &[u32]) -> Vec<f32> {
        self.batch_logits(&ForwardBatch::single(ids))
    }

    /// f32 logits of every slot of a batch, as host values `[batch * seq * vocab]`.
    pub fn batch_logits(&self, batch: &ForwardBatch) -> Vec<f32> {
        let hidden = self.forward(batch, None);
        self.model
            .logits(hidden)
            .into_data()
            .try_to_vec::<f32>()
            .expect("logits are f32")
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.model.num_layers())
    }
}
