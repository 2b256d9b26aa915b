//! `org.cloudsyncd.CloudSync1.Task`, one object per task.

use super::{
    Ctx,
    convert::{ArgDict, to_dict},
    error::{Result, prop},
    task_path,
};
use std::collections::HashMap;
use zbus::{
    ObjectServer, interface,
    message::Header,
    object_server::SignalEmitter,
    zvariant::{OwnedObjectPath, OwnedValue},
};

/// A task object.
#[derive(Debug)]
pub struct TaskIface {
    pub(super) ctx: Ctx,
    pub(super) id: u64,
}

#[interface(name = "org.cloudsyncd.CloudSync1.Task")]
impl TaskIface {
    /// Partial update, validated as a whole.
    async fn update(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        changes: ArgDict,
    ) -> Result<()> {
        self.ctx.auth.require_admin(&hdr).await?;
        self.ctx.svc.update_task(self.id, changes.into_entries())?;
        self.config_changed(&emitter).await?;
        self.next_run_changed(&emitter).await?;
        Ok(())
    }

    /// Deletes the task.
    async fn delete(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<()> {
        self.ctx.auth.require_admin(&hdr).await?;
        self.ctx.svc.delete_task(self.id)?;
        server.remove::<Self, _>(task_path(self.id)).await?;
        Ok(())
    }

    /// Creates the reversed task (disabled).
    #[zbus(out_args("task"))]
    async fn restore(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        options: ArgDict,
    ) -> Result<OwnedObjectPath> {
        self.ctx.auth.require_admin(&hdr).await?;
        let id = self.ctx.svc.restore_task(self.id, options.into_entries())?;
        server.at(task_path(id), Self { ctx: self.ctx.clone(), id }).await?;
        Ok(task_path(id))
    }

    /// Run Now (whether or not the task is enabled); returns the job. While a job runs one more
    /// waits; a third call returns the waiting job.
    #[zbus(out_args("job"))]
    async fn run(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        options: ArgDict,
    ) -> Result<OwnedObjectPath> {
        self.ctx.auth.require_admin(&hdr).await?;
        let id = self.ctx.svc.run_task(self.id, options.into_entries())?;
        Ok(super::serve_job(server, &self.ctx, id).await)
    }

    /// Stops the running job and drops the waiting one; false when there was none.
    async fn abort(&self, #[zbus(header)] hdr: Header<'_>) -> Result<bool> {
        self.ctx.auth.require_admin(&hdr).await?;
        Ok(self.ctx.svc.abort_task(self.id)?)
    }

    /// The task's id.
    #[zbus(property(emits_changed_signal = "const"))]
    fn id(&self) -> u64 {
        self.id
    }

    /// The stored configuration, secrets masked.
    #[zbus(property)]
    fn config(&self) -> zbus::fdo::Result<HashMap<String, OwnedValue>> {
        Ok(to_dict(&self.ctx.svc.task_config(self.id).map_err(prop)?))
    }

    /// `PENDING`, `WAITING`, `RUNNING`, `SUCCESS`, `FAILED` or `ABORTED`.
    #[zbus(property)]
    fn state(&self) -> zbus::fdo::Result<String> {
        Ok(self.ctx.svc.task_state(self.id).map_err(prop)?.0.to_owned())
    }

    /// The running or newest job, `/` when none.
    #[zbus(property)]
    fn last_job(&self) -> zbus::fdo::Result<OwnedObjectPath> {
        Ok(match self.ctx.svc.task_state(self.id).map_err(prop)?.1 {
            Some(j) => super::job_path(j),
            None => OwnedObjectPath::try_from("/").expect("/ is a valid path"),
        })
    }

    /// Next scheduled start (unix seconds), 0 when disabled.
    #[zbus(property)]
    fn next_run(&self) -> zbus::fdo::Result<u64> {
        self.ctx.svc.task_next_run(self.id).map_err(prop)
    }
}
