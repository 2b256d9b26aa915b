//! File metadata that travels with an object: owner, group, mode, mtime and ACLs, as the keys
//! rclone uses for its metadata (`mtime` RFC 3339, `uid`/`gid` decimal, `mode` octal unix style as
//! rclone's local backend writes them), so that rclone reads ours and we read rclone's; a POSIX
//! ACL as one more key in the text form `setfacl` takes (numeric ids), and the binary form of the
//! `system.posix_acl_*` xattrs. Pure: no IO; imports std, jiff and `engine::entry`.

use crate::engine::entry::Mtime;

/// rclone's key for the modification time (RFC 3339 with nanoseconds).
pub const KEY_MTIME: &str = "mtime";
/// rclone's key for the owner (decimal).
pub const KEY_UID: &str = "uid";
/// rclone's key for the group (decimal).
pub const KEY_GID: &str = "gid";
/// rclone's key for the file type and mode (octal, e.g. `100644`).
pub const KEY_MODE: &str = "mode";
/// Our key for the access ACL (`u::rw-,u:4321:rwx,g::r--,m::rwx,o::r--`).
pub const KEY_ACL_ACCESS: &str = "posix-acl-access";
/// Our key for a folder's default ACL (same form).
pub const KEY_ACL_DEFAULT: &str = "posix-acl-default";
/// Our key for an NFSv4 ACL (the `system.nfs4_acl_xdr` bytes, lower-case hex).
pub const KEY_NFS4_ACL: &str = "nfs4-acl-xdr";

/// The xattr of a POSIX access ACL.
pub const XATTR_ACL_ACCESS: &str = "system.posix_acl_access";
/// The xattr of a POSIX default ACL.
pub const XATTR_ACL_DEFAULT: &str = "system.posix_acl_default";
/// The xattr of an NFSv4 ACL (ZFS with `acltype=nfsv4`).
pub const XATTR_NFS4_ACL: &str = "system.nfs4_acl_xdr";

/// What we know about an object besides its bytes. Every field is optional: metadata written by
/// another tool may hold only some keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// `st_mode`: type bits and permission bits.
    pub mode: Option<u32>,
    /// Modification time.
    pub mtime: Option<Mtime>,
    /// POSIX access ACL.
    pub acl_access: Option<PosixAcl>,
    /// POSIX default ACL (folders).
    pub acl_default: Option<PosixAcl>,
    /// NFSv4 ACL, as the `system.nfs4_acl_xdr` bytes.
    pub nfs4_acl: Option<Vec<u8>>,
}

/// Why metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata {key}: {reason}")]
pub struct MetaError {
    /// The key.
    pub key: String,
    /// Why.
    pub reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> MetaError {
    MetaError { key: key.to_owned(), reason: reason.into() }
}

impl Meta {
    /// Whether nothing is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The permission bits (and set-id/sticky bits) of `mode`.
    #[must_use]
    pub fn perm(&self) -> Option<u32> {
        self.mode.map(|m| m & 0o7777)
    }

    /// The metadata as rclone-style keys and values, in a fixed order.
    #[must_use]
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if let Some(t) = self.mtime {
            v.push((KEY_MTIME.to_owned(), format_mtime(t)));
        }
        if let Some(u) = self.uid {
            v.push((KEY_UID.to_owned(), u.to_string()));
        }
        if let Some(g) = self.gid {
            v.push((KEY_GID.to_owned(), g.to_string()));
        }
        if let Some(m) = self.mode {
            v.push((KEY_MODE.to_owned(), format!("{m:o}")));
        }
        if let Some(a) = &self.acl_access {
            v.push((KEY_ACL_ACCESS.to_owned(), a.to_text()));
        }
        if let Some(a) = &self.acl_default {
            v.push((KEY_ACL_DEFAULT.to_owned(), a.to_text()));
        }
        if let Some(x) = &self.nfs4_acl {
            v.push((KEY_NFS4_ACL.to_owned(), x.iter().map(|b| format!("{b:02x}")).collect()));
        }
        v
    }

