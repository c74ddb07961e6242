//! Secrets a node keeps in its data directory when the operator gives none: 32 random bytes,
//! hex, in `<data>/secrets/<name>`, mode 600, created at first start.

use std::path::Path;

/// A secret file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The directory or file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// Which path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a secret kept in `<dir>/secrets/<name>`, creating it (32 random bytes, hex, mode 600)
/// when absent.
pub fn kept_secret(dir: &Path, name: &str) -> Result<Vec<u8>, SecretError> {
    let secrets = dir.join("secrets");
    let path = secrets.join(name);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.len() >= 32 {
            return Ok(s.as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(&secrets)
        .map_err(|source| SecretError::Write { path: secrets.display().to_string(), source })?;
    let value = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    std::fs::write(&path, &value).map_err(|source| SecretError::Write { path: path.display().to_string(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(value.into_bytes())
}
