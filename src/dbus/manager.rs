//! `org.cloudsyncd.CloudSync1.Manager` at the root path.

use super::{CredentialIface, Ctx, TaskIface, convert::ArgDict, credential_path, error::Result, task_path};
use zbus::{ObjectServer, interface, message::Header, zvariant::OwnedObjectPath};

/// The Manager object.
#[derive(Debug)]
pub struct ManagerIface {
    pub(super) ctx: Ctx,
}

#[interface(name = "org.cloudsyncd.CloudSync1.Manager")]
impl ManagerIface {
    /// Stores a cloud credential.
    #[zbus(out_args("credential"))]
    async fn create_credential(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        name: String,
        provider: String,
        attributes: ArgDict,
    ) -> Result<OwnedObjectPath> {
        self.ctx.auth.require_admin(&hdr).await?;
        let id = self.ctx.svc.create_credential(&name, &provider, attributes.into_entries())?;
        server.at(credential_path(id), CredentialIface { ctx: self.ctx.clone(), id }).await?;
        Ok(credential_path(id))
    }

    /// Stores a cloud sync task.
    #[zbus(out_args("task"))]
    async fn create_task(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        config: ArgDict,
    ) -> Result<OwnedObjectPath> {
        self.ctx.auth.require_admin(&hdr).await?;
        let id = self.ctx.svc.create_task(config.into_entries())?;
        server.at(task_path(id), TaskIface { ctx: self.ctx.clone(), id }).await?;
        Ok(task_path(id))
    }

    /// Runs a task configuration once without storing it; returns the job.
    #[zbus(out_args("job"))]
    async fn run_once(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        config: ArgDict,
        options: ArgDict,
    ) -> Result<OwnedObjectPath> {
        self.ctx.auth.require_admin(&hdr).await?;
        let id = self.ctx.svc.run_once(config.into_entries(), options.into_entries())?;
        Ok(super::serve_job(server, &self.ctx, id).await)
    }

    /// Provider names this build supports.
    #[zbus(property(emits_changed_signal = "const"))]
    fn providers(&self) -> Vec<String> {
        self.ctx.svc.providers()
    }

    /// The daemon's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }
}
