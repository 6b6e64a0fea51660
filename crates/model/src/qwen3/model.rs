//! The whole decoder: embeddings, layers, final norm and the language-model head.

use std::path::Path;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};
use rayon::prelude::*;

use super::attention::Attention;
use super::batch::{ForwardBatch, PaddingSide};
use super::cache::KvCache;
use super::layers::{Linear, RmsNorm};
use super::mlp::Mlp;
use super::rope::{Rope, RopeTables};
use crate::checkpoint::{WeightFiles, WeightSource};
use crate::config::Qwen3Config;
use crate::device::ComputeDType;
use crate::error::Result;
use crate::ops::{self, AttentionMask, PackedBf16, StoredWeight};
use crate::tensor::{cast_to, select_rows};

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

#[derive(Module, Debug)]
pub struct Qwen3 {
    /// Read through [`Qwen3::embed_weight`]: an empty placeholder once the embeddings are packed.
    embed_tokens: Param<Tensor<2>>,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `None` when the head is tied to the embeddings.
    pub lm_head: Option<Linear>,
    /// The embeddings packed in 12 bits for CPU decoding ([`Qwen3::pack_for_decoding`]).
    #[module(skip)]
    packed_embed: Option<Arc<PackedBf16>>,
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

/// Whether a model loaded to generate holds its weights packed in 12 bits per value
/// ([`Qwen3::pack_for_decoding`]): `auto` packs bf16 models on the CPU where the packed kernel is
/// fast (x86-64 with AVX-512 BF16), `on` packs bf16 models on the CPU anywhere, `off` never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightPacking {
    #[default]
    Auto,
    On,
    Off,
}

impl WeightPacking {
    /// Whether a model of `dtype` on `device` is packed under this setting.
    pub fn applies(self, dtype: ComputeDType, device: &Device) -> bool {
        let eligible = ops::runs_on_cpu(device) && dtype == ComputeDType::Bf16;
        let wanted = match self {
            Self::Off => false,
            Self::On => true,
            Self::Auto => ops::packing_pays(),
        };
        eligible && wanted
    }
}

impl std::str::FromStr for WeightPacking {
    type Err = crate::error::ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "on" | "true" | "packed" => Ok(Self::On),
            "off" | "false" | "plain" => Ok(Self::Off),
            _ => Err(crate::error::ModelError::Invalid(format!(
                "unknown weight packing `{s}`: use auto, on or off"
            ))),
        }
    }
}

impl std::fmt::Display for WeightPacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

impl LoadedModel {
    /// Packs the weights for decoding as `packing` says (see [`WeightPacking`]); returns the
    /// bytes the weights took before and after when it packed, `None` when it did not.
    pub fn pack_weights(&mut self, packing: WeightPacking) -> Option<(usize, usize)> {
        packing
            .applies(self.dtype, &self.device)
            .then(|| self.model.pack_for_decoding())
    }

    /// Bytes of the weights of the projections, embeddings and head as held now.
    pub fn weight_bytes(&self) -> usize {
        let m = &self.model;
        let linears = m.layers.iter().flat_map(|l| {
            let (a, f) = (&l.self_attn, &l.mlp);
            [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &f.gate_proj,
                &f.up_proj,
                &f.down_proj,
            ]
        });
        let held = |l: &Linear| {
            l.packed()
                .map_or_else(|| l.dense_bytes(), |p| p.stored_bytes())
        };
        let embed = match &m.packed_embed {
            Some(p) => p.stored_bytes(),
            None => {
                let e = m.embed_tokens.val();
                e.dims()[0] * e.dims()[1] * e.dtype().size()
            }
        };
        linears.chain(m.lm_head.as_ref()).map(held).sum::<usize>() + embed
    }

    /// Whether any weight is held packed.
    pub fn is_packed(&self) -> bool {
        self.model.packed_embed.is_some()
            || self
                .model
                .layers
                .iter()
                .any(|l| l.self_attn.q_proj.packed().is_some())
    }

    /// Whether the model computes on the CPU backend.
    pub fn on_cpu(&self) -> bool {
        ops::runs_on_cpu(&self.device)
    }

