//! The rclone filter parser on arbitrary patterns, and matching of arbitrary paths.
#![no_main]

use cloudsyncd::engine::filter::Filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut parts = s.splitn(3, '\n');
    let include: Vec<String> = parts.next().map(|p| p.split('\t').map(str::to_owned).collect()).unwrap_or_default();
    let exclude: Vec<String> = parts.next().map(|p| p.split('\t').map(str::to_owned).collect()).unwrap_or_default();
    let path = parts.next().unwrap_or("a/b.txt");
    if let Ok(f) = Filter::new(&include, &exclude) {
        let file = f.includes_file(path);
        let _ = f.includes_dir(path);
        // A folder the walk skips never holds an included file.
        if let Some((dir, _)) = path.rsplit_once('/') {
            if file && !dir.is_empty() {
                assert!(f.includes_dir(dir), "dir {dir:?} excluded but {path:?} included");
            }
        }
    }
});
