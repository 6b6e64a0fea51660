//! The KV cache's buffers during a step: taken out of their tensors, written in place at each
//! (row, kv head)'s next slot by the thread that owns the pair, and put back after.

use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};
use half::bf16;

use super::StepModel;

/// The cache's key and value buffers of every layer, taken out of the cache for the step and
/// written in place: `[rows, kv_heads, capacity, head_dim]`, contiguous, with a free slot after
/// the filled ones.
pub(crate) struct CacheBuffers {
    layers: Vec<(FlexTensor, FlexTensor)>,
    /// Each layer's key and value storage, taken mutably once before the step.
    pub(crate) slots: Vec<(SlotPtr, SlotPtr)>,
    pub(crate) capacity: usize,
    pub(crate) past: usize,
}

/// A cache buffer's storage (bf16 bits or f32), written by the threads of a step at disjoint
/// (row, kv head) slots.
#[derive(Clone, Copy)]
pub(crate) struct SlotPtr(pub(crate) *mut u8);

// SAFETY: each thread writes and reads only the slots of its own (row, kv head) pairs.
unsafe impl Send for SlotPtr {}
unsafe impl Sync for SlotPtr {}

impl CacheBuffers {
    /// Takes the buffers of every layer out of `cache` (`past` slots filled, each buffer with a
    /// free slot after them), or `None`, changing nothing, when one does not suit the step.
    pub(crate) fn take(
        cache: &mut [Option<(Tensor<4>, Tensor<4>)>],
        past: usize,
        plan: &StepModel,
        rows: usize,
    ) -> Option<Self> {
        let cfg = &plan.shape;
        let (kv_heads, hd) = (cfg.num_key_value_heads, cfg.head_dim);
        let dtype = if plan.bf16 { DType::BF16 } else { DType::F32 };
        // Check every layer before changing any.
        let suits = |t: &Tensor<4>| {
            let [b, h, cap, d] = t.dims();
            (b, h, d) == (rows, kv_heads, hd) && cap > past && t.dtype() == dtype
        };
        let capacity = cache.first()?.as_ref()?.0.dims()[2];
        let all_suit = cache.iter().all(|l| {
            l.as_ref().is_some_and(|(k, v)| {
                suits(k) && suits(v) && k.dims()[2] == capacity && v.dims()[2] == capacity
            })
        });
        if !all_suit {
            return None;
        }
        let mut layers: Vec<(FlexTensor, FlexTensor)> = cache
            .iter_mut()
            .map(|l| {
                let (k, v) = l.take().expect("checked above");
                let flex = |t: Tensor<4>| {
                    let t = t.try_into_primitive::<Flex>().expect("a flex tensor");
                    if t.is_contiguous() && t.layout().start_offset() == 0 {
                        t
                    } else {
                        t.to_contiguous()
                    }
                };
                (flex(k), flex(v))
            })
            .collect();
        let storage = |t: &mut FlexTensor| match t.dtype() {
            DType::BF16 => SlotPtr(t.storage_mut::<bf16>().as_mut_ptr().cast()),
            _ => SlotPtr(t.storage_mut::<f32>().as_mut_ptr().cast()),
        };
        let slots = layers
            .iter_mut()
            .map(|(k, v)| (storage(k), storage(v)))
            .collect();
        Some(Self {
            layers,
            slots,
            capacity,
            past,
        })
    }

    /// Puts the buffers back where [`Self::take`] found them.
    pub(crate) fn put_back(self, cache: &mut [Option<(Tensor<4>, Tensor<4>)>]) {
        for (slot, (k, v)) in cache.iter_mut().zip(self.layers) {
            *slot = Some((
                Tensor::from_primitive::<Flex>(k),
                Tensor::from_primitive::<Flex>(v),
            ));
        }
    }
}
