//! Typed reading of a configuration dictionary: duplicate, unknown and wrongly typed keys are
//! refused with an error naming the key. Pure: imports std and `model::value`.

use super::value::{Entries, Value};
use std::{collections::BTreeMap, fmt};

/// A refused key and why, shown to the user as `key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The offending key, dotted for nested keys (`attributes.bucket`).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// A new error for `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Result of a validation step.
pub type VResult<T> = Result<T, ValidationError>;

/// The longest string value (a path's worth).
pub const MAX_STRING: usize = 4096;
/// The longest script.
pub const MAX_SCRIPT: usize = 1 << 20;
/// The most items of a list value.
pub const MAX_LIST: usize = 1000;

/// Reads keys out of a dictionary one by one; `finish` refuses whatever was not read.
pub(crate) struct Reader {
    prefix: String,
    map: BTreeMap<String, Value>,
}

impl Reader {
    /// Takes the entries, refusing a key given twice. `prefix` is `""` or e.g. `"attributes."`.
    pub(crate) fn new(prefix: &str, entries: Entries) -> VResult<Self> {
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            if map.insert(k.clone(), v).is_some() {
                return Err(ValidationError::new(format!("{prefix}{k}"), "key given more than once"));
            }
        }
        Ok(Self { prefix: prefix.to_owned(), map })
    }

    /// The full (prefixed) name of `key`, for error messages.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether `key` is present (not yet taken).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn take(&mut self, key: &str, want: &str) -> VResult<Option<Value>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(v) if v.signature() == want => Ok(Some(v)),
            Some(v) => {
                Err(ValidationError::new(self.name(key), format!("expected type {want}, got {}", v.signature())))
            }
        }
    }

    pub(crate) fn str(&mut self, key: &str) -> VResult<Option<String>> {
        let v = self.take(key, "s")?;
        let Some(Value::Str(s)) = v else { return Ok(None) };
        if s.contains('\0') {
            return Err(ValidationError::new(self.name(key), "must not contain a NUL character"));
        }
        // Scripts may be long; nothing else needs more than a path's worth.
        let max = if key.ends_with("_script") { MAX_SCRIPT } else { MAX_STRING };
        if s.len() > max {
            return Err(ValidationError::new(
                self.name(key),
                format!("is too long ({} bytes, at most {max})", s.len()),
            ));
        }
        Ok(Some(s))
    }

    pub(crate) fn bool(&mut self, key: &str) -> VResult<Option<bool>> {
        Ok(match self.take(key, "b")? {
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        })
    }

    pub(crate) fn u32(&mut self, key: &str) -> VResult<Option<u32>> {
        Ok(match self.take(key, "u")? {
            Some(Value::U32(n)) => Some(n),
            _ => None,
        })
    }

    pub(crate) fn u64(&mut self, key: &str) -> VResult<Option<u64>> {
        Ok(match self.take(key, "t")? {
            Some(Value::U64(n)) => Some(n),
            _ => None,
        })
    }

    pub(crate) fn strs(&mut self, key: &str) -> VResult<Option<Vec<String>>> {
        let v = self.take(key, "as")?;
        let Some(Value::StrList(l)) = v else { return Ok(None) };
        if l.len() > MAX_LIST {
            return Err(ValidationError::new(self.name(key), format!("has {} items, at most {MAX_LIST}", l.len())));
        }
        if let Some((i, s)) = l.iter().enumerate().find(|(_, s)| s.len() > MAX_STRING) {
            return Err(ValidationError::new(
                format!("{}.{i}", self.name(key)),
                format!("is too long ({} bytes)", s.len()),
            ));
        }
        if l.iter().any(|s| s.contains('\0')) {
            return Err(ValidationError::new(self.name(key), "must not contain a NUL character"));
        }
        Ok(Some(l))
    }

    pub(crate) fn map(&mut self, key: &str) -> VResult<Option<Entries>> {
        Ok(match self.take(key, "a{sv}")? {
            Some(Value::Map(m)) => Some(m),
            _ => None,
        })
    }

    /// A required string, refused when missing or empty.
    pub(crate) fn required_str(&mut self, key: &str) -> VResult<String> {
        match self.str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ValidationError::new(self.name(key), "must not be empty")),
            None => Err(ValidationError::new(self.name(key), "is required")),
        }
    }

    /// Refuses the first key that nobody read.
    pub(crate) fn finish(self) -> VResult<()> {
        match self.map.into_keys().next() {
            Some(k) => Err(ValidationError::new(format!("{}{k}", self.prefix), "unknown key")),
            None => Ok(()),
        }
    }
}

/// Applies `changes` on top of `stored` as the contract's `Update` says: given keys replace stored
/// ones, the map under `nested` is merged key by key, and a secret (named in `secrets`, with its
/// dotted name for nested keys) sent as `"********"` keeps its stored value.
pub(crate) fn merge(stored: Entries, changes: Entries, nested: &str, secrets: &[&str]) -> VResult<Entries> {
    let mut out = stored;
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in changes {
        if !seen.insert(k.clone()) {
            return Err(ValidationError::new(k, "key given more than once"));
        }
        let pos = out.iter().position(|(sk, _)| *sk == k);
        let v = match (v, pos.map(|p| &out[p].1)) {
            (Value::Map(m), Some(Value::Map(old))) if k == nested => {
                let secrets_in: Vec<String> =
                    secrets.iter().filter_map(|s| s.strip_prefix(&format!("{nested}.")).map(str::to_owned)).collect();
                let names: Vec<&str> = secrets_in.iter().map(String::as_str).collect();
                Value::Map(
                    merge(old.clone(), m, "", &names)
                        .map_err(|e| ValidationError::new(format!("{nested}.{}", e.key), e.message))?,
                )
            }
            (Value::Str(s), Some(old)) if s == super::secret::MASK && secrets.contains(&k.as_str()) => old.clone(),
            (v, _) => v,
        };
        match pos {
            Some(p) => out[p].1 = v,
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn reader_refuses_duplicates_unknown_and_wrong_types() {
        let e = Reader::new("", vec![("a".into(), s("1")), ("a".into(), s("2"))]).err().unwrap();
        assert_eq!(e.to_string(), "a: key given more than once");
        let mut r = Reader::new("attributes.", vec![("n".into(), s("x")), ("z".into(), s(""))]).unwrap();
        assert_eq!(r.u32("n").unwrap_err().to_string(), "attributes.n: expected type u, got s");
        assert_eq!(r.finish().unwrap_err().to_string(), "attributes.z: unknown key");
    }

    #[test]
    fn merge_keeps_masked_secrets_and_merges_nested() {
        let stored = vec![
            ("pw".into(), s("real")),
            ("attributes".into(), Value::Map(vec![("bucket".into(), s("b")), ("k".into(), s("sec"))])),
        ];
        let changes = vec![
            ("pw".into(), s("********")),
            ("attributes".into(), Value::Map(vec![("folder".into(), s("f")), ("k".into(), s("********"))])),
        ];
        let out = merge(stored, changes, "attributes", &["pw", "attributes.k"]).unwrap();
        assert_eq!(out[0].1, s("real"));
        let Value::Map(m) = &out[1].1 else { panic!() };
        assert_eq!(m.len(), 3);
        assert!(m.contains(&("k".into(), s("sec"))));
        let cleared = merge(out, vec![("pw".into(), s(""))], "attributes", &["pw"]).unwrap();
        assert_eq!(cleared[0].1, s(""));
    }
}
