//! The state file: jobs found by task after a save and a load, and files this build cannot
//! read refused with the reason, untouched.

use cloudsyncd::{
    model::job::{JobRecord, JobState},
    store::{Jobs, State, Store},
};

fn job(id: u64, task: Option<u64>, state: JobState) -> JobRecord {
    JobRecord::new(id, task, state, false)
}

fn ids<'a>(it: impl Iterator<Item = &'a JobRecord>) -> Vec<u64> {
    it.map(|j| j.id).collect()
}

#[test]
fn a_tasks_jobs_are_found_by_task_oldest_first() {
    let mut jobs = Jobs::default();
    for (id, task) in [(1, Some(7)), (2, Some(3)), (3, None), (4, Some(7)), (5, Some(3)), (6, Some(7))] {
        jobs.insert(job(id, task, JobState::Success));
    }
    assert_eq!(ids(jobs.of_task(Some(7))), [1, 4, 6]);
    assert_eq!(ids(jobs.of_task(Some(7)).rev()), [6, 4, 1]);
    assert_eq!(ids(jobs.of_task(Some(3))), [2, 5]);
    assert_eq!(ids(jobs.of_task(None)), [3]);
    assert_eq!(ids(jobs.of_task(Some(99))), Vec::<u64>::new());

    assert_eq!(jobs.remove(&4).map(|j| j.id), Some(4));
    assert!(jobs.remove(&4).is_none());
    assert_eq!(ids(jobs.of_task(Some(7))), [1, 6]);

    // Replacing a job under its id moves it to its new task's list, once.
    jobs.insert(job(6, Some(3), JobState::Failed));
    assert_eq!(ids(jobs.of_task(Some(7))), [1]);
    assert_eq!(ids(jobs.of_task(Some(3))), [2, 5, 6]);
    assert_eq!(jobs.len(), 5);
    assert_eq!(ids(jobs.values()), [1, 2, 3, 5, 6]);
}

#[test]
fn jobs_are_found_by_task_after_a_save_and_a_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut state = State::default();
    for id in 1..=60 {
        let task = (id % 3 != 0).then_some(id % 2);
        state.jobs.insert(job(id, task, JobState::Success));
    }
    state.next.job = 61;
    store.save(&state).unwrap();

    let loaded = Store::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(loaded, state);
    let want = |task: Option<u64>| (1..=60).filter(|id| (id % 3 != 0).then_some(id % 2) == task).collect::<Vec<u64>>();
    for task in [Some(0), Some(1), None] {
        assert_eq!(ids(loaded.jobs.of_task(task)), want(task), "task {task:?}");
    }
}

/// The state file with its top-level `version` replaced.
fn with_version(path: &std::path::Path, version: u32) {
    let bytes = std::fs::read(path).unwrap();
    let mut doc: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    let map = doc.as_map_mut().expect("the state file is a map");
    let entry = map.iter_mut().find(|(k, _)| k.as_text() == Some("version")).expect("a version");
    entry.1 = ciborium::Value::Integer(version.into());
    let mut out = Vec::new();
    ciborium::into_writer(&doc, &mut out).unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_state_file_of_another_schema_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut state = State::default();
    state.jobs.insert(job(1, None, JobState::Success));
    store.save(&state).unwrap();
    let path = dir.path().join("state.cbor");

    // Readable as this build's layout, but from a newer schema.
    with_version(&path, 2);
    let before = std::fs::read(&path).unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("schema version 2 is not supported"), "{err}");
    assert!(err.contains("state.cbor"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A layout this build cannot decode, from a newer schema: the version is the reason given.
    let mut doc =
        ciborium::Value::Map(vec![(ciborium::Value::Text("version".into()), ciborium::Value::Integer(3.into()))]);
    if let ciborium::Value::Map(m) = &mut doc {
        m.push((ciborium::Value::Text("tasks".into()), ciborium::Value::Text("elsewhere".into())));
    }
    let mut bytes = Vec::new();
    ciborium::into_writer(&doc, &mut bytes).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("schema version 3 is not supported"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // This build's version with a layout it cannot decode.
    with_version(&path, 1);
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("cannot decode"), "{err}");

    // Not CBOR at all.
    std::fs::write(&path, b"\xff\xff not cbor").unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("not a state file"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"\xff\xff not cbor");
}
