//! Cloud sync tasks: the configuration keys of the contract, their defaults, validation as a
//! whole, masking, and the reversed task made by `Restore`. Pure: imports std, the other `model`
//! files and `schedule`; file-system facts come through [`Environment`].

use super::{
    credential::{Environment, Provider},
    fields::{Reader, VResult, ValidationError},
    secret::Secret,
    value::{Entries, Value},
};
use std::fmt;

/// Which way data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local to remote.
    Push,
    /// Remote to local.
    Pull,
}

/// What a run does with the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Make the destination identical (deletes extraneous files).
    Sync,
    /// Copy new and changed files, never delete.
    Copy,
    /// Copy, then delete each source file once its copy is verified.
    Move,
}

/// Who owns the files a PULL writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Owner, group and default ACL of the folder the file lands in.
    Inherit,
    /// Owner, group and mode from the object's metadata where present.
    Preserve,
    /// Root, as TrueNAS does.
    Root,
}

macro_rules! str_enum {
    ($t:ty, $key:literal, $($v:ident = $s:literal),+) => {
        impl $t {
            /// The name used on the bus.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }

            fn parse(s: &str, key: &str) -> VResult<Self> {
                match s {
                    $($s => Ok(Self::$v),)+
                    _ => Err(ValidationError::new(key, format!(
                        "expected one of {}, got {s:?}", [$($s),+].join(", ")))),
                }
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(Direction, "direction", Push = "PUSH", Pull = "PULL");
str_enum!(TransferMode, "transfer_mode", Sync = "SYNC", Copy = "COPY", Move = "MOVE");
str_enum!(Ownership, "ownership", Inherit = "inherit", Preserve = "preserve", Root = "root");

/// One entry of the bandwidth timetable: from `minute` (after local midnight) on, at most `rate`
/// bytes per second (`None` = no limit), until the next entry; the table repeats daily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwLimit {
    /// Minutes after midnight, 0..1440.
    pub minute: u16,
    /// Bytes per second, `None` for off.
    pub rate: Option<u64>,
}

impl BwLimit {
    /// Parses `HH:MM,RATE` or `HH:MM,off`; RATE is bytes per second, optionally with a K, M or G
    /// suffix (1024-based).
    ///
    /// # Errors
    /// A message saying what is wrong with the entry.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (time, rate) = s.split_once(',').ok_or_else(|| format!("{s:?}: expected HH:MM,RATE or HH:MM,off"))?;
        let (h, m) = time.split_once(':').ok_or_else(|| format!("{s:?}: time must be HH:MM"))?;
        let num = |t: &str, max: u16| -> Option<u16> {
            (t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
                .filter(|n| *n < max)
        };
        let (Some(h), Some(m)) = (num(h, 24), num(m, 60)) else {
            return Err(format!("{s:?}: time must be HH:MM between 00:00 and 23:59"));
        };
        let rate = rate.trim();
        let rate = if rate.eq_ignore_ascii_case("off") {
            None
        } else {
            let (digits, mult) = match rate.as_bytes().last() {
                Some(b'K' | b'k') => (&rate[..rate.len() - 1], 1u64 << 10),
                Some(b'M' | b'm') => (&rate[..rate.len() - 1], 1 << 20),
                Some(b'G' | b'g') => (&rate[..rate.len() - 1], 1 << 30),
                _ => (rate, 1),
            };
            let n: u64 = digits
                .parse()
                .ok()
                .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("{s:?}: rate must be bytes per second, e.g. 1048576, 512K, 10M or off"))?;
            if n == 0 {
                return Err(format!("{s:?}: a rate of 0 would stop the transfer; use off for no limit"));
            }
            Some(n.checked_mul(mult).ok_or_else(|| format!("{s:?}: rate is too large"))?)
        };
        Ok(Self { minute: h * 60 + m, rate })
    }

    /// The entry as `HH:MM,RATE` with RATE in bytes per second, or `HH:MM,off`.
    #[must_use]
    pub fn to_text(&self) -> String {
        let t = format!("{:02}:{:02}", self.minute / 60, self.minute % 60);
        match self.rate {
            Some(r) => format!("{t},{r}"),
            None => format!("{t},off"),
        }
    }
}

/// The remote side of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskAttrs {
    /// The bucket (S3, B2); empty for LOCAL.
    pub bucket: String,
    /// The folder under the bucket or LOCAL root, without leading or trailing slashes.
    pub folder: String,
    /// S3 storage class for uploads, `""` for the bucket's default.
    pub storage_class: String,
    /// S3 region of the bucket, `""` for the credential's or detected one.
    pub region: String,
    /// Server-side encryption: `""` or `AES256`.
    pub encryption: String,
    /// List the whole tree at once (accepted for TrueNAS compatibility; we always stream).
    pub fast_list: bool,
    /// Multipart part size in MiB.
    pub chunk_size: u64,
    /// A SYNC deletes every version of a removed object.
    pub hard_delete: bool,
    /// Send RestoreObject for archived objects met on the way.
    pub glacier_restore: bool,
}

/// The storage classes S3 accepts on upload.
pub const STORAGE_CLASSES: [&str; 8] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
];

