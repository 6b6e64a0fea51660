//! Writing safetensors files without ever leaving a partial file where a good one was: write to a
//! temporary name in the same folder, then rename.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;

use super::weights::HostTensor;
use crate::error::{ModelError, Result};

/// Runs `write` on a temporary path beside `path`, then renames it into place.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| ModelError::Invalid(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| ModelError::io(path, e))
}

/// Writes named host tensors as one safetensors file with `{"format": "pt"}` metadata (what
/// transformers and PEFT expect).
pub fn write_safetensors(path: &Path, tensors: &[(String, HostTensor)]) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let view = TensorView::new(t.dtype, t.shape.clone(), &t.data).map_err(|e| {
            ModelError::Invalid(format!("{}: tensor `{name}`: {e}", path.display()))
        })?;
        views.push((name.clone(), view));
    }
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    write_atomically(path, |tmp| {
        safetensors::serialize_to_file(views, Some(metadata), tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}