    /// The final hidden state `[seqs.len(), hidden]` at each sequence's last token. The rows are
    /// right-padded (so causal attention needs no padding mask) and only the last layer's rows
    /// that are read are computed ([`Qwen3::forward_rows`]).
    ///
    /// On the CPU the decoder runs the batch in one part per thread, side by side: every
    /// operation then has a core of its own, where splitting each operation across the cores
    /// left one idle during the single-threaded steps between the products and woke it for each
    /// product (`medtune bench eval`: ~1.3× more questions/s). A row's hidden states do not
    /// depend on the rows beside it, so the result is the same.
    pub fn last_token_hidden(&self, seqs: &[Vec<u32>], pad_id: u32) -> Tensor<2> {
        let threads = rayon::current_num_threads();
        if !(self.on_cpu() && threads > 1 && seqs.len() > 1) {
            return self.last_token_hidden_in_one_pass(seqs, pad_id);
        }
        let per_part = seqs.len().div_ceil(threads);
        let parts: Vec<Tensor<2>> = seqs
            .par_chunks(per_part)
            .map(|part| self.last_token_hidden_in_one_pass(part, pad_id))
            .collect();
        Tensor::cat(parts, 0)
    }

    fn last_token_hidden_in_one_pass(&self, seqs: &[Vec<u32>], pad_id: u32) -> Tensor<2> {
        let batch = ForwardBatch::padded(seqs, PaddingSide::Right, pad_id);
        let rows: Vec<usize> = seqs
            .iter()
            .enumerate()
            .map(|(r, s)| r * batch.seq + s.len() - 1)
            .collect();
        self.forward_rows(&batch, &rows)
    }
}

impl Qwen3 {
    /// Loads every tensor of a Hugging Face Qwen3 checkpoint from `source`, converted to `dtype`;
    /// with `pack`, each projection, the embeddings and the head are packed as they are loaded
    /// (see [`Qwen3::pack_for_decoding`]), so only one weight is ever held dense.
    pub fn load(
        source: &impl WeightSource,
        cfg: &Qwen3Config,
        dtype: ComputeDType,
        device: &Device,
        pack: bool,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let get2 = |name: &str, shape: [usize; 2]| source.load(name, shape, dtype, device);
        let linear = |name: String, out: usize, inp: usize| {
            get2(&format!("{name}.weight"), [out, inp]).map(|w| {
                let mut linear = Linear::new(w);
                if pack {
                    linear.pack();
                }
                linear
            })
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
        let mut model = Self {
            embed_tokens: frozen(embed),
            layers,
            norm: norm("model.norm".into(), h)?,
            lm_head,
            packed_embed: None,
        };
        if pack {
            model.pack_embeddings();
        }
        Ok(model)
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
        let tables = rope.tables(&batch.positions, b, t, dtype, &device);
        let mask = build_mask(batch, cache, &device);
        (self.embedded(&batch.ids, b, t), tables, mask)
    }

    /// The embeddings of `ids` (`b × t`, row-major) as `[b, t, hidden]`.
    fn embedded(&self, ids: &[u32], b: usize, t: usize) -> Tensor<3> {
        ops::embed(self.embeddings_stored(), ids, b, t)
    }

    /// The input embeddings `[vocab, hidden]` as they are held, dense or packed.
    pub fn embeddings_stored(&self) -> StoredWeight<'_> {
        match &self.packed_embed {
            Some(p) => StoredWeight::Packed(p),
            None => StoredWeight::Dense(self.embed_tokens.val()),
        }
    }

