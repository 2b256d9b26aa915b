//! Cloud credentials: providers, their attributes, validation and masking. Pure: imports std and
//! the other `model` files; file-system facts come through [`Environment`].

use super::{
    fields::{Reader, VResult, ValidationError},
    secret::Secret,
    value::{Entries, Value},
};
use std::fmt;

/// What validation needs to know about the world. The service answers from the file system and
/// its state; loading stored state answers "yes" to everything.
pub trait Environment {
    /// `Ok` when `path` is an existing directory, else why not.
    ///
    /// # Errors
    /// A sentence saying what is wrong with the path.
    fn check_dir(&self, path: &str) -> Result<(), String>;
    /// The provider of credential `id`, if it exists.
    fn credential_provider(&self, id: u64) -> Option<Provider>;
}

/// A storage provider this build supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Provider {
    /// Amazon S3 and S3-compatible storage.
    S3,
    /// Backblaze B2 through its S3-compatible API.
    B2,
    /// A directory on this machine (USB disk, NFS mount, or for trying the service out).
    #[serde(rename = "LOCAL")]
    Local,
}

impl Provider {
    /// Every provider, in the order `Providers` lists them.
    pub const ALL: [Self; 3] = [Self::S3, Self::B2, Self::Local];

    /// The name used on the bus.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "S3",
            Self::B2 => "B2",
            Self::Local => "LOCAL",
        }
    }

    /// Parses a provider name.
    ///
    /// # Errors
    /// `provider` names the supported providers.
    pub fn parse(s: &str) -> VResult<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            ValidationError::new("provider", format!("unknown provider {s:?}, expected one of S3, B2, LOCAL"))
        })
    }

    /// Whether tasks on this provider name a bucket.
    #[must_use]
    pub fn uses_buckets(self) -> bool {
        !matches!(self, Self::Local)
    }

    /// The secret attribute names of this provider.
    #[must_use]
    pub fn secrets(self) -> &'static [&'static str] {
        match self {
            Self::S3 => &["secret_access_key"],
            Self::B2 => &["key"],
            Self::Local => &[],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// S3 attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Attrs {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// `""` for AWS, else an `http(s)://` URL.
    pub endpoint: String,
    /// Region, `""` to detect it.
    pub region: String,
    /// Do not detect or send a region (some S3-compatible servers).
    pub skip_region: bool,
    /// Path-style addressing; `None` = path style for custom endpoints, virtual-hosted for AWS.
    pub force_path_style: Option<bool>,
    /// The most parts of one multipart upload.
    pub max_upload_parts: u32,
    /// A PEM file of CA certificates to trust for a private endpoint, `""` for the system roots.
    pub ca_file: String,
}

/// B2 attributes (its S3-compatible API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2Attrs {
    /// Application key id.
    pub account: String,
    /// Application key.
    pub key: Secret,
    /// The S3 endpoint of the bucket's region, e.g. `https://s3.us-west-004.backblazeb2.com`.
    pub endpoint: String,
    /// The region, e.g. `us-west-004`.
    pub region: String,
}

/// LOCAL attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAttrs {
    /// An absolute directory; tasks keep their tree in `root/folder`.
    pub root: String,
}

/// A provider's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialAttrs {
    /// S3.
    S3(S3Attrs),
    /// B2.
    B2(B2Attrs),
    /// LOCAL.
    Local(LocalAttrs),
}

/// A stored credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Never reused.
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// Attributes, which also say the provider.
    pub attrs: CredentialAttrs,
}

impl Credential {
    /// The provider.
    #[must_use]
    pub fn provider(&self) -> Provider {
        match self.attrs {
            CredentialAttrs::S3(_) => Provider::S3,
            CredentialAttrs::B2(_) => Provider::B2,
            CredentialAttrs::Local(_) => Provider::Local,
        }
    }
}

