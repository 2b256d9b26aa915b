//! The one D-Bus error enum: `org.cloudsyncd.CloudSync1.Error.*`, built from service errors.

use crate::service::ServiceError;

/// Errors as the contract names them.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cloudsyncd.CloudSync1.Error")]
pub enum Error {
    /// A zbus failure.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A bad or missing key or option.
    InvalidArgument(String),
    /// The object vanished.
    NotFound(String),
    /// The object is busy with a running job.
    Busy(String),
    /// The credential is in use.
    InUse(String),
    /// The caller may not do this.
    PermissionDenied(String),
    /// Anything else.
    Failed(String),
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::InvalidArgument(m) => Self::InvalidArgument(m),
            ServiceError::NotFound(m) => Self::NotFound(m),
            ServiceError::Busy(m) => Self::Busy(m),
            ServiceError::InUse(m) => Self::InUse(m),
            ServiceError::PermissionDenied(m) => Self::PermissionDenied(m),
            ServiceError::Failed(m) => Self::Failed(m),
        }
    }
}

/// Result of a method.
pub type Result<T> = std::result::Result<T, Error>;

/// A service error as a property-read error.
pub(crate) fn prop(e: ServiceError) -> zbus::fdo::Error {
    zbus::fdo::Error::Failed(e.to_string())
}
