//! Run-time choice of backend (`--device`) and compute dtype (`--dtype`).

use std::fmt;
use std::str::FromStr;

use burn::tensor::{DType, Device, FloatDType};

use crate::error::{ModelError, Result};

/// A device as the user names it on the command line: `cpu`, `cuda[:N]`, `rocm[:N]`,
/// `vulkan[:N]` or `metal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Rocm(usize),
    Vulkan(Option<usize>),
    Metal,
}

impl FromStr for DeviceSpec {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => {
                let i = i.parse::<usize>().map_err(|_| {
                    ModelError::Device(format!("device `{s}`: `{i}` is not a device index"))
                })?;
                (n, Some(i))
            }
            None => (s, None),
        };
        match (name.to_ascii_lowercase().as_str(), index) {
            ("cpu" | "flex", None) => Ok(Self::Cpu),
            ("cuda", i) => Ok(Self::Cuda(i.unwrap_or(0))),
            ("rocm" | "hip", i) => Ok(Self::Rocm(i.unwrap_or(0))),
            ("vulkan", i) => Ok(Self::Vulkan(i)),
            ("metal", None) => Ok(Self::Metal),
            _ => Err(ModelError::Device(format!(
                "unknown device `{s}`: use cpu, cuda[:N], rocm[:N], vulkan[:N] or metal"
            ))),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::Rocm(i) => write!(f, "rocm:{i}"),
            Self::Vulkan(Some(i)) => write!(f, "vulkan:{i}"),
            Self::Vulkan(None) => write!(f, "vulkan"),
            Self::Metal => write!(f, "metal"),
        }
    }
}

fn not_built(spec: DeviceSpec, feature: &str) -> ModelError {
    ModelError::Device(format!(
        "device `{spec}` needs a medtune built with the `{feature}` feature \
         (cargo install --path crates/cli --features {feature}); this binary has: {}",
        compiled_backends().join(", ")
    ))
}

/// Backends compiled into this binary, by cargo feature name.
pub fn compiled_backends() -> Vec<&'static str> {
    [
        ("flex", cfg!(feature = "flex")),
        ("cuda", cfg!(feature = "cuda")),
        ("rocm", cfg!(feature = "rocm")),
        ("vulkan", cfg!(feature = "vulkan")),
        ("metal", cfg!(feature = "metal")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

impl DeviceSpec {
    /// The burn device, or a clear error naming the cargo feature this binary lacks.
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            Self::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(feature = "rocm")]
            Self::Rocm(i) => Ok(Device::rocm(i)),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(i) => {
                use burn::tensor::DeviceKind;
                Ok(Device::vulkan(match i {
                    Some(i) => DeviceKind::DiscreteGpu(i),
                    None => DeviceKind::DefaultDevice,
                }))
            }
            #[cfg(feature = "metal")]
            Self::Metal => Ok(Device::metal(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            other => Err(not_built(other, other.feature())),
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Self::Cpu => "flex",
            Self::Cuda(_) => "cuda",
            Self::Rocm(_) => "rocm",
            Self::Vulkan(_) => "vulkan",
            Self::Metal => "metal",
        }
    }
}

/// The float type the model computes in. Weights are converted to it on load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDType {
    #[default]
    F32,
    Bf16,
    F16,
}

impl ComputeDType {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub fn float_dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }

    /// The name Hugging Face uses in `config.json` (`torch_dtype` / `dtype`).
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }
}

impl FromStr for ComputeDType {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" | "fp16" | "half" => Ok(Self::F16),
            _ => Err(ModelError::Invalid(format!(
                "unknown dtype `{s}`: use f32, bf16 or f16"
            ))),
        }
    }
}

impl fmt::Display for ComputeDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("rocm:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Rocm(1));
        assert_eq!(
            "vulkan".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Vulkan(None)
        );
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn missing_backend_names_the_feature() {
        if cfg!(feature = "cuda") {
            return;
        }
        let err = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
        assert!(err.contains("`cuda` feature"), "{err}");
    }

    #[test]
    fn parses_dtypes() {
        assert_eq!("bf16".parse::<ComputeDType>().unwrap(), ComputeDType::Bf16);
        assert_eq!(
            "float16".parse::<ComputeDType>().unwrap(),
            ComputeDType::F16
        );
        assert!("int8".parse::<ComputeDType>().is_err());
    }
}
