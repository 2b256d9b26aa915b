//! The LOCAL provider's credential calls: verify and list a folder; and the `ListDirectory`
//! location of every provider. Imports std and `model`.

use super::DirEntry;
use crate::model::{Entries, Provider, Secret, ValidationError, fields::VResult, task::normalize_folder};
use std::{os::unix::fs::MetadataExt, path::Path};

/// A `ListDirectory` location.
#[derive(Debug)]
pub(crate) struct Location {
    /// The bucket (bucket providers), else empty.
    pub(crate) bucket: String,
    pub(crate) folder: String,
    /// How to decrypt the folder's names, when it is encrypted.
    pub(crate) encryption: Option<Encryption>,
}

/// The encryption keys of a `ListDirectory` location. `Debug` masks the secrets.
#[derive(Debug)]
pub(crate) struct Encryption {
    pub(crate) filename_encryption: bool,
    pub(crate) password: Secret,
    pub(crate) salt: Secret,
}

impl Location {
    pub(crate) fn parse(provider: Provider, entries: Entries) -> VResult<Self> {
        let mut r = crate::model::fields::Reader::new("", entries)?;
        let bucket = if provider.uses_buckets() {
            r.required_str("bucket")?
        } else if r.has("bucket") {
            return Err(ValidationError::new("bucket", "LOCAL does not use buckets"));
        } else {
            String::new()
        };
        let folder = normalize_folder(&r.str("folder")?.unwrap_or_default())
            .map_err(|e| ValidationError::new("folder", e.message))?;
        let encryption = r.bool("encryption")?.unwrap_or(false);
        let filename_encryption = r.bool("filename_encryption")?.unwrap_or(false);
        let password = Secret::new(r.str("encryption_password")?.unwrap_or_default());
        let salt = Secret::new(r.str("encryption_salt")?.unwrap_or_default());
        r.finish()?;
        if encryption && password.is_empty() {
            return Err(ValidationError::new("encryption_password", "is required when encryption is on"));
        }
        let encryption = encryption.then_some(Encryption { filename_encryption, password, salt });
        Ok(Self { bucket, folder, encryption })
    }
}

pub(crate) fn verify(root: &str) -> Result<(), String> {
    std::fs::read_dir(root).map(|_| ()).map_err(|e| format!("cannot list {root}: {e}"))
}

pub(crate) fn list(root: &str, loc: &Location) -> Result<Vec<DirEntry>, String> {
    let dir = if loc.folder.is_empty() { Path::new(root).to_owned() } else { Path::new(root).join(&loc.folder) };
    let rd = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".zfs" {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
        let path = if loc.folder.is_empty() { name.clone() } else { format!("{}/{name}", loc.folder) };
        out.push(DirEntry {
            name,
            path,
            size: if m.is_dir() { 0 } else { m.len() },
            mtime: u64::try_from(m.mtime()).unwrap_or(0),
            is_dir: m.is_dir(),
            decrypted: false,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
