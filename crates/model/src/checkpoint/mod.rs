//! Hugging Face checkpoint folders: finding them (local or hub), reading and writing their
//! safetensors weights.

mod hub;
mod save;
mod weights;

pub use hub::{SIDE_FILES, copy_side_files, resolve_model_dir};
pub use save::{write_atomically, write_safetensors};
pub use weights::{HostTensor, RawTensor, WeightFiles, WeightSource};