/// A task's configuration, validated as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskConfig {
    /// The provider of `credentials`, fixed when validated.
    pub provider: Provider,
    /// Free text.
    pub description: String,
    /// The local directory.
    pub path: String,
    /// Credential id.
    pub credentials: u64,
    /// The remote side.
    pub attributes: TaskAttrs,
    /// Five cron fields.
    pub schedule: String,
    /// Whether the schedule starts runs.
    pub enabled: bool,
    /// PUSH or PULL.
    pub direction: Direction,
    /// SYNC, COPY or MOVE.
    pub transfer_mode: TransferMode,
    /// Push from a ZFS snapshot.
    pub snapshot: bool,
    /// Script run before the transfer.
    pub pre_script: String,
    /// Script run after a successful transfer.
    pub post_script: String,
    /// rclone include patterns.
    pub include: Vec<String>,
    /// rclone exclude patterns.
    pub exclude: Vec<String>,
    /// Parallel transfers.
    pub transfers: u32,
    /// Bandwidth timetable.
    pub bwlimit: Vec<BwLimit>,
    /// rclone crypt.
    pub encryption: bool,
    /// Encrypt file names too.
    pub filename_encryption: bool,
    /// Crypt password.
    pub encryption_password: Secret,
    /// Crypt salt (rclone's `password2`).
    pub encryption_salt: Secret,
    /// Create empty source folders at the destination.
    pub create_empty_src_dirs: bool,
    /// Follow symlinks instead of skipping them.
    pub follow_symlinks: bool,
    /// SYNC: most files deleted, as a percent of the destination's files; 0 = no limit.
    pub max_delete: u32,
    /// PULL: owner of written files.
    pub ownership: Ownership,
    /// Seconds a script may run.
    pub script_timeout: u32,
}

/// The secret task keys.
pub const TASK_SECRETS: [&str; 2] = ["encryption_password", "encryption_salt"];

/// Where a configuration comes from, which changes what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `CreateTask`, `Update`, `Restore`: scripts allowed.
    Stored,
    /// `RunOnce`: scripts refused.
    RunOnce,
}

/// Drops leading and trailing slashes of a remote folder and refuses `..`, `.`, empty segments
/// in the middle, NUL and control characters.
///
/// # Errors
/// `attributes.folder` with the reason.
pub fn normalize_folder(folder: &str) -> VResult<String> {
    let key = "attributes.folder";
    let f = folder.trim_matches('/');
    if f.is_empty() {
        return Ok(String::new());
    }
    for seg in f.split('/') {
        match seg {
            ".." => return Err(ValidationError::new(key, "must not contain \"..\"")),
            "." | "" => return Err(ValidationError::new(key, "must not contain \".\" or empty segments")),
            s if s.chars().any(char::is_control) => {
                return Err(ValidationError::new(key, "must not contain control characters"));
            }
            _ => {}
        }
    }
    Ok(f.to_owned())
}