    /// Reads rclone-style pairs (keys compared without case, as S3 lower-cases them); unknown
    /// keys are ignored.
    ///
    /// # Errors
    /// A known key with a value that does not parse.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, MetaError> {
        let mut m = Self::default();
        for (k, v) in pairs {
            let key = k.to_ascii_lowercase();
            let v = v.trim();
            match key.as_str() {
                KEY_MTIME => {
                    m.mtime = Some(parse_mtime(v).ok_or_else(|| bad(KEY_MTIME, format!("{v:?} is not RFC 3339")))?)
                }
                KEY_UID => m.uid = Some(v.parse().map_err(|_| bad(KEY_UID, format!("{v:?} is not a number")))?),
                KEY_GID => m.gid = Some(v.parse().map_err(|_| bad(KEY_GID, format!("{v:?} is not a number")))?),
                KEY_MODE => {
                    m.mode = Some(u32::from_str_radix(v, 8).map_err(|_| bad(KEY_MODE, format!("{v:?} is not octal")))?);
                }
                KEY_ACL_ACCESS => m.acl_access = Some(PosixAcl::from_text(v).map_err(|e| bad(KEY_ACL_ACCESS, e))?),
                KEY_ACL_DEFAULT => m.acl_default = Some(PosixAcl::from_text(v).map_err(|e| bad(KEY_ACL_DEFAULT, e))?),
                KEY_NFS4_ACL => m.nfs4_acl = Some(unhex(v).ok_or_else(|| bad(KEY_NFS4_ACL, "not hex"))?),
                _ => {}
            }
        }
        Ok(m)
    }
}

