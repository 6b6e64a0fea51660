//! Reading weights from safetensors files (one file or an index of shards) through memory maps,
//! so loading never holds the file and the converted model in RAM at once: each tensor is
//! converted straight from the mapped bytes into its device tensor.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::device::ComputeDType;
use crate::error::{ModelError, Result};

/// A tensor's bytes as stored, borrowed from a mapped file or an in-memory buffer.
pub struct RawTensor<'a> {
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

/// A tensor owned on the host, for building checkpoints in memory and writing them.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl HostTensor {
    /// Stores f32 values as `dtype` (F32, BF16 or F16).
    pub fn from_f32(values: &[f32], shape: Vec<usize>, dtype: ComputeDType) -> Self {
        let data = match dtype {
            ComputeDType::F32 => bytemuck::cast_slice(values).to_vec(),
            ComputeDType::Bf16 => values
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect(),
            ComputeDType::F16 => values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        let dtype = match dtype {
            ComputeDType::F32 => Dtype::F32,
            ComputeDType::Bf16 => Dtype::BF16,
            ComputeDType::F16 => Dtype::F16,
        };
        Self { dtype, shape, data }
    }

    /// Reads a device tensor back to the host, stored as `dtype`.
    pub fn from_tensor<const D: usize>(t: Tensor<D>, dtype: ComputeDType) -> Self {
        let shape = t.dims().to_vec();
        let values: Vec<f32> = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a float tensor converts to f32");
        Self::from_f32(&values, shape, dtype)
    }

    pub fn raw(&self) -> RawTensor<'_> {
        RawTensor {
            dtype: self.dtype,
            shape: &self.shape,
            data: &self.data,
        }
    }
}

/// Where the model's tensors come from: files on disk or a map built in memory.
pub trait WeightSource {
    /// The tensor called `name`, or `None` when there is none.
    fn raw(&self, name: &str) -> Option<RawTensor<'_>>;
    /// The file (or description) to name in error messages about `name`.
    fn origin(&self, name: &str) -> PathBuf;
    /// Called once `name` has been converted: a mapped file drops its pages so that loading
    /// holds about one copy of the model, not the file and the model both.
    fn release(&self, _name: &str) {}

    /// Loads `name` as a device tensor of `dtype`, checking its shape against `expected`.
    fn load<const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        dtype: ComputeDType,
        device: &Device,
    ) -> Result<Tensor<D>> {
        let raw = self.raw(name).ok_or_else(|| ModelError::MissingTensor {
            path: self.origin(name),
            tensor: name.to_string(),
        })?;
        if raw.shape != expected {
            return Err(ModelError::WrongShape {
                path: self.origin(name),
                tensor: name.to_string(),
                found: raw.shape.to_vec(),
                expected: expected.to_vec(),
            });
        }
        let bytes = convert(raw.dtype, raw.data, dtype).ok_or_else(|| ModelError::WrongDType {
            path: self.origin(name),
            tensor: name.to_string(),
            dtype: format!("{:?}", raw.dtype),
        })?;
        let data = TensorData::from_bytes_vec(bytes, expected, dtype.dtype());
        let tensor = Tensor::from_data(data, (device, dtype.dtype()));
        self.release(name);
        Ok(tensor)
    }
}

impl WeightSource for HashMap<String, HostTensor> {
    fn raw(&self, name: &str) -> Option<RawTensor<'_>> {
        self.get(name).map(HostTensor::raw)
    }

    fn origin(&self, _name: &str) -> PathBuf {
        PathBuf::from("<in-memory weights>")
    }
}