impl TaskAttrs {
    fn parse(provider: Provider, entries: Entries) -> VResult<Self> {
        let mut r = Reader::new("attributes.", entries)?;
        let bucket = if provider.uses_buckets() {
            let b = r.required_str("bucket")?;
            if b.contains('/') || b.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ValidationError::new("attributes.bucket", "must be a bucket name, without '/' or spaces"));
            }
            b
        } else {
            if r.has("bucket") {
                return Err(ValidationError::new(
                    "attributes.bucket",
                    "a LOCAL task has no bucket; use attributes.folder under the credential's root",
                ));
            }
            String::new()
        };
        let folder = normalize_folder(&r.str("folder")?.unwrap_or_default())?;
        let mut a = Self {
            bucket,
            folder,
            storage_class: String::new(),
            region: String::new(),
            encryption: String::new(),
            fast_list: false,
            chunk_size: 16,
            hard_delete: false,
            glacier_restore: false,
        };
        if provider.uses_buckets() {
            a.fast_list = r.bool("fast_list")?.unwrap_or(false);
            a.hard_delete = r.bool("hard_delete")?.unwrap_or(false);
            a.chunk_size = r.u64("chunk_size")?.unwrap_or(16);
            if !(5..=5120).contains(&a.chunk_size) {
                return Err(ValidationError::new("attributes.chunk_size", "must be between 5 and 5120 (MiB)"));
            }
        }
        if provider == Provider::S3 {
            a.storage_class = r.str("storage_class")?.unwrap_or_default();
            if !a.storage_class.is_empty() && !STORAGE_CLASSES.contains(&a.storage_class.as_str()) {
                return Err(ValidationError::new(
                    "attributes.storage_class",
                    format!("expected \"\" or one of {}", STORAGE_CLASSES.join(", ")),
                ));
            }
            a.region = r.str("region")?.unwrap_or_default();
            if !a.region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(ValidationError::new("attributes.region", "may hold only letters, digits, '-' and '_'"));
            }
            a.encryption = r.str("encryption")?.unwrap_or_default();
            if !matches!(a.encryption.as_str(), "" | "AES256") {
                return Err(ValidationError::new("attributes.encryption", "expected \"\" or AES256"));
            }
            a.glacier_restore = r.bool("glacier_restore")?.unwrap_or(false);
        }
        // A key that exists for another provider gets a clearer message than "unknown key".
        for k in [
            "bucket",
            "storage_class",
            "region",
            "encryption",
            "fast_list",
            "chunk_size",
            "hard_delete",
            "glacier_restore",
        ] {
            if r.has(k) {
                return Err(ValidationError::new(r.name(k), format!("not used by provider {provider}")));
            }
        }
        r.finish()?;
        Ok(a)
    }

    fn to_entries(&self, provider: Provider) -> Entries {
        let mut e = Vec::new();
        if provider.uses_buckets() {
            e.push(("bucket".to_owned(), Value::Str(self.bucket.clone())));
        }
        e.push(("folder".to_owned(), Value::Str(self.folder.clone())));
        if provider.uses_buckets() {
            e.push(("fast_list".to_owned(), Value::Bool(self.fast_list)));
            e.push(("chunk_size".to_owned(), Value::U64(self.chunk_size)));
            e.push(("hard_delete".to_owned(), Value::Bool(self.hard_delete)));
        }
        if provider == Provider::S3 {
            e.push(("storage_class".to_owned(), Value::Str(self.storage_class.clone())));
            e.push(("region".to_owned(), Value::Str(self.region.clone())));
            e.push(("encryption".to_owned(), Value::Str(self.encryption.clone())));
            e.push(("glacier_restore".to_owned(), Value::Bool(self.glacier_restore)));
        }
        e
    }
}

fn check_patterns(key: &str, pats: &[String]) -> VResult<()> {
    for (i, p) in pats.iter().enumerate() {
        if p.trim().is_empty() {
            return Err(ValidationError::new(format!("{key}.{i}"), "pattern must not be empty"));
        }
        if p.chars().any(char::is_control) {
            return Err(ValidationError::new(format!("{key}.{i}"), "pattern must not contain control characters"));
        }
    }
    Ok(())
}