    /// The language-model head `[vocab, hidden]` as it is held: `lm_head`, or the (tied)
    /// embeddings.
    pub fn head_stored(&self) -> StoredWeight<'_> {
        match &self.lm_head {
            Some(head) => head.stored(),
            None => self.embeddings_stored(),
        }
    }

    /// The input embeddings `[vocab, hidden]` as a dense tensor (unpacked into a new one when
    /// they are packed).
    pub fn embed_weight(&self) -> Tensor<2> {
        match &self.packed_embed {
            Some(p) => ops::packed_to_dense(p),
            None => self.embed_tokens.val(),
        }
    }

    /// The language-model head `[vocab, hidden]` in the compute dtype: `lm_head`, or the input
    /// embeddings when they are tied (a dense tensor: unpacked into a new one when packed).
    pub fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(l) => l.weight(),
            None => self.embed_weight(),
        }
    }

    /// Vocabulary size (rows of the head).
    pub fn vocab_size(&self) -> usize {
        match (&self.lm_head, &self.packed_embed) {
            (Some(l), _) => l.out_features(),
            (None, Some(p)) => p.rows(),
            (None, None) => self.embed_tokens.dims()[0],
        }
    }

    /// Logits `[b, t, vocab]` in f32 for hidden states `[b, t, hidden]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, h] = hidden.dims();
        let rows = hidden.reshape([b * t, h]);
        let logits = ops::linear(rows, self.head_stored());
        let vocab = logits.dims()[1];
        cast_to(logits, DType::F32).reshape([b, t, vocab])
    }

    /// Holds every projection, the embeddings and the head packed in 12 bits per value
    /// (lossless, see `packed_bf16`), freeing their dense copies: a decode step then streams
    /// three quarters of the bytes. For bf16 models on the CPU backend; weights of other dtypes,
    /// backends or widths stay as they are. Returns the bytes the weights took before and after.
    ///
    /// Training needs the dense weights (its products run under autodiff): pack only models
    /// loaded to generate or score.
    pub fn pack_for_decoding(&mut self) -> (usize, usize) {
        let dense_bytes = |w: &Tensor<2>| w.dims()[0] * w.dims()[1] * w.dtype().size();
        let (mut before, mut after) = (0, 0);
        let mut account = |linear: &mut Linear| {
            let dense = linear.dense_bytes();
            before += dense;
            after += if linear.pack() {
                linear.packed().map_or(dense, |p| p.stored_bytes())
            } else {
                dense
            };
        };
        for layer in &mut self.layers {
            let (attn, mlp) = (&mut layer.self_attn, &mut layer.mlp);
            for linear in [
                &mut attn.q_proj,
                &mut attn.k_proj,
                &mut attn.v_proj,
                &mut attn.o_proj,
                &mut mlp.gate_proj,
                &mut mlp.up_proj,
                &mut mlp.down_proj,
            ] {
                account(linear);
            }
        }
        if let Some(head) = &mut self.lm_head {
            account(head);
        }
        let embed_bytes = match &self.packed_embed {
            Some(p) => p.rows() * p.cols() * DType::BF16.size(),
            None => dense_bytes(&self.embed_tokens.val()),
        };
        before += embed_bytes;
        after += match self.pack_embeddings() {
            Some(p) => p.stored_bytes(),
            None => embed_bytes,
        };
        (before, after)
    }

    /// Holds the embeddings packed (when they pack) and frees the dense table.
    fn pack_embeddings(&mut self) -> Option<&PackedBf16> {
        if self.packed_embed.is_none() {
            let embed = self.embed_tokens.val();
            let packed = ops::pack_if_covered(&embed)?;
            self.embed_tokens = frozen(Tensor::empty([0, 0], (&embed.device(), embed.dtype())));
            self.packed_embed = Some(Arc::new(packed));
        }
        self.packed_embed.as_deref()
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
        Self::from_dir_packed(dir, dtype, device, WeightPacking::Off)
    }

    /// [`LoadedModel::from_dir`] with the weights packed for decoding as `packing` says, each as
    /// it is loaded.
    pub fn from_dir_packed(
        dir: &Path,
        dtype: ComputeDType,
        device: &Device,
        packing: WeightPacking,
    ) -> Result<Self> {
        let config = Qwen3Config::from_file(&dir.join("config.json"))?;
        let weights = WeightFiles::open(dir)?;
        Self::from_source_packed(&weights, config, dtype, device, packing)
    }

    pub fn from_source(
        source: &impl WeightSource,
        config: Qwen3Config,
        dtype: ComputeDType,
        device: &Device,
    ) -> Result<Self> {
        Self::from_source_packed(source, config, dtype, device, WeightPacking::Off)
    }

    /// [`LoadedModel::from_source`] with the weights packed as `packing` says.
    pub fn from_source_packed(
        source: &impl WeightSource,
        config: Qwen3Config,
        dtype: ComputeDType,
        device: &Device,
        packing: WeightPacking,
    ) -> Result<Self> {
        if !device.supports_dtype(dtype.dtype()) {
            return Err(crate::error::ModelError::Device(format!(
                "this device cannot compute in {dtype} (e.g. Vulkan has no bf16 arithmetic): \
                 use --dtype f16 or --dtype f32"
            )));
        }
        let pack = packing.applies(dtype, device);
        let model = Qwen3::load(source, &config, dtype, device, pack)?;
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
