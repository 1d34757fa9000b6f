//! What the agent keeps across restarts and power loss: read whole at
//! start (a missing file is a first start), replaced whole at every change
//! (written beside, then renamed), so a crash leaves the old or the new,
//! never half of either.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What `path` holds, or the default without a file (or without a path:
/// kept in memory only).
pub fn load<T: DeserializeOwned + Default>(path: Option<&Path>) -> std::io::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Replaces what `path` holds with `value`; nothing without a path.
pub fn save<T: Serialize>(path: Option<&Path>, value: &T) -> std::io::Result<()> {
    if let Some(path) = path {
        let partial = path.with_extension("partial");
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, path)?;
    }
    Ok(())
}
