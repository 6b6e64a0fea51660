//! The seam (`medtune_model::ops`) against its reference formulas (`ops::reference`): on the CPU
//! each operation here is taken by a kernel (asserted, unless `MEDTUNE_KERNELS=portable` forces
//! the portable paths), so these compare every kernel with the burn ops it replaces, values and,
//! for the training kernels, input gradients. On another device (`MEDTUNE_TEST_DEVICE`) the
//! reference runs on both sides.

mod common;

use std::sync::Arc;

use burn::tensor::{DType, Device, Distribution, FloatDType, Tensor};
use common::test_device;
use medtune_model::ops::{self, AttentionMask, StoredWeight, reference};
use medtune_model::qwen3::Rope;

fn diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let (a, b) = (a.cast(FloatDType::F32), b.cast(FloatDType::F32));
    (a - b).abs().max().into_scalar::<f32>()
}

fn normal<const D: usize>(shape: [usize; D], std: f64, device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, std), device)
}

/// Whether the kernels are expected to take f32 cases on the test device (the CPU with
/// AVX-512, not forced portable).
fn kernels_expected(device: &Device) -> bool {
    ops::runs_on_cpu(device) && ops::cpu_features().avx512f
}

/// Values and input gradients of `ours` and of `theirs` for one input, under autodiff.
fn compare_autodiff<const D: usize>(
    x: Tensor<D>,
    ours: impl Fn(Tensor<D>) -> Tensor<D>,
    theirs: impl Fn(Tensor<D>) -> Tensor<D>,
) -> (f32, f32) {
    let r = ours(x.clone()).random_like(Distribution::Normal(0.0, 1.0));
    let run = |use_ours: bool| {
        let x = x.clone().require_grad();
        let y = if use_ours {
            ours(x.clone())
        } else {
            theirs(x.clone())
        };
        let grads = (y.clone() * r.clone()).sum().backward();
        (y.inner(), x.grad(&grads).unwrap())
    };
    let ((y1, g1), (y2, g2)) = (run(true), run(false));
    (diff(y1, y2), diff(g1, g2))
}

#[test]
fn rms_norm_and_rope_equal_their_formulas() {
    let device = test_device();
    let x = normal([3, 300, 40], 2.0, &device);
    let w = Tensor::<1>::random([40], Distribution::Normal(1.0, 0.3), &device);
    if ops::runs_on_cpu(&device) {
        assert!(medtune_kernels::rms_norm_if_covered(&x, &w, 1e-6).is_some());
    }
    let got = ops::rms_norm(x.clone(), &w, 1e-6);
    assert!(diff(got, reference::rms_norm(x, w, 1e-6)) < 1e-5);

    let (b, t) = (2, 7);
    let positions: Vec<i64> = (0..b * t).map(|i| (i % t + i / t * 5) as i64).collect();
    let tables = Rope::new(16, 1_000_000.0).tables(&positions, b, t, DType::F32, &device);
    let x = normal([2, 3, 7, 16], 1.0, &device);
    let got = ops::rope(x.clone(), &tables.cos, &tables.sin);
    let want = reference::rope(x, tables.cos.clone(), tables.sin.clone());
    assert!(diff(got, want) < 1e-6);
}

#[test]
fn training_kernels_have_the_formulas_values_and_gradients() {
    let device = test_device().autodiff();
    let x = normal([2, 70, 40], 2.0, &device);
    let w = Tensor::<1>::random([40], Distribution::Normal(1.0, 0.3), &device);
    let (value, grad) = compare_autodiff(
        x,
        |x| ops::rms_norm(x, &w, 1e-6),
        |x| reference::rms_norm(x, w.clone(), 1e-6),
    );
    assert!(value < 1e-5 && grad < 1e-4, "rms norm: {value}, {grad}");

    let positions: Vec<i64> = (0..14).map(|i| (i % 7 + i / 7 * 5) as i64).collect();
    let tables = Rope::new(16, 10_000.0).tables(&positions, 2, 7, DType::F32, &device);
    let (value, grad) = compare_autodiff(
        normal([2, 3, 7, 16], 1.0, &device),
        |x| ops::rope(x, &tables.cos, &tables.sin),
        |x| reference::rope(x, tables.cos.clone(), tables.sin.clone()),
    );
    assert!(value < 1e-5 && grad < 1e-5, "rope: {value}, {grad}");

    let up = normal([2, 40, 24], 1.0, &device);
    let (value, grad) = compare_autodiff(
        normal([2, 40, 24], 2.0, &device),
        |g| ops::swiglu(g, up.clone()),
        |g| reference::swiglu(g, up.clone()),
    );
    assert!(value < 1e-5 && grad < 1e-5, "swiglu: {value}, {grad}");

    // A frozen weight (training's base products) through the GEMM in both directions.
    let weight = normal([48, 64], 0.1, &device);
    let (value, grad) = compare_autodiff(
        normal([40, 64], 1.0, &device),
        |x| ops::linear(x, StoredWeight::Dense(weight.clone())),
        |x| reference::linear(x, weight.clone()),
    );
    assert!(value < 1e-4 && grad < 1e-4, "linear: {value}, {grad}");

    // Causal grouped-query attention (4 query heads on 2 kv heads), long enough for the
    // blocked kernel.
    let (k, v) = (
        normal([2, 2, 40, 16], 1.0, &device),
        normal([2, 2, 40, 16], 1.0, &device),
    );
    let scale = 0.25;
    let (value, grad) = compare_autodiff(
        normal([2, 4, 40, 16], 1.0, &device),
        |q| ops::causal_attention(q, k.clone(), v.clone(), &AttentionMask::Causal, scale),
        |q| reference::causal_attention(q, k.clone(), v.clone(), None, scale),
    );
    assert!(value < 1e-5 && grad < 1e-4, "attention: {value}, {grad}");
}

