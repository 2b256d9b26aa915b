//! `GetBucketLocation` response (`<LocationConstraint>`) to a region name; may import only std and the parent `xml` module.

use super::{S3XmlError, parse_root};

/// Parses a `GetBucketLocation` response into a region name.
///
/// An empty constraint means `us-east-1`, and the legacy `EU` means
/// `eu-west-1`; any other value is returned trimmed.
///
/// # Errors
///
/// [`S3XmlError::ErrorDocument`], [`S3XmlError::UnexpectedRoot`] and the
/// document-level errors.
pub fn parse_location_constraint(body: &[u8]) -> Result<String, S3XmlError> {
    let root = parse_root(body, &["LocationConstraint"])?;
    Ok(match root.text.trim() {
        "" => "us-east-1".to_owned(),
        "EU" => "eu-west-1".to_owned(),
        region => region.to_owned(),
    })
}
