//! The LOCAL provider's credential calls: verify and list a folder. Imports std and `model`.

use super::DirEntry;
use crate::model::{Entries, Provider, ValidationError, fields::VResult, task::normalize_folder};
use std::{os::unix::fs::MetadataExt, path::Path};

/// A `ListDirectory` location.
#[derive(Debug)]
pub(crate) struct Location {
    pub(crate) folder: String,
}

impl Location {
    pub(crate) fn parse(provider: Provider, entries: Entries) -> VResult<Self> {
        let mut r = crate::model::fields::Reader::new("", entries)?;
        if provider.uses_buckets() {
            r.required_str("bucket")?;
        } else if r.has("bucket") {
            return Err(ValidationError::new("bucket", "LOCAL does not use buckets"));
        }
        let folder = normalize_folder(&r.str("folder")?.unwrap_or_default())
            .map_err(|e| ValidationError::new("folder", e.message))?;
        let encryption = r.bool("encryption")?.unwrap_or(false);
        r.bool("filename_encryption")?;
        r.str("encryption_password")?;
        r.str("encryption_salt")?;
        r.finish()?;
        if encryption {
            return Err(ValidationError::new("encryption", "listing encrypted folders is not part of this build yet"));
        }
        Ok(Self { folder })
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