/// RFC 3339 in UTC with as many fraction digits as needed (Go's `RFC3339Nano`).
#[must_use]
pub fn format_mtime(t: Mtime) -> String {
    match jiff::Timestamp::new(t.secs(), i32::try_from(t.subsec_nanos()).unwrap_or(0)) {
        Ok(ts) => {
            let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            let ns = t.subsec_nanos();
            if ns == 0 {
                format!("{base}Z")
            } else {
                let frac = format!("{ns:09}");
                format!("{base}.{}Z", frac.trim_end_matches('0'))
            }
        }
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// Parses RFC 3339 with any offset.
#[must_use]
pub fn parse_mtime(s: &str) -> Option<Mtime> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    Some(Mtime::from_parts(ts.as_second(), u32::try_from(ts.subsec_nanosecond()).ok()?))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The kind of a POSIX ACL entry (the kernel's tag values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tag {
    /// The owner (`u::`).
    UserObj,
    /// A named user (`u:<uid>:`).
    User(u32),
    /// The owning group (`g::`).
    GroupObj,
    /// A named group (`g:<gid>:`).
    Group(u32),
    /// The mask (`m::`).
    Mask,
    /// Everyone else (`o::`).
    Other,
}

/// One ACL entry: a tag and `rwx` bits (4, 2, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclEntry {
    /// Who.
    pub tag: Tag,
    /// `rwx` as 3 bits.
    pub perm: u8,
}

/// A POSIX ACL, kept in the kernel's order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PosixAcl(Vec<AclEntry>);

const ACL_XATTR_VERSION: u32 = 2;
const UNDEFINED_ID: u32 = u32::MAX;

impl PosixAcl {
    /// An ACL of these entries (sorted into the kernel's order).
    #[must_use]
    pub fn new(mut entries: Vec<AclEntry>) -> Self {
        entries.sort();
        entries.dedup_by_key(|e| e.tag);
        Self(entries)
    }

    /// The entries in the kernel's order.
    #[must_use]
    pub fn entries(&self) -> &[AclEntry] {
        &self.0
    }

    /// Decodes the value of a `system.posix_acl_*` xattr.
    ///
    /// # Errors
    /// A wrong version, length or tag.
    pub fn from_xattr(b: &[u8]) -> Result<Self, String> {
        if b.len() < 4 || !(b.len() - 4).is_multiple_of(8) {
            return Err(format!("ACL xattr of {} bytes", b.len()));
        }
        let version = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if version != ACL_XATTR_VERSION {
            return Err(format!("ACL xattr version {version}"));
        }
        let mut v = Vec::new();
        for e in b[4..].chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let tag = match tag {
                0x01 => Tag::UserObj,
                0x02 => Tag::User(id),
                0x04 => Tag::GroupObj,
                0x08 => Tag::Group(id),
                0x10 => Tag::Mask,
                0x20 => Tag::Other,
                t => return Err(format!("ACL tag {t:#x}")),
            };
            v.push(AclEntry { tag, perm: u8::try_from(perm & 7).unwrap_or(0) });
        }
        Ok(Self::new(v))
    }

    /// Encodes as the value of a `system.posix_acl_*` xattr.
    #[must_use]
    pub fn to_xattr(&self) -> Vec<u8> {
        let mut b = ACL_XATTR_VERSION.to_le_bytes().to_vec();
        for e in &self.0 {
            let (tag, id): (u16, u32) = match e.tag {
                Tag::UserObj => (0x01, UNDEFINED_ID),
                Tag::User(u) => (0x02, u),
                Tag::GroupObj => (0x04, UNDEFINED_ID),
                Tag::Group(g) => (0x08, g),
                Tag::Mask => (0x10, UNDEFINED_ID),
                Tag::Other => (0x20, UNDEFINED_ID),
            };
            b.extend_from_slice(&tag.to_le_bytes());
            b.extend_from_slice(&u16::from(e.perm).to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
        }
        b
    }

    /// The short text form with numeric ids, as `setfacl --set` takes it.
    #[must_use]
    pub fn to_text(&self) -> String {
        let perm = |p: u8| {
            format!(
                "{}{}{}",
                if p & 4 != 0 { 'r' } else { '-' },
                if p & 2 != 0 { 'w' } else { '-' },
                if p & 1 != 0 { 'x' } else { '-' }
            )
        };
        self.0
            .iter()
            .map(|e| match e.tag {
                Tag::UserObj => format!("u::{}", perm(e.perm)),
                Tag::User(u) => format!("u:{u}:{}", perm(e.perm)),
                Tag::GroupObj => format!("g::{}", perm(e.perm)),
                Tag::Group(g) => format!("g:{g}:{}", perm(e.perm)),
                Tag::Mask => format!("m::{}", perm(e.perm)),
                Tag::Other => format!("o::{}", perm(e.perm)),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the text form (short or long tag names, numeric ids only).
    ///
    /// # Errors
    /// An entry that is not `tag:id:perms`.
    pub fn from_text(s: &str) -> Result<Self, String> {
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split(':');
            let (Some(tag), Some(id), Some(p), None) = (it.next(), it.next(), it.next(), it.next()) else {
                return Err(format!("ACL entry {part:?} is not tag:id:perms"));
            };
            let num = || id.parse::<u32>().map_err(|_| format!("ACL entry {part:?}: {id:?} is not a numeric id"));
            let tag = match (tag, id.is_empty()) {
                ("u" | "user", true) => Tag::UserObj,
                ("u" | "user", false) => Tag::User(num()?),
                ("g" | "group", true) => Tag::GroupObj,
                ("g" | "group", false) => Tag::Group(num()?),
                ("m" | "mask", true) => Tag::Mask,
                ("o" | "other", true) => Tag::Other,
                _ => return Err(format!("ACL entry {part:?}: unknown tag")),
            };
            let bytes = p.as_bytes();
            if bytes.len() != 3 {
                return Err(format!("ACL entry {part:?}: perms must be like rwx or r-x"));
            }
            let mut perm = 0u8;
            for (i, (c, want)) in bytes.iter().zip([b'r', b'w', b'x']).enumerate() {
                match *c {
                    x if x == want => perm |= 4 >> i,
                    b'-' => {}
                    _ => return Err(format!("ACL entry {part:?}: perms must be like rwx or r-x")),
                }
            }
            v.push(AclEntry { tag, perm });
        }
        if v.is_empty() {
            return Err("empty ACL".into());
        }
        Ok(Self::new(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // getfattr -e hex of a file under a folder with default ACL u:4321:rwx (see the module docs).
    const XATTR_HEX: &str = "0200000001000600ffffffff02000700e110000004000500ffffffff10000600ffffffff20000400ffffffff";

    #[test]
    fn xattr_round_trip_matches_the_kernel_bytes() {
        let bytes = unhex(XATTR_HEX).unwrap();
        let acl = PosixAcl::from_xattr(&bytes).unwrap();
        assert_eq!(acl.to_text(), "u::rw-,u:4321:rwx,g::r-x,m::rw-,o::r--");
        assert_eq!(acl.to_xattr(), bytes);
        assert_eq!(PosixAcl::from_text(&acl.to_text()).unwrap(), acl);
    }

    #[test]
    fn text_accepts_long_names_and_sorts_like_the_kernel() {
        let a = PosixAcl::from_text("other::---, mask::rwx,user:7:r--,group::r-x,u::rwx,g:9:-w-").unwrap();
        assert_eq!(a.to_text(), "u::rwx,u:7:r--,g::r-x,g:9:-w-,m::rwx,o::---");
        for bad in ["", "u::rwz", "u:x:rwx", "z::rwx", "u:1:rw", "m:3:rwx", "u::r-x:extra"] {
            assert!(PosixAcl::from_text(bad).is_err(), "{bad:?}");
        }
        assert!(PosixAcl::from_xattr(&[1, 0, 0, 0]).is_err());
        assert!(PosixAcl::from_xattr(&[2, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn pairs_use_rclone_keys_and_formats() {
        let m = Meta {
            uid: Some(1000),
            gid: Some(100),
            mode: Some(0o100_640),
            mtime: Some(Mtime::from_parts(1_600_000_000, 123_456_000)),
            acl_access: Some(PosixAcl::from_text("u::rw-,u:5:r--,g::r--,m::r--,o::---").unwrap()),
            acl_default: None,
            nfs4_acl: Some(vec![0, 1, 0xab]),
        };
        let pairs = m.to_pairs();
        let get = |k: &str| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("mtime"), Some("2020-09-13T12:26:40.123456Z"));
        assert_eq!(get("uid"), Some("1000"));
        assert_eq!(get("gid"), Some("100"));
        assert_eq!(get("mode"), Some("100640"));
        assert_eq!(get("posix-acl-access"), Some("u::rw-,u:5:r--,g::r--,m::r--,o::---"));
        assert_eq!(get("nfs4-acl-xdr"), Some("0001ab"));
        let back = Meta::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.perm(), Some(0o640));
    }

    #[test]
    fn pairs_from_rclone_parse_and_bad_values_name_the_key() {
        // As rclone's local backend prints them (lsjson -M), and as S3 returns them (upper case).
        let m = Meta::from_pairs([
            ("mtime", "2023-05-11T17:54:11.523399602+01:00"),
            ("UID", "1000"),
            ("gid", "1000"),
            ("mode", "0100664"),
            ("atime", "2023-05-11T17:54:11.523399602+01:00"),
        ])
        .unwrap();
        assert_eq!(m.mode, Some(0o100_664));
        assert_eq!(m.uid, Some(1000));
        assert_eq!(m.mtime, Some(Mtime::from_parts(1_683_824_051, 523_399_602)));
        assert_eq!(format_mtime(Mtime::from_parts(1_683_824_051, 0)), "2023-05-11T16:54:11Z");
        let e = Meta::from_pairs([("mode", "rw-r--r--")]).unwrap_err();
        assert_eq!(e.key, "mode");
        assert!(Meta::from_pairs([("uid", "-1")]).is_err());
        assert!(Meta::from_pairs([("nfs4-acl-xdr", "abc")]).is_err());
        assert!(Meta::from_pairs([("other", "x")]).unwrap().is_empty());
    }
}