impl TaskConfig {
    /// Validates a whole configuration.
    ///
    /// # Errors
    /// The first refused key, by name, with the reason.
    #[allow(clippy::too_many_lines)] // one straight list of the contract's keys
    pub fn parse(entries: Entries, env: &dyn Environment, origin: Origin) -> VResult<Self> {
        let mut r = Reader::new("", entries)?;
        let description = r.str("description")?.unwrap_or_default();
        if description.len() > 1000 {
            return Err(ValidationError::new("description", "must be at most 1000 bytes"));
        }
        let path = r.required_str("path")?;
        if !path.starts_with('/') {
            return Err(ValidationError::new("path", "must be an absolute path"));
        }
        if path.split('/').any(|s| s == "..") {
            return Err(ValidationError::new("path", "must not contain \"..\""));
        }
        env.check_dir(&path).map_err(|m| ValidationError::new("path", m))?;
        let path = if path.len() > 1 { path.trim_end_matches('/').to_owned() } else { path };
        let credentials = r.u64("credentials")?.ok_or_else(|| ValidationError::new("credentials", "is required"))?;
        let provider = env
            .credential_provider(credentials)
            .ok_or_else(|| ValidationError::new("credentials", format!("credential {credentials} does not exist")))?;
        let attributes = TaskAttrs::parse(provider, r.map("attributes")?.unwrap_or_default())?;
        let schedule = r.str("schedule")?.unwrap_or_else(|| "0 0 * * *".to_owned());
        crate::schedule::Schedule::parse(&schedule).map_err(|e| ValidationError::new("schedule", e.to_string()))?;
        let direction = match r.str("direction")? {
            Some(s) => Direction::parse(&s, "direction")?,
            None => return Err(ValidationError::new("direction", "is required (PUSH or PULL)")),
        };
        let transfer_mode = match r.str("transfer_mode")? {
            Some(s) => TransferMode::parse(&s, "transfer_mode")?,
            None => return Err(ValidationError::new("transfer_mode", "is required (SYNC, COPY or MOVE)")),
        };
        let snapshot = r.bool("snapshot")?.unwrap_or(false);
        if snapshot && direction != Direction::Push {
            return Err(ValidationError::new("snapshot", "only a PUSH can read from a snapshot"));
        }
        if snapshot && transfer_mode == TransferMode::Move {
            return Err(ValidationError::new(
                "snapshot",
                "cannot be used with MOVE (files in a snapshot cannot be deleted)",
            ));
        }
        let pre_script = r.str("pre_script")?.unwrap_or_default();
        let post_script = r.str("post_script")?.unwrap_or_default();
        if origin == Origin::RunOnce {
            for (k, v) in [("pre_script", &pre_script), ("post_script", &post_script)] {
                if !v.is_empty() {
                    return Err(ValidationError::new(k, "scripts are not allowed in RunOnce"));
                }
            }
        }
        let include = r.strs("include")?.unwrap_or_default();
        check_patterns("include", &include)?;
        let exclude = r.strs("exclude")?.unwrap_or_default();
        check_patterns("exclude", &exclude)?;
        let transfers = r.u32("transfers")?.unwrap_or(4);
        if !(1..=64).contains(&transfers) {
            return Err(ValidationError::new("transfers", "must be between 1 and 64"));
        }
        let mut bwlimit = Vec::new();
        for (i, s) in r.strs("bwlimit")?.unwrap_or_default().iter().enumerate() {
            let e = BwLimit::parse(s).map_err(|m| ValidationError::new(format!("bwlimit.{i}"), m))?;
            if bwlimit.last().is_some_and(|p: &BwLimit| p.minute >= e.minute) {
                return Err(ValidationError::new(format!("bwlimit.{i}"), "times must be strictly increasing"));
            }
            bwlimit.push(e);
        }
        let encryption = r.bool("encryption")?.unwrap_or(false);
        let filename_encryption = r.bool("filename_encryption")?.unwrap_or(false);
        let encryption_password = Secret::new(r.str("encryption_password")?.unwrap_or_default());
        let encryption_salt = Secret::new(r.str("encryption_salt")?.unwrap_or_default());
        if encryption && encryption_password.is_empty() {
            return Err(ValidationError::new("encryption_password", "is required when encryption is on"));
        }
        let max_delete = r.u32("max_delete")?.unwrap_or(0);
        if max_delete > 100 {
            return Err(ValidationError::new("max_delete", "is a percent: at most 100 (0 = no limit)"));
        }
        let ownership = match r.str("ownership")? {
            Some(s) => Ownership::parse(&s, "ownership")?,
            None => Ownership::Inherit,
        };
        if ownership != Ownership::Inherit && direction == Direction::Push {
            return Err(ValidationError::new("ownership", "only applies to PULL"));
        }
        let script_timeout = r.u32("script_timeout")?.unwrap_or(3600);
        if !(1..=7 * 86_400).contains(&script_timeout) {
            return Err(ValidationError::new("script_timeout", "must be between 1 and 604800 seconds"));
        }
        let cfg = Self {
            provider,
            description,
            path,
            credentials,
            attributes,
            schedule,
            enabled: r.bool("enabled")?.unwrap_or(true),
            direction,
            transfer_mode,
            snapshot,
            pre_script,
            post_script,
            include,
            exclude,
            transfers,
            bwlimit,
            encryption,
            filename_encryption,
            encryption_password,
            encryption_salt,
            create_empty_src_dirs: r.bool("create_empty_src_dirs")?.unwrap_or(false),
            follow_symlinks: r.bool("follow_symlinks")?.unwrap_or(false),
            max_delete,
            ownership,
            script_timeout,
        };
        r.finish()?;
        Ok(cfg)
    }

