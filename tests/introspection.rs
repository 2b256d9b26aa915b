//! The checked-in introspection XML under `dbus/` is what the code serves. Regenerate with
//! `CLOUDSYNCD_BLESS=1 cargo test --test introspection` after an (additive) API change.

mod common;

use common::*;

const HEADER: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!-- Generated from the code by `CLOUDSYNCD_BLESS=1 cargo test --test introspection`; do not edit. -->
<node>
"#;

fn interface_block(xml: &str, name: &str) -> String {
    let start =
        xml.find(&format!("<interface name=\"{name}\">")).unwrap_or_else(|| panic!("{name} not served:\n{xml}"));
    let end = start + xml[start..].find("</interface>").unwrap() + "</interface>".len();
    // Normalise indentation so that the file reads well.
    let lines: Vec<&str> = xml[start..end].lines().collect();
    let indent = lines.last().map_or(0, |l| l.len() - l.trim_start().len());
    lines.iter().map(|l| format!("  {}\n", l.get(indent.min(l.len() - l.trim_start().len())..).unwrap_or(l))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_in_introspection_matches_the_code() {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let _d = Daemon::start(&bus, &dir.path().join("state")).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.create_credential("c", "LOCAL", dict(vec![("root", v(root.as_str()))])).await.unwrap();
    m.create_task(dict(vec![
        ("path", v(root.as_str())),
        ("credentials", v(1u64)),
        ("direction", v("PUSH")),
        ("transfer_mode", v("COPY")),
    ]))
    .await
    .unwrap();
    let j = task_run(&conn, &zbus::zvariant::OwnedObjectPath::try_from(format!("{ROOT}/task/1")).unwrap())
        .await
        .run(dict(vec![("dry_run", v(true))]))
        .await
        .unwrap();
    wait_job(&conn, &j, std::time::Duration::from_secs(30)).await;
    let bless = std::env::var_os("CLOUDSYNCD_BLESS").is_some();
    let mut drift = Vec::new();
    for (path, iface) in [
        (ROOT.to_owned(), "Manager"),
        (format!("{ROOT}/credential/1"), "Credential"),
        (format!("{ROOT}/task/1"), "Task"),
        (format!("{ROOT}/job/1"), "Job"),
    ] {
        let p = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(NAME)
            .unwrap()
            .path(path)
            .unwrap()
            .build()
            .await
            .unwrap();
        let xml = p.introspect().await.unwrap();
        let name = format!("org.cloudsyncd.CloudSync1.{iface}");
        let want = format!("{HEADER}{}</node>\n", interface_block(&xml, &name));
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus").join(format!("{name}.xml"));
        if bless {
            std::fs::write(&file, &want).unwrap();
        } else if std::fs::read_to_string(&file).unwrap_or_default() != want {
            drift.push(format!("{} differs from the served interface:\n{want}", file.display()));
        }
    }
    assert!(
        drift.is_empty(),
        "{}\nRegenerate with CLOUDSYNCD_BLESS=1 cargo test --test introspection",
        drift.join("\n")
    );
}
