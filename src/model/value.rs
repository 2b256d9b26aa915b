//! A transport-neutral value, the model's view of a D-Bus `a{sv}` entry. Pure: imports std only.

use std::{collections::BTreeMap, fmt};

/// An ordered list of key/value pairs as the caller sent them (duplicates kept, so they can be
/// refused).
pub type Entries = Vec<(String, Value)>;

/// A map of validated values, keyed by name.
pub type ValueMap = BTreeMap<String, Value>;

/// One value of a configuration dictionary.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// `b`
    Bool(bool),
    /// `u`
    U32(u32),
    /// `t`
    U64(u64),
    /// `s`
    Str(String),
    /// `as`
    StrList(Vec<String>),
    /// `a{sv}`
    Map(Entries),
    /// Any other D-Bus type, kept only by its signature so that it can be refused by name.
    Other(String),
}

impl Value {
    /// The D-Bus signature of this value, used in error messages.
    #[must_use]
    pub fn signature(&self) -> &str {
        match self {
            Self::Bool(_) => "b",
            Self::U32(_) => "u",
            Self::U64(_) => "t",
            Self::Str(_) => "s",
            Self::StrList(_) => "as",
            Self::Map(_) => "a{sv}",
            Self::Other(sig) => sig,
        }
    }
}

/// Values print without their contents: a string may be a secret.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "Bool({b})"),
            Self::U32(n) => write!(f, "U32({n})"),
            Self::U64(n) => write!(f, "U64({n})"),
            Self::Str(s) => write!(f, "Str(<{} bytes>)", s.len()),
            Self::StrList(l) => write!(f, "StrList(<{} items>)", l.len()),
            Self::Map(m) => write!(f, "Map(<{} entries>)", m.len()),
            Self::Other(sig) => write!(f, "Other({sig})"),
        }
    }
}