    /// The configuration as a dictionary with every key; secrets masked when `masked`.
    #[must_use]
    pub fn to_entries(&self, masked: bool) -> Entries {
        let s = |v: &str| Value::Str(v.to_owned());
        let secret = |v: &Secret| s(if masked { v.masked() } else { v.expose() });
        vec![
            ("description".to_owned(), s(&self.description)),
            ("path".to_owned(), s(&self.path)),
            ("credentials".to_owned(), Value::U64(self.credentials)),
            ("attributes".to_owned(), Value::Map(self.attributes.to_entries(self.provider))),
            ("schedule".to_owned(), s(&self.schedule)),
            ("enabled".to_owned(), Value::Bool(self.enabled)),
            ("direction".to_owned(), s(self.direction.as_str())),
            ("transfer_mode".to_owned(), s(self.transfer_mode.as_str())),
            ("snapshot".to_owned(), Value::Bool(self.snapshot)),
            ("pre_script".to_owned(), s(&self.pre_script)),
            ("post_script".to_owned(), s(&self.post_script)),
            ("include".to_owned(), Value::StrList(self.include.clone())),
            ("exclude".to_owned(), Value::StrList(self.exclude.clone())),
            ("transfers".to_owned(), Value::U32(self.transfers)),
            ("bwlimit".to_owned(), Value::StrList(self.bwlimit.iter().map(BwLimit::to_text).collect())),
            ("encryption".to_owned(), Value::Bool(self.encryption)),
            ("filename_encryption".to_owned(), Value::Bool(self.filename_encryption)),
            ("encryption_password".to_owned(), secret(&self.encryption_password)),
            ("encryption_salt".to_owned(), secret(&self.encryption_salt)),
            ("create_empty_src_dirs".to_owned(), Value::Bool(self.create_empty_src_dirs)),
            ("follow_symlinks".to_owned(), Value::Bool(self.follow_symlinks)),
            ("max_delete".to_owned(), Value::U32(self.max_delete)),
            ("ownership".to_owned(), s(self.ownership.as_str())),
            ("script_timeout".to_owned(), Value::U32(self.script_timeout)),
        ]
    }
}

/// What `Task.Restore` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Description of the new task.
    pub description: String,
    /// SYNC or COPY (default COPY: a restore never deletes local files unless asked to).
    pub transfer_mode: TransferMode,
    /// The local destination.
    pub path: String,
}

impl RestoreOptions {
    /// Parses the options of `Task.Restore`.
    ///
    /// # Errors
    /// The refused option, by name.
    pub fn parse(entries: Entries, old: &TaskConfig) -> VResult<Self> {
        let mut r = Reader::new("", entries)?;
        let description = r.str("description")?.unwrap_or_else(|| {
            if old.description.is_empty() { "Restore".to_owned() } else { format!("Restore of {}", old.description) }
        });
        let transfer_mode = match r.str("transfer_mode")? {
            None => TransferMode::Copy,
            Some(s) => match TransferMode::parse(&s, "transfer_mode")? {
                TransferMode::Move => return Err(ValidationError::new("transfer_mode", "a restore is SYNC or COPY")),
                m => m,
            },
        };
        let path = r.required_str("path")?;
        r.finish()?;
        Ok(Self { description, transfer_mode, path })
    }
}

