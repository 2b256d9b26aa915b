//! The caller check made before every method but `ReadLog`: only root (or the user the daemon
//! itself runs as, for a private development bus) may call; the uid comes from the bus.

use super::error::Error;
use zbus::{fdo::DBusProxy, message::Header, names::BusName};

/// Asks the bus who called.
#[derive(Clone, Debug)]
pub struct Auth {
    proxy: DBusProxy<'static>,
    own_uid: u32,
}

impl Auth {
    /// A checker on `conn`.
    ///
    /// # Errors
    /// The bus proxy cannot be made.
    pub async fn new(conn: &zbus::Connection) -> zbus::Result<Self> {
        let proxy = DBusProxy::builder(conn).cache_properties(zbus::proxy::CacheProperties::No).build().await?;
        Ok(Self { proxy, own_uid: rustix::process::geteuid().as_raw() })
    }

    /// Refuses callers other than root and the daemon's own user.
    ///
    /// # Errors
    /// `PermissionDenied`, or a bus failure.
    pub async fn require_admin(&self, hdr: &Header<'_>) -> Result<(), Error> {
        let sender = hdr.sender().ok_or_else(|| Error::PermissionDenied("the call has no sender".into()))?;
        let uid = self
            .proxy
            .get_connection_unix_user(BusName::Unique(sender.to_owned()))
            .await
            .map_err(|e| Error::PermissionDenied(format!("cannot tell who called: {e}")))?;
        if uid == 0 || uid == self.own_uid {
            Ok(())
        } else {
            tracing::warn!(uid, member = ?hdr.member(), "refused a call from an unprivileged user");
            Err(Error::PermissionDenied(format!("uid {uid} may not call this method: only root may")))
        }
    }
}