#[test]
fn products_equal_the_formula_for_every_row_count_and_dtype() {
    let device = test_device();
    let (n, k) = (96, 64);
    for dtype in [FloatDType::F32, FloatDType::BF16] {
        if !device.supports_dtype(DType::from(dtype)) {
            continue;
        }
        let w = normal([n, k], 0.1, &device).cast(dtype);
        let w2 = normal([n / 2, k], 0.1, &device).cast(dtype);
        // 3 rows: the GEMV; 40 rows: the GEMM (f32) or burn's matmul.
        for m in [1, 3, 40] {
            let x = normal([m, k], 1.0, &device).cast(dtype);
            if kernels_expected(&device) && (m <= 8 || dtype == FloatDType::F32) {
                assert!(
                    medtune_kernels::linear_if_covered(&x, &w).is_some(),
                    "{m} rows"
                );
            }
            let tol = if dtype == FloatDType::F32 { 1e-5 } else { 2e-2 };
            let got = ops::linear(x.clone(), StoredWeight::Dense(w.clone()));
            let want = reference::linear(x.clone(), w.clone());
            assert!(diff(got, want) < tol, "{dtype:?}, {m} rows");
            let both = ops::linear_many(
                x.clone(),
                &[
                    StoredWeight::Dense(w.clone()),
                    StoredWeight::Dense(w2.clone()),
                ],
            );
            assert!(diff(both[0].clone(), reference::linear(x.clone(), w.clone())) < tol);
            assert!(diff(both[1].clone(), reference::linear(x, w2.clone())) < tol);
        }
    }
}

#[test]
fn gate_up_swiglu_equals_two_products_and_the_activation() {
    let device = test_device();
    let (gate, up) = (
        normal([80, 64], 0.1, &device),
        normal([80, 64], 0.1, &device),
    );
    for rows in [2, 20] {
        let x = normal([2, rows / 2, 64], 1.0, &device);
        if kernels_expected(&device) && rows >= 16 {
            assert!(medtune_kernels::gate_up_swiglu_if_covered(&x, &gate, &up).is_some());
        }
        let got = ops::gate_up_swiglu(
            x.clone(),
            StoredWeight::Dense(gate.clone()),
            StoredWeight::Dense(up.clone()),
        );
        let flat = x.reshape([rows, 64]);
        let want = reference::swiglu(
            reference::linear(flat.clone(), gate.clone()),
            reference::linear(flat, up.clone()),
        )
        .reshape([2, rows / 2, 80]);
        assert!(diff(got, want) < 1e-5, "{rows} rows");
    }
}

#[test]
fn attention_equals_burns_for_prompts_and_selected_rows() {
    let device = test_device();
    let (b, heads, kv_heads, t, d) = (2, 4, 2, 40, 16);
    let q = normal([b, heads, t, d], 1.0, &device);
    let (k, v) = (
        normal([b, kv_heads, t, d], 1.0, &device),
        normal([b, kv_heads, t, d], 1.0, &device),
    );
    let scale = 1.0 / (d as f64).sqrt();
    let mask = AttentionMask::Causal;
    if kernels_expected(&device) {
        assert!(medtune_kernels::causal_attention_if_covered(&q, &k, &v, scale as f32).is_some());
    }
    let got = ops::causal_attention(q.clone(), k.clone(), v.clone(), &mask, scale);
    let whole = reference::causal_attention(q.clone(), k.clone(), v.clone(), None, scale);
    assert!(diff(got, whole.clone()) < 1e-5);

    // Selected queries (sequence, position) as the whole sequence's attention computes them.
    let picks = [(0, 0), (0, 17), (1, 39), (1, 5)];
    let rows: Vec<Tensor<4>> = picks
        .iter()
        .map(|&(s, p)| q.clone().narrow(0, s, 1).narrow(2, p, 1))
        .collect();
    let selected_q = Tensor::cat(rows, 0);
    let queries: Vec<(usize, usize)> = picks.iter().map(|&(s, p)| (s, p + 1)).collect();
    let want_rows: Vec<Tensor<4>> = picks
        .iter()
        .map(|&(s, p)| whole.clone().narrow(0, s, 1).narrow(2, p, 1))
        .collect();
    let want = Tensor::cat(want_rows, 0);
    let kernel = ops::attend_rows(
        selected_q.clone(),
        k.clone(),
        v.clone(),
        &queries,
        scale as f32,
    );
    let formula = reference::attend_rows(&queries, scale as f32, selected_q, k, v);
    assert!(diff(kernel, want.clone()) < 1e-5, "attend_rows");
    assert!(diff(formula, want) < 1e-5, "the reference of attend_rows");
}

#[test]
fn packed_weights_give_the_dense_products_and_rows() {
    let device = test_device();
    if !ops::runs_on_cpu(&device) {
        return; // weights are packed only on the CPU
    }
    let dense = normal([64, 128], 0.5, &device).cast(FloatDType::BF16);
    let packed = Arc::new(ops::pack_if_covered(&dense).expect("bf16 on the CPU packs"));
    assert_eq!(diff(ops::packed_to_dense(&packed), dense.clone()), 0.0);
    let x = normal([2, 128], 1.0, &device).cast(FloatDType::BF16);
    let got = ops::linear(x.clone(), StoredWeight::Packed(&packed));
    assert!(diff(got, reference::linear(x, dense.clone())) < 2e-2);
    let ids = [5u32, 0, 63, 5];
    let rows = ops::embed(StoredWeight::Packed(&packed), &ids, 2, 2);
    assert_eq!(diff(rows, reference::embed(dense, &ids, 2, 2)), 0.0);
}