impl TaskConfig {
    /// The configuration of the reversed task `Restore` creates, before validation: direction
    /// flipped, disabled; credentials, attributes, encryption keys, schedule, transfers and
    /// `max_delete` copied; filters, bwlimit, scripts, snapshot, symlinks, empty folders and
    /// ownership back to their defaults.
    #[must_use]
    pub fn restore_entries(&self, opts: &RestoreOptions) -> Entries {
        let s = |v: &str| Value::Str(v.to_owned());
        let direction = match self.direction {
            Direction::Push => Direction::Pull,
            Direction::Pull => Direction::Push,
        };
        vec![
            ("description".to_owned(), s(&opts.description)),
            ("path".to_owned(), s(&opts.path)),
            ("credentials".to_owned(), Value::U64(self.credentials)),
            ("attributes".to_owned(), Value::Map(self.attributes.to_entries(self.provider))),
            ("schedule".to_owned(), s(&self.schedule)),
            ("enabled".to_owned(), Value::Bool(false)),
            ("direction".to_owned(), s(direction.as_str())),
            ("transfer_mode".to_owned(), s(opts.transfer_mode.as_str())),
            ("transfers".to_owned(), Value::U32(self.transfers)),
            ("encryption".to_owned(), Value::Bool(self.encryption)),
            ("filename_encryption".to_owned(), Value::Bool(self.filename_encryption)),
            ("encryption_password".to_owned(), s(self.encryption_password.expose())),
            ("encryption_salt".to_owned(), s(self.encryption_salt.expose())),
            ("max_delete".to_owned(), Value::U32(self.max_delete)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Yes;
    impl Environment for Yes {
        fn check_dir(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn credential_provider(&self, _: u64) -> Option<Provider> {
            Some(Provider::S3)
        }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    #[test]
    fn debug_never_prints_secrets_and_entries_round_trip() {
        let entries = vec![
            ("path".to_owned(), s("/mnt/tank")),
            ("credentials".to_owned(), Value::U64(1)),
            ("direction".to_owned(), s("PUSH")),
            ("transfer_mode".to_owned(), s("COPY")),
            ("encryption".to_owned(), Value::Bool(true)),
            ("encryption_password".to_owned(), s("pw-SECRET-1")),
            ("encryption_salt".to_owned(), s("salt-SECRET-2")),
            ("attributes".to_owned(), Value::Map(vec![("bucket".to_owned(), s("b"))])),
        ];
        let cfg = TaskConfig::parse(entries, &Yes, Origin::Stored).unwrap();
        let dbg = format!("{cfg:?} {:?}", cfg.to_entries(false));
        assert!(!dbg.contains("SECRET"), "{dbg}");
        let again = TaskConfig::parse(cfg.to_entries(false), &Yes, Origin::Stored).unwrap();
        assert_eq!(again, cfg);
        let masked = cfg.to_entries(true);
        assert!(masked.contains(&("encryption_password".to_owned(), s("********"))));
    }

    #[test]
    fn bwlimit_entries() {
        assert_eq!(BwLimit::parse("08:00,10M").unwrap(), BwLimit { minute: 480, rate: Some(10 << 20) });
        assert_eq!(BwLimit::parse("23:59,off").unwrap(), BwLimit { minute: 1439, rate: None });
        assert_eq!(BwLimit::parse("00:00,1024").unwrap().to_text(), "00:00,1024");
        for bad in ["8:00,1M", "08:60,1M", "24:00,1M", "08:00", "08:00,", "08:00,0", "08:00,1T", "08:00,-1"] {
            assert!(BwLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folders_are_normalised_or_refused() {
        assert_eq!(normalize_folder("/a/b/").unwrap(), "a/b");
        assert_eq!(normalize_folder("").unwrap(), "");
        for bad in ["a/../b", "..", "a//b", "./a", "a/\u{1}"] {
            assert!(normalize_folder(bad).is_err(), "{bad}");
        }
    }
}