/// Converts little-endian stored elements to `to`'s byte layout; `None` for an unsupported
/// stored dtype.
fn convert(from: Dtype, data: &[u8], to: ComputeDType) -> Option<Vec<u8>> {
    let same = matches!(
        (from, to),
        (Dtype::F32, ComputeDType::F32)
            | (Dtype::BF16, ComputeDType::Bf16)
            | (Dtype::F16, ComputeDType::F16)
    );
    if same {
        return Some(data.to_vec());
    }
    let to_f32: fn(&[u8]) -> f32 = match from {
        Dtype::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Dtype::BF16 => |b| bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        Dtype::F16 => |b| f16::from_le_bytes([b[0], b[1]]).to_f32(),
        _ => return None,
    };
    let width = from.bitsize() / 8;
    let values = data.chunks_exact(width).map(to_f32);
    Some(match to {
        ComputeDType::F32 => values.flat_map(f32::to_le_bytes).collect(),
        ComputeDType::Bf16 => values
            .flat_map(|v| bf16::from_f32(v).to_le_bytes())
            .collect(),
        ComputeDType::F16 => values
            .flat_map(|v| f16::from_f32(v).to_le_bytes())
            .collect(),
    })
}

/// Where one tensor lies in a mapped file: dtype, shape and byte range in the data section.
struct TensorEntry {
    dtype: Dtype,
    shape: Vec<usize>,
    range: (usize, usize),
}

struct MappedFile {
    path: PathBuf,
    map: Mmap,
    /// Byte offset of the data section (after the 8-byte length and the JSON header).
    data_start: usize,
    tensors: HashMap<String, TensorEntry>,
}

impl MappedFile {
    #[allow(unsafe_code)] // the named exception: mapping a checkpoint
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: the map is read-only; a checkpoint changed on disk while we load it is outside
        // what any loader can guard against (transformers maps the same way).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let bad = |e: safetensors::SafeTensorError| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        // Full validation (offsets inside the file, no overlap): catches truncated files.
        SafeTensors::deserialize(&map).map_err(bad)?;
        let (header_len, metadata) = SafeTensors::read_metadata(&map).map_err(bad)?;
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let entry = TensorEntry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    range: info.data_offsets,
                };
                (name, entry)
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            map,
            data_start: 8 + header_len,
            tensors,
        })
    }
}

/// The weight files of one checkpoint folder, memory-mapped.
pub struct WeightFiles {
    files: Vec<MappedFile>,
    /// Tensor name → index into `files`.
    index: HashMap<String, usize>,
    dir: PathBuf,
}

impl WeightFiles {
    /// Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let paths: Vec<PathBuf> = if index_path.is_file() {
            super::hub::shard_names(&index_path)?
                .into_iter()
                .map(|n| dir.join(n))
                .collect()
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(ModelError::Config {
                path: dir.to_path_buf(),
                message: "no model.safetensors or model.safetensors.index.json in this folder"
                    .into(),
            });
        };
        Self::open_files(dir, &paths)
    }

    /// Opens the given safetensors files (used for adapters and tests too).
    pub fn open_files(dir: &Path, paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut index = HashMap::new();
        for path in paths {
            let file = MappedFile::open(path)?;
            for name in file.tensors.keys() {
                index.insert(name.clone(), files.len());
            }
            files.push(file);
        }
        Ok(Self {
            files,
            index,
            dir: dir.to_path_buf(),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }
}

impl WeightSource for WeightFiles {
    fn raw(&self, name: &str) -> Option<RawTensor<'_>> {
        let file = &self.files[*self.index.get(name)?];
        let entry = file.tensors.get(name)?;
        let (start, end) = entry.range;
        Some(RawTensor {
            dtype: entry.dtype,
            shape: &entry.shape,
            data: &file.map[file.data_start + start..file.data_start + end],
        })
    }

    #[allow(unsafe_code)] // the named exception: dropping a mapped checkpoint's pages
    fn release(&self, name: &str) {
        let Some(file) = self.index.get(name).map(|i| &self.files[*i]) else {
            return;
        };
        if let Some(TensorEntry {
            range: (start, end),
            ..
        }) = file.tensors.get(name)
        {
            // SAFETY: a read-only shared file mapping; dropped pages are read back from the file
            // if touched again, so no data is lost. Failure only means the pages stay resident.
            #[cfg(unix)]
            let _ = unsafe {
                file.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    file.data_start + start,
                    end - start,
                )
            };
        }
    }

    fn origin(&self, name: &str) -> PathBuf {
        match self.index.get(name) {
            Some(i) => self.files[*i].path.clone(),
            None if self.files.len() == 1 => self.files[0].path.clone(),
            None => self.dir.clone(),
        }
    }
}