/// Checks a credential name.
///
/// # Errors
/// `name` when empty, too long or with control characters.
pub fn check_name(name: &str) -> VResult<()> {
    if name.trim().is_empty() {
        return Err(ValidationError::new("name", "must not be empty"));
    }
    if name.len() > 150 {
        return Err(ValidationError::new("name", "must be at most 150 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new("name", "must not contain control characters"));
    }
    Ok(())
}

fn check_endpoint(r: &Reader, endpoint: &str) -> VResult<()> {
    if endpoint.is_empty() {
        return Ok(());
    }
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| ValidationError::new(r.name("endpoint"), "must be \"\" or an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::new(r.name("endpoint"), "has no valid host"));
    }
    Ok(())
}

fn check_region(r: &Reader, region: &str) -> VResult<()> {
    if region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(())
    } else {
        Err(ValidationError::new(r.name("region"), "may hold only letters, digits, '-' and '_'"))
    }
}

impl CredentialAttrs {
    /// Validates `entries` as the attributes of `provider`.
    ///
    /// # Errors
    /// The first refused key, by name.
    pub fn parse(provider: Provider, entries: Entries, env: &dyn Environment) -> VResult<Self> {
        let mut r = Reader::new("attributes.", entries)?;
        let attrs = match provider {
            Provider::S3 => {
                let access_key_id = r.required_str("access_key_id")?;
                let secret_access_key = Secret::new(r.required_str("secret_access_key")?);
                let endpoint = r.str("endpoint")?.unwrap_or_default();
                check_endpoint(&r, &endpoint)?;
                let region = r.str("region")?.unwrap_or_default();
                check_region(&r, &region)?;
                let max_upload_parts = r.u32("max_upload_parts")?.unwrap_or(10_000);
                if !(1..=10_000).contains(&max_upload_parts) {
                    return Err(ValidationError::new(r.name("max_upload_parts"), "must be between 1 and 10000"));
                }
                let ca_file = r.str("ca_file")?.unwrap_or_default();
                if !ca_file.is_empty() && !ca_file.starts_with('/') {
                    return Err(ValidationError::new(r.name("ca_file"), "must be an absolute path"));
                }
                Self::S3(S3Attrs {
                    access_key_id,
                    secret_access_key,
                    endpoint,
                    region,
                    skip_region: r.bool("skip_region")?.unwrap_or(false),
                    force_path_style: r.bool("force_path_style")?,
                    max_upload_parts,
                    ca_file,
                })
            }
            Provider::B2 => {
                let account = r.required_str("account")?;
                let key = Secret::new(r.required_str("key")?);
                let endpoint = r.str("endpoint")?.unwrap_or_default();
                check_endpoint(&r, &endpoint)?;
                let region = r.str("region")?.unwrap_or_default();
                check_region(&r, &region)?;
                Self::B2(B2Attrs { account, key, endpoint, region })
            }
            Provider::Local => {
                let root = r.required_str("root")?;
                if !root.starts_with('/') {
                    return Err(ValidationError::new(r.name("root"), "must be an absolute path"));
                }
                env.check_dir(&root).map_err(|m| ValidationError::new(r.name("root"), m))?;
                let root = if root.len() > 1 { root.trim_end_matches('/').to_owned() } else { root };
                Self::Local(LocalAttrs { root })
            }
        };
        r.finish()?;
        Ok(attrs)
    }

    /// The attributes as a dictionary; secrets masked when `masked`.
    #[must_use]
    pub fn to_entries(&self, masked: bool) -> Entries {
        let secret = |s: &Secret| Value::Str(if masked { s.masked().to_owned() } else { s.expose().to_owned() });
        let s = |v: &str| Value::Str(v.to_owned());
        match self {
            Self::S3(a) => {
                let mut e = vec![
                    ("access_key_id".to_owned(), s(&a.access_key_id)),
                    ("secret_access_key".to_owned(), secret(&a.secret_access_key)),
                    ("endpoint".to_owned(), s(&a.endpoint)),
                    ("region".to_owned(), s(&a.region)),
                    ("skip_region".to_owned(), Value::Bool(a.skip_region)),
                    ("max_upload_parts".to_owned(), Value::U32(a.max_upload_parts)),
                    ("ca_file".to_owned(), s(&a.ca_file)),
                ];
                if let Some(p) = a.force_path_style {
                    e.push(("force_path_style".to_owned(), Value::Bool(p)));
                }
                e
            }
            Self::B2(a) => vec![
                ("account".to_owned(), s(&a.account)),
                ("key".to_owned(), secret(&a.key)),
                ("endpoint".to_owned(), s(&a.endpoint)),
                ("region".to_owned(), s(&a.region)),
            ],
            Self::Local(a) => vec![("root".to_owned(), s(&a.root))],
        }
    }
}
