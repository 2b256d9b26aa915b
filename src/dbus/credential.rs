//! `org.cloudsyncd.CloudSync1.Credential`, one object per credential.

use super::{
    Ctx,
    convert::{ArgDict, to_dict},
    credential_path,
    error::{Result, prop},
};
use crate::{model::Value, service::DirEntry};
use std::collections::HashMap;
use zbus::{ObjectServer, interface, message::Header, object_server::SignalEmitter, zvariant::OwnedValue};

/// A credential object.
#[derive(Debug)]
pub struct CredentialIface {
    pub(super) ctx: Ctx,
    pub(super) id: u64,
}

fn entry(e: DirEntry) -> HashMap<String, OwnedValue> {
    to_dict(&vec![
        ("name".to_owned(), Value::Str(e.name)),
        ("path".to_owned(), Value::Str(e.path)),
        ("size".to_owned(), Value::U64(e.size)),
        ("mtime".to_owned(), Value::U64(e.mtime)),
        ("is_dir".to_owned(), Value::Bool(e.is_dir)),
        ("decrypted".to_owned(), Value::Bool(e.decrypted)),
    ])
}

#[interface(name = "org.cloudsyncd.CloudSync1.Credential")]
impl CredentialIface {
    /// Changes the name and attributes; omitted keys keep their value.
    async fn update(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        changes: ArgDict,
    ) -> Result<()> {
        self.ctx.auth.require_admin(&hdr).await?;
        self.ctx.svc.update_credential(self.id, changes.into_entries())?;
        self.name_changed(&emitter).await?;
        self.attributes_changed(&emitter).await?;
        Ok(())
    }

    /// Deletes the credential; refused with `InUse` while a task uses it.
    async fn delete(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<()> {
        self.ctx.auth.require_admin(&hdr).await?;
        self.ctx.svc.delete_credential(self.id)?;
        server.remove::<Self, _>(credential_path(self.id)).await?;
        Ok(())
    }

    /// Can we authenticate and list?
    #[zbus(out_args("valid", "reason"))]
    async fn verify(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(bool, String)> {
        self.ctx.auth.require_admin(&hdr).await?;
        Ok(self.ctx.svc.verify_credential(self.id).await?)
    }

    /// The buckets this credential sees.
    #[zbus(out_args("buckets"))]
    async fn list_buckets(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Vec<HashMap<String, OwnedValue>>> {
        self.ctx.auth.require_admin(&hdr).await?;
        let buckets = self.ctx.svc.list_buckets(self.id).await?;
        Ok(buckets
            .into_iter()
            .map(|(name, created)| {
                to_dict(&vec![("name".into(), Value::Str(name)), ("created".into(), Value::U64(created))])
            })
            .collect())
    }

    /// Lists one folder.
    #[zbus(out_args("entries"))]
    async fn list_directory(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        location: ArgDict,
    ) -> Result<Vec<HashMap<String, OwnedValue>>> {
        self.ctx.auth.require_admin(&hdr).await?;
        Ok(self.ctx.svc.list_directory(self.id, location.into_entries()).await?.into_iter().map(entry).collect())
    }

    /// The credential's id.
    #[zbus(property(emits_changed_signal = "const"))]
    fn id(&self) -> u64 {
        self.id
    }

    /// The credential's unique name.
    #[zbus(property)]
    fn name(&self) -> zbus::fdo::Result<String> {
        Ok(self.ctx.svc.credential(self.id).map_err(prop)?.name)
    }

    /// The provider.
    #[zbus(property(emits_changed_signal = "const"))]
    fn provider(&self) -> zbus::fdo::Result<String> {
        Ok(self.ctx.svc.credential(self.id).map_err(prop)?.provider.as_str().to_owned())
    }

    /// Provider attributes, secrets masked.
    #[zbus(property)]
    fn attributes(&self) -> zbus::fdo::Result<HashMap<String, OwnedValue>> {
        Ok(to_dict(&self.ctx.svc.credential(self.id).map_err(prop)?.attributes))
    }
}
