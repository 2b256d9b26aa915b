//! Conversions between D-Bus values and the model's [`Value`]. `ArgDict` reads an `a{sv}` argument
//! keeping duplicate keys, so that they can be refused instead of silently dropped.

use crate::model::{Entries, Value};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::{collections::HashMap, fmt};
use zbus::zvariant::{self, OwnedValue, Signature, Type};

/// An `a{sv}` method argument, in the order sent, duplicates kept.
#[derive(Debug, Default)]
pub struct ArgDict(pub Vec<(String, OwnedValue)>);

impl Type for ArgDict {
    const SIGNATURE: &'static Signature = <HashMap<String, OwnedValue> as Type>::SIGNATURE;
}

impl<'de> Deserialize<'de> for ArgDict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ArgDict;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dictionary a{sv}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ArgDict, A::Error> {
                let mut out = Vec::new();
                // No cap here: the bus bounds the message size, and validation refuses unknown
                // keys by name (an InvalidArgument, not a transport error).
                while let Some((k, v)) = m.next_entry::<String, OwnedValue>()? {
                    out.push((k, v));
                }
                Ok(ArgDict(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl serde::Serialize for ArgDict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl ArgDict {
    /// The entries as model values.
    #[must_use]
    pub fn into_entries(self) -> Entries {
        self.0.into_iter().map(|(k, v)| (k, from_zvalue(&v))).collect()
    }
}

/// A D-Bus value as a model value; types the contract does not use become `Other(signature)`.
#[must_use]
pub fn from_zvalue(v: &zvariant::Value<'_>) -> Value {
    match v {
        zvariant::Value::Bool(b) => Value::Bool(*b),
        zvariant::Value::U32(n) => Value::U32(*n),
        zvariant::Value::U64(n) => Value::U64(*n),
        zvariant::Value::Str(s) => Value::Str(s.to_string()),
        zvariant::Value::Array(a) if a.element_signature() == &Signature::Str => Value::StrList(
            a.iter()
                .filter_map(|e| match e {
                    zvariant::Value::Str(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        zvariant::Value::Dict(d) if d.signature().to_string() == "a{sv}" => Value::Map(
            d.iter()
                .filter_map(|(k, v)| match k {
                    // The values of an a{sv} come wrapped in their variant.
                    zvariant::Value::Str(k) => Some((
                        k.to_string(),
                        from_zvalue(match v {
                            zvariant::Value::Value(inner) => inner,
                            other => other,
                        }),
                    )),
                    _ => None,
                })
                .collect(),
        ),
        other => Value::Other(other.value_signature().to_string()),
    }
}

/// A model value as a D-Bus value.
#[must_use]
pub fn to_zvalue(v: &Value) -> OwnedValue {
    let z: zvariant::Value<'static> = match v {
        Value::Bool(b) => (*b).into(),
        Value::U32(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::Str(s) => s.clone().into(),
        Value::StrList(l) => l.clone().into(),
        Value::Map(m) => to_dict(m).into(),
        Value::Other(sig) => sig.clone().into(),
    };
    OwnedValue::try_from(z).expect("values without file descriptors always convert")
}

/// Entries as an `a{sv}` dictionary.
#[must_use]
pub fn to_dict(entries: &Entries) -> HashMap<String, OwnedValue> {
    entries.iter().map(|(k, v)| (k.clone(), to_zvalue(v))).collect()
}
