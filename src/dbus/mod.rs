//! The D-Bus adapter: the contract's objects, each method a short delegation to
//! [`Service`](crate::service::Service) after the caller check. Imports zbus, `service`, `model`.

pub mod auth;
pub mod convert;
mod credential;
pub mod error;
mod job;
mod manager;
pub mod pump;
mod task;

use crate::service::Service;
use std::sync::Arc;
use zbus::{ObjectServer, zvariant::OwnedObjectPath};

pub use credential::CredentialIface;
pub use job::JobIface;
pub use manager::ManagerIface;
pub use task::TaskIface;

/// The well-known bus name.
pub const BUS_NAME: &str = "org.cloudsyncd.CloudSync1";
/// The Manager's object path.
pub const ROOT: &str = "/org/cloudsyncd/CloudSync1";

/// What every object needs: the service and the caller check.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The service.
    pub svc: Arc<Service>,
    /// The caller check.
    pub auth: auth::Auth,
}

fn path(kind: &str, id: u64) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{ROOT}/{kind}/{id}")).expect("ids make valid object paths")
}

/// The object path of credential `id`.
#[must_use]
pub fn credential_path(id: u64) -> OwnedObjectPath {
    path("credential", id)
}

/// The object path of job `id`.
#[must_use]
pub fn job_path(id: u64) -> OwnedObjectPath {
    path("job", id)
}

/// The object path of task `id`.
#[must_use]
pub fn task_path(id: u64) -> OwnedObjectPath {
    path("task", id)
}

/// Makes sure job `id`'s object exists before its path goes back to the caller (the event pump
/// may not have published it yet); returns the path.
pub(crate) async fn serve_job(server: &ObjectServer, ctx: &Ctx, id: u64) -> OwnedObjectPath {
    let path = job_path(id);
    if let Err(e) = server.at(path.clone(), job::JobIface { ctx: ctx.clone(), id }).await {
        tracing::warn!(job = id, error = %e, "could not publish the job object");
    }
    path
}

/// Serves the Manager, the ObjectManager and one object per stored credential and task.
///
/// # Errors
/// An object cannot be served.
pub async fn serve_all(server: &ObjectServer, ctx: &Ctx) -> zbus::Result<()> {
    server.at(ROOT, zbus::fdo::ObjectManager).await?;
    server.at(ROOT, ManagerIface { ctx: ctx.clone() }).await?;
    for id in ctx.svc.credential_ids() {
        server.at(credential_path(id), CredentialIface { ctx: ctx.clone(), id }).await?;
    }
    for id in ctx.svc.task_ids() {
        server.at(task_path(id), TaskIface { ctx: ctx.clone(), id }).await?;
    }
    for id in ctx.svc.job_ids() {
        server.at(job_path(id), job::JobIface { ctx: ctx.clone(), id }).await?;
    }
    Ok(())
}
