//! `org.cloudsyncd.CloudSync1.Job`, one object per kept job.

use super::{
    Ctx,
    error::{Result, prop},
};
use crate::service::JobView;
use zbus::{interface, message::Header, object_server::SignalEmitter, zvariant::OwnedObjectPath};

/// A job object.
#[derive(Debug)]
pub struct JobIface {
    pub(super) ctx: Ctx,
    pub(super) id: u64,
}

impl JobIface {
    fn view(&self) -> zbus::fdo::Result<JobView> {
        self.ctx.svc.job(self.id).map_err(prop)
    }
}

#[interface(name = "org.cloudsyncd.CloudSync1.Job")]
impl JobIface {
    /// Log text from byte `offset`, at most `max` bytes, and the next offset. Readable by the
    /// `cloudsync` group (the bus policy decides; the daemon does not check the caller here).
    #[zbus(out_args("text", "next_offset"))]
    fn read_log(&self, offset: u64, max: u32) -> Result<(String, u64)> {
        Ok(self.ctx.svc.read_log(self.id, offset, max)?)
    }

    /// Stops the job (and the waiting one of its task); false when it was not running.
    async fn abort(&self, #[zbus(header)] hdr: Header<'_>) -> Result<bool> {
        self.ctx.auth.require_admin(&hdr).await?;
        Ok(self.ctx.svc.abort_job(self.id)?)
    }

    /// Sent once, when the job ends.
    #[zbus(signal)]
    pub(super) async fn finished(emitter: &SignalEmitter<'_>, state: &str, error: &str) -> zbus::Result<()>;

    /// The task, `/` for a `RunOnce` job.
    #[zbus(property(emits_changed_signal = "const"))]
    fn task(&self) -> zbus::fdo::Result<OwnedObjectPath> {
        Ok(match self.view()?.record.task {
            Some(t) => super::task_path(t),
            None => OwnedObjectPath::try_from("/").expect("valid path"),
        })
    }

    /// `WAITING`, `RUNNING`, `SUCCESS`, `FAILED` or `ABORTED`.
    #[zbus(property)]
    fn state(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.record.state.as_str().to_owned())
    }

    /// Whether this is a dry run.
    #[zbus(property(emits_changed_signal = "const"))]
    fn dry_run(&self) -> zbus::fdo::Result<bool> {
        Ok(self.view()?.record.dry_run)
    }

    /// BytesDone / BytesTotal in percent; 100 when SUCCESS.
    #[zbus(property)]
    fn percent(&self) -> zbus::fdo::Result<f64> {
        Ok(self.view()?.percent())
    }

    /// A progress sentence.
    #[zbus(property)]
    fn description(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.description())
    }

    /// Plaintext bytes transferred.
    #[zbus(property)]
    fn bytes_done(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.snapshot().bytes_done)
    }

    /// Plaintext bytes to transfer.
    #[zbus(property)]
    fn bytes_total(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.snapshot().bytes_total)
    }

    /// Files transferred.
    #[zbus(property)]
    fn files_done(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.snapshot().files_done)
    }

    /// Files to transfer.
    #[zbus(property)]
    fn files_total(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.snapshot().files_total)
    }

    /// Bytes per second.
    #[zbus(property)]
    fn speed(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.snapshot().speed)
    }

    /// Seconds left.
    #[zbus(property)]
    fn eta(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.snapshot().eta)
    }

    /// When it became RUNNING (unix seconds), 0 before.
    #[zbus(property)]
    fn started_at(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.record.started_at)
    }

    /// When it ended (unix seconds), 0 before.
    #[zbus(property)]
    fn finished_at(&self) -> zbus::fdo::Result<u64> {
        Ok(self.view()?.record.finished_at)
    }

    /// Why it failed, "" otherwise.
    #[zbus(property)]
    fn error(&self) -> zbus::fdo::Result<String> {
        Ok(self.view()?.record.error)
    }
}
