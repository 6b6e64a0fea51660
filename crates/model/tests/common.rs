//! Helpers shared by the model crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use medtune_model::{Device, DeviceSpec};
use safetensors::{Dtype, SafeTensors};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The device tests run on: `MEDTUNE_TEST_DEVICE` (default `cpu`, i.e. flex), so CI can run the
/// same checks on vulkan.
pub fn test_device() -> Device {
    let spec: DeviceSpec = std::env::var("MEDTUNE_TEST_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .expect("MEDTUNE_TEST_DEVICE");
    spec.device().expect("test device")
}

pub struct Golden {
    bytes: Vec<u8>,
}

impl Golden {
    pub fn open(path: &Path) -> Self {
        Self {
            bytes: std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        }
    }

    fn view(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("golden file")
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.view().tensor(name).expect(name).shape().to_vec()
    }

    pub fn f32(&self, name: &str) -> Vec<f32> {
        let view = self.view();
        let t = view.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    pub fn i64(&self, name: &str) -> Vec<i64> {
        let view = self.view();
        let t = view.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::I64, "{name}");
        t.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
