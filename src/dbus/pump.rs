//! Publishes service events on the bus: job objects appear and vanish, and `PropertiesChanged`
//! for a job's state and progress goes out at most twice a second, one signal with every
//! changed property; when a job ends, its final properties and then `Finished` go out at once.

use super::{Ctx, TaskIface, job::JobIface, job_path, task_path};
use crate::service::{Event, JobView};
use std::{
    borrow::Cow,
    collections::HashMap,
    time::{Duration, Instant},
};
use tokio::sync::mpsc::UnboundedReceiver;
use zbus::{
    Connection,
    fdo::Properties,
    names::InterfaceName,
    object_server::SignalEmitter,
    zvariant::{ObjectPath, Value},
};

const MIN_GAP: Duration = Duration::from_millis(500);
const JOB_IFACE: &str = "org.cloudsyncd.CloudSync1.Job";

struct Published {
    last_emit: Option<Instant>,
    last: Option<Vec<(&'static str, String)>>,
    finished_pending: bool,
}

fn props(v: &JobView) -> Vec<(&'static str, Value<'static>)> {
    let s = v.snapshot();
    vec![
        ("State", Value::from(v.record.state.as_str().to_owned())),
        ("Percent", Value::from(v.percent())),
        ("Description", Value::from(v.description())),
        ("BytesDone", Value::from(s.bytes_done)),
        ("BytesTotal", Value::from(s.bytes_total)),
        ("FilesDone", Value::from(s.files_done)),
        ("FilesTotal", Value::from(s.files_total)),
        ("Speed", Value::from(s.speed)),
        ("Eta", Value::from(s.eta)),
        ("StartedAt", Value::from(v.record.started_at)),
        ("FinishedAt", Value::from(v.record.finished_at)),
        ("Error", Value::from(v.record.error.clone())),
    ]
}

/// Runs until the service's event channel closes.
pub async fn run(conn: Connection, ctx: Ctx, mut rx: UnboundedReceiver<Event>) {
    let server = conn.object_server();
    let mut jobs: HashMap<u64, Published> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                match ev {
                    Event::JobAdded(id) => {
                        let _ = server.at(job_path(id), JobIface { ctx: ctx.clone(), id }).await;
                        jobs.insert(id, Published { last_emit: None, last: None, finished_pending: false });
                    }
                    Event::JobChanged(id) => {
                        jobs.entry(id).or_insert(Published { last_emit: None, last: None, finished_pending: false });
                    }
                    Event::JobFinished(id) => {
                        jobs.entry(id).or_insert(Published { last_emit: None, last: None, finished_pending: false }).finished_pending = true;
                    }
                    Event::JobRemoved(id) => {
                        jobs.remove(&id);
                        let _ = server.remove::<JobIface, _>(job_path(id)).await;
                    }
                    Event::TaskChanged(id) => {
                        if let Ok(iface) = server.interface::<_, TaskIface>(task_path(id)).await {
                            let t = iface.get().await;
                            let e = iface.signal_emitter();
                            let _ = t.state_changed(e).await;
                            let _ = t.last_job_changed(e).await;
                            let _ = t.next_run_changed(e).await;
                        }
                    }
                }
            }
            _ = tick.tick() => {}
        }
        // Flush what is due: each job at most every MIN_GAP, and an ended job now (a client
        // waiting for `Finished` must not wait for the gap).
        let now = Instant::now();
        let mut done = Vec::new();
        for (id, p) in &mut jobs {
            if !p.finished_pending && p.last_emit.is_some_and(|t| now.duration_since(t) < MIN_GAP) {
                continue;
            }
            let Ok(view) = ctx.svc.job(*id) else {
                done.push(*id);
                continue;
            };
            let values = props(&view);
            let shown: Vec<(&'static str, String)> = values.iter().map(|(k, v)| (*k, format!("{v:?}"))).collect();
            let changed: HashMap<&str, Value<'_>> = match &p.last {
                None => values.into_iter().collect(),
                Some(last) => values
                    .into_iter()
                    .zip(last.iter())
                    .filter(|((_, v), (_, old))| format!("{v:?}") != *old)
                    .map(|((k, v), _)| (k, v))
                    .collect(),
            };
            let path = ObjectPath::try_from(job_path(*id).as_str().to_owned()).expect("valid path");
            if !changed.is_empty() {
                if let Ok(emitter) = SignalEmitter::new(&conn, path.clone()) {
                    let iface = InterfaceName::from_static_str_unchecked(JOB_IFACE);
                    let _ = Properties::properties_changed(&emitter, iface, changed, Cow::Borrowed(&[])).await;
                }
                p.last_emit = Some(now);
            }
            p.last = Some(shown);
            if p.finished_pending && view.record.state.is_final() {
                if let Ok(emitter) = SignalEmitter::new(&conn, path) {
                    let _ = JobIface::finished(&emitter, view.record.state.as_str(), &view.record.error).await;
                }
                done.push(*id);
            }
        }
        for id in done {
            jobs.remove(&id);
        }
    }
}
