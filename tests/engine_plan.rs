//! Tests of the sync diff (`engine::plan`) and of the listing order it relies on (`engine::entry`).

use std::cell::Cell;
use std::cmp::Ordering;
use std::rc::Rc;

use cloudsyncd::engine::entry::{Entry, Kind, Mtime, WalkStep, key_cmp, sort_dir_names, walk_steps};
use cloudsyncd::engine::plan::{Mode, OUT_OF_ORDER, Op, Plan, PlanOptions};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Parses a listing written as `F path size mtime; D path; ...` (mtime in nanoseconds).
fn listing(text: &str) -> Vec<Entry> {
    text.split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let parts: Vec<&str> = item.split_whitespace().collect();
            match parts.as_slice() {
                ["F", path, size, mtime] => Entry::file(*path, size.parse().unwrap(), Mtime(mtime.parse().unwrap())),
                ["D", path] => Entry::dir(*path, Mtime(0)),
                _ => panic!("bad listing item {item:?}"),
            }
        })
        .collect()
}

/// Shows an op in the short form the tables use.
fn show(op: &Op) -> String {
    match op {
        Op::Transfer { src, replaces: None } => format!("new {}", src.path),
        Op::Transfer { src, replaces: Some(dst) } => {
            assert_eq!(src.path, dst.path);
            format!("replace {}", src.path)
        }
        Op::Same { src, dst } => {
            assert_eq!(src.path, dst.path);
            format!("same {}", src.path)
        }
        Op::MakeDir { path } => format!("mkdir {path}"),
        Op::DeleteFile { dst } => format!("rm {}", dst.path),
        Op::DeleteDir { path } => format!("rmdir {path}"),
        Op::Conflict { path, reason } if reason == OUT_OF_ORDER => format!("disorder {path}"),
        Op::Conflict { path, .. } => format!("conflict {path}"),
    }
}

fn opts(mode: Mode, modify_window_ns: u64, create_empty_dirs: bool) -> PlanOptions {
    PlanOptions { mode, modify_window_ns, create_empty_dirs }
}

fn plan(src: &str, dst: &str, opts: PlanOptions) -> Vec<Op> {
    Plan::new(listing(src).into_iter(), listing(dst).into_iter(), opts).collect()
}

// ---------------------------------------------------------------------------------------------
// Table

const SYNC: PlanOptions = PlanOptions { mode: Mode::Sync, modify_window_ns: 0, create_empty_dirs: false };
const COPY: PlanOptions = PlanOptions { mode: Mode::Copy, modify_window_ns: 0, create_empty_dirs: false };
const MOVE: PlanOptions = PlanOptions { mode: Mode::Move, modify_window_ns: 0, create_empty_dirs: false };
const SYNC_DIRS: PlanOptions = PlanOptions { mode: Mode::Sync, modify_window_ns: 0, create_empty_dirs: true };
const COPY_DIRS: PlanOptions = PlanOptions { mode: Mode::Copy, modify_window_ns: 0, create_empty_dirs: true };
const SYNC_WIN2: PlanOptions = PlanOptions { mode: Mode::Sync, modify_window_ns: 2, create_empty_dirs: false };

/// (name, options, source listing, destination listing, expected ops)
const CASES: &[(&str, PlanOptions, &str, &str, &str)] = &[
    ("both empty", SYNC, "", "", ""),
    ("new file, sync", SYNC, "F a 1 1", "", "new a"),
    ("new file, copy", COPY, "F a 1 1", "", "new a"),
    ("new file, move", MOVE, "F a 1 1", "", "new a"),
    ("extra file, sync deletes", SYNC, "", "F a 1 1", "rm a"),
    ("extra file, copy keeps", COPY, "", "F a 1 1", ""),
    ("extra file, move keeps", MOVE, "", "F a 1 1", ""),
    ("extra folder, sync deletes it and its files", SYNC, "", "D a; F a/x 1 1", "rmdir a; rm a/x"),
    ("extra folder, copy keeps", COPY, "", "D a; F a/x 1 1", ""),
    ("same size and mtime", SYNC, "F a 5 100", "F a 5 100", "same a"),
    ("same, move (executor deletes the source)", MOVE, "F a 5 100", "F a 5 100", "same a"),
    ("mtime diff at the window is same", SYNC_WIN2, "F a 5 100", "F a 5 102", "same a"),
    ("mtime diff past the window", SYNC_WIN2, "F a 5 100", "F a 5 103", "replace a"),
    ("destination newer within the window", SYNC_WIN2, "F a 5 102", "F a 5 100", "same a"),
    ("destination newer past the window is replaced", SYNC_WIN2, "F a 5 100", "F a 5 97", "replace a"),
    ("window 0: 1 ns apart", SYNC, "F a 5 100", "F a 5 101", "replace a"),
    ("different size, same mtime", COPY, "F a 5 100", "F a 6 100", "replace a"),
    ("changed file, move", MOVE, "F a 5 100", "F a 6 100", "replace a"),
    ("folder on both sides", SYNC_DIRS, "D a", "D a", ""),
    ("new folder, no empty dirs", SYNC, "D a", "", ""),
    ("new folder, empty dirs", SYNC_DIRS, "D a", "", "mkdir a"),
    ("new folder with a file, empty dirs, copy", COPY_DIRS, "D a; F a/x 1 1", "", "mkdir a; new a/x"),
    ("file vs folder, subtree skipped", SYNC, "F a 1 1", "D a; F a/x 1 1; F a/y 1 1", "conflict a"),
    ("folder vs file, subtree skipped", COPY, "D a; F a/x 1 1", "F a 1 1", "conflict a"),
    (
        "conflict: siblings between the folder and its contents still planned",
        SYNC,
        "D a; F a-b 1 1; F a.txt 1 1; F a/x 1 1; F a0 1 1",
        "F a 1 1; F a-b 1 1; F a0 2 1",
        "conflict a; same a-b; new a.txt; replace a0",
    ),
    (
        "nested conflicts a and a-b",
        SYNC,
        "D a; D a-b; F a-b/x 1 1; F a/x 1 1; F b 1 1",
        "F a 1 1; F a-b 1 1; F a/zz 1 1; F b 1 1",
        "conflict a; conflict a-b; same b",
    ),
    (
        "key order with folders: S3 order, no folder entries on the destination",
        SYNC,
        "D a; F a-b 1 1; F a.txt 1 1; F a/x 1 1; F a0 1 1",
        "F a.txt 1 1; F a/x 1 1; F b 1 1",
        "new a-b; same a.txt; same a/x; new a0; rm b",
    ),
    ("unicode sorts by bytes", SYNC, "F z 1 1; F é 1 1", "F é 1 1; F 日 1 1", "new z; same é; rm 日"),
    ("source out of order", COPY, "F b 1 1; F a 1 1; F c 1 1", "", "new b; disorder a; new c"),
    ("source duplicate", SYNC, "F a 1 1; F a 1 1", "F a 1 1", "same a; disorder a"),
    ("source duplicate of another kind", SYNC_DIRS, "F a 1 1; D a", "", "new a; disorder a"),
    ("destination duplicate", SYNC, "", "F a 1 1; F a 1 1", "rm a; disorder a"),
    ("destination out of order", SYNC, "F c 1 1", "F b 1 1; F a 1 1; F c 1 1", "rm b; disorder a; same c"),
    (
        "a full sync",
        SYNC_DIRS,
        "D docs; F docs/a 1 1; F docs/b 2 2; D new; F x 3 3",
        "D docs; F docs/a 1 1; F docs/b 2 9; D old; F old/y 1 1; F x 4 3",
        "same docs/a; replace docs/b; mkdir new; rmdir old; rm old/y; replace x",
    ),
];

#[test]
fn plan_table() {
    let mut failures = Vec::new();
    for &(name, opts, src, dst, want) in CASES {
        let got: Vec<String> = plan(src, dst, opts).iter().map(show).collect();
        let want: Vec<String> = want.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if got != want {
            failures.push(format!("{name}:\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    assert!(CASES.len() >= 25);
}

#[test]
fn ops_carry_the_entries() {
    let src = Entry::file("a", 5, Mtime::from_parts(10, 0));
    let dst = Entry::file("a", 6, Mtime::from_parts(10, 0));
    let ops: Vec<Op> = Plan::new(vec![src.clone()].into_iter(), vec![dst.clone()].into_iter(), SYNC).collect();
    assert_eq!(ops, vec![Op::Transfer { src: src.clone(), replaces: Some(dst) }]);

    let same = Entry::file("a", 5, Mtime::from_parts(10, 1));
    let ops: Vec<Op> =
        Plan::new(vec![src.clone()].into_iter(), vec![same.clone()].into_iter(), opts(Mode::Move, 1, false)).collect();
    assert_eq!(ops, vec![Op::Same { src, dst: same }]);

    let ops: Vec<Op> = plan("F a 1 1", "D a", SYNC);
    assert_eq!(
        ops,
        vec![Op::Conflict { path: "a".into(), reason: "the source is a file but the destination is a folder".into() }]
    );
    let ops: Vec<Op> = plan("D a", "F a 1 1", SYNC);
    assert_eq!(
        ops,
        vec![Op::Conflict { path: "a".into(), reason: "the source is a folder but the destination is a file".into() }]
    );
    let ops: Vec<Op> = plan("", "F b 1 1; F a 1 1", COPY);
    assert_eq!(ops, vec![Op::Conflict { path: "a".into(), reason: "listing out of order".into() }]);
}

#[test]
fn extreme_mtimes_do_not_overflow() {
    let src = Entry::file("a", 1, Mtime(i128::MIN));
    let dst = Entry::file("a", 1, Mtime(i128::MAX));
    let ops: Vec<Op> =
        Plan::new(vec![src].into_iter(), vec![dst].into_iter(), opts(Mode::Sync, u64::MAX, false)).collect();
    assert_eq!(ops.iter().map(show).collect::<Vec<_>>(), ["replace a"]);
}

/// An iterator that stops after returning `None` once would be fine; this one panics if called
/// again, to prove the plan never does.
struct Once<I> {
    inner: I,
    ended: bool,
}

impl<I: Iterator> Iterator for Once<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        assert!(!self.ended, "called again after None");
        let item = self.inner.next();
        self.ended = item.is_none();
        item
    }
}

#[test]
fn inputs_are_not_read_past_their_end() {
    let src = Once { inner: listing("F a 1 1; F c 1 1").into_iter(), ended: false };
    let dst = Once { inner: listing("F b 1 1").into_iter(), ended: false };
    let mut plan = Plan::new(src, dst, SYNC);
    let ops: Vec<String> = plan.by_ref().map(|op| show(&op)).collect();
    assert_eq!(ops, ["new a", "rm b", "new c"]);
    assert!(plan.next().is_none());
    assert!(plan.next().is_none());
}

// ---------------------------------------------------------------------------------------------
// Streaming

/// Entry `i` of a generated flat listing: path `i` zero-padded (so numeric order is key order),
/// a folder every 100th, size from `size`.
fn generated(i: u64, size: impl Fn(u64) -> u64) -> Entry {
    let path = format!("{i:07}");
    if i.is_multiple_of(100) { Entry::dir(path, Mtime(0)) } else { Entry::file(path, size(i), Mtime(i128::from(i))) }
}

#[test]
fn million_entry_listings_stream() {
    const N: u64 = 1_000_000;
    // Source 0..1M, destination 500k..1.5M; every tenth shared file (i % 10 == 1) differs in size.
    let src = (0..N).map(|i| generated(i, |i| i));
    let dst = (N / 2..N + N / 2).map(|i| generated(i, |i| if i % 10 == 1 { i + 1 } else { i }));
    let (mut new, mut replace, mut same, mut mkdir, mut rm, mut rmdir, mut other) = (0, 0, 0, 0, 0, 0, 0);
    for op in Plan::new(src, dst, opts(Mode::Sync, 0, true)) {
        match op {
            Op::Transfer { replaces: None, .. } => new += 1,
            Op::Transfer { replaces: Some(_), .. } => replace += 1,
            Op::Same { .. } => same += 1,
            Op::MakeDir { .. } => mkdir += 1,
            Op::DeleteFile { .. } => rm += 1,
            Op::DeleteDir { .. } => rmdir += 1,
            Op::Conflict { .. } => other += 1,
        }
    }
    assert_eq!((new, mkdir), (495_000, 5_000), "source only");
    assert_eq!((replace, same), (50_000, 445_000), "both");
    assert_eq!((rm, rmdir), (495_000, 5_000), "destination only");
    assert_eq!(other, 0);
}

#[test]
fn infinite_listings_are_planned_lazily() {
    // Neither side ever ends: the plan must still yield ops one by one.
    let src_pulls = Rc::new(Cell::new(0u64));
    let dst_pulls = Rc::new(Cell::new(0u64));
    let (s, d) = (Rc::clone(&src_pulls), Rc::clone(&dst_pulls));
    let src = (0u64..).map(move |i| {
        s.set(s.get() + 1);
        Entry::file(format!("{:020}", 2 * i), 1, Mtime(0))
    });
    let dst = (0u64..).map(move |i| {
        d.set(d.get() + 1);
        Entry::file(format!("{:020}", 3 * i), 1, Mtime(0))
    });
    let mut plan = Plan::new(src, dst, SYNC);
    assert_eq!(plan.next().map(|op| show(&op)), Some(format!("same {:020}", 0)));
    assert!(src_pulls.get() <= 2 && dst_pulls.get() <= 2, "read ahead more than one entry per side");
    let ops: Vec<Op> = plan.take(10_000).collect();
    assert_eq!(ops.len(), 10_000);
    assert!(src_pulls.get() < 10_000 && dst_pulls.get() < 10_000);
}

// ---------------------------------------------------------------------------------------------
// Listing order (engine::entry)

#[test]
fn key_cmp_is_byte_order() {
    let mut paths = vec!["a/x", "a0", "a.txt", "a", "a-b", "A", "a b", "é", "z", "ab"];
    paths.sort_by(|a, b| key_cmp(a, b));
    assert_eq!(paths, ["A", "a", "a b", "a-b", "a.txt", "a/x", "a0", "ab", "z", "é"]);
    assert_eq!(key_cmp("a", "a"), Ordering::Equal);
}

#[test]
fn sort_dir_names_sorts_folders_as_name_slash() {
    let mut names: Vec<(String, Kind)> =
        [("a0", Kind::File), ("a", Kind::Dir), ("a.txt", Kind::File), ("a-b", Kind::Dir)]
            .into_iter()
            .map(|(n, k)| (n.to_owned(), k))
            .collect();
    sort_dir_names(&mut names);
    let order: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(order, ["a-b", "a.txt", "a", "a0"]);
}

#[test]
fn walk_steps_emit_folder_before_siblings_and_descend_later() {
    let names: Vec<(String, Kind)> = [("a.txt", Kind::File), ("a", Kind::Dir), ("a-b", Kind::File)]
        .into_iter()
        .map(|(n, k)| (n.to_owned(), k))
        .collect();
    // a (folder entry), a-b, a.txt, then the contents of a.
    assert_eq!(walk_steps(&names), [WalkStep::Emit(1), WalkStep::Emit(2), WalkStep::Emit(0), WalkStep::Descend(1)]);
}

/// xorshift64*: a small deterministic generator for the property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// Names that share prefixes and straddle '/' in byte order.
const NAMES: &[&str] = &[
    "a", "a.b", "a-b", "a0", "ab", "a b", "A", "0", "-", ".", ".x", " ", "a.", "a-", "b", "é", "日本", "a\u{7f}", "~",
    "Z",
];

enum Node {
    File,
    Dir(Vec<(String, Node)>),
}

fn random_dir(rng: &mut Rng, depth: usize) -> Vec<(String, Node)> {
    let mut children: Vec<(String, Node)> = Vec::new();
    for _ in 0..rng.below(7) {
        let name = NAMES[rng.below(NAMES.len())];
        if children.iter().any(|(n, _)| n == name) {
            continue;
        }
        let node = if depth < 3 && rng.below(3) == 0 { Node::Dir(random_dir(rng, depth + 1)) } else { Node::File };
        children.push((name.to_owned(), node));
    }
    children
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") }
}

/// A lister's walk: `walk_steps` per folder.
fn walk(prefix: &str, children: &[(String, Node)], out: &mut Vec<(String, Kind)>) {
    let names: Vec<(String, Kind)> = children
        .iter()
        .map(|(n, node)| (n.clone(), if matches!(node, Node::Dir(_)) { Kind::Dir } else { Kind::File }))
        .collect();
    for step in walk_steps(&names) {
        match step {
            WalkStep::Emit(i) => out.push((join(prefix, &names[i].0), names[i].1)),
            WalkStep::Descend(i) => {
                if let Node::Dir(grandchildren) = &children[i].1 {
                    walk(&join(prefix, &children[i].0), grandchildren, out);
                }
            }
        }
    }
}

/// A plain depth-first walk in `sort_dir_names` order that emits files only.
fn walk_files(prefix: &str, children: &[(String, Node)], out: &mut Vec<String>) {
    let mut names: Vec<(String, Kind)> = children
        .iter()
        .map(|(n, node)| (n.clone(), if matches!(node, Node::Dir(_)) { Kind::Dir } else { Kind::File }))
        .collect();
    sort_dir_names(&mut names);
    for (name, kind) in names {
        let path = join(prefix, &name);
        match kind {
            Kind::File => out.push(path),
            Kind::Dir => {
                if let Some((_, Node::Dir(grandchildren))) = children.iter().find(|(n, _)| *n == name) {
                    walk_files(&path, grandchildren, out);
                }
            }
        }
    }
}

fn count(children: &[(String, Node)]) -> usize {
    children.iter().map(|(_, node)| 1 + if let Node::Dir(c) = node { count(c) } else { 0 }).sum()
}

#[test]
fn walks_come_out_in_key_order() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut emitted = 0;
    for _ in 0..2_000 {
        let tree = random_dir(&mut rng, 0);

        let mut all = Vec::new();
        walk("", &tree, &mut all);
        assert_eq!(all.len(), count(&tree), "every file and folder is emitted once");
        for pair in all.windows(2) {
            assert_eq!(key_cmp(&pair[0].0, &pair[1].0), Ordering::Less, "{:?} then {:?} in {all:?}", pair[0], pair[1]);
        }
        emitted += all.len();

        let mut files = Vec::new();
        walk_files("", &tree, &mut files);
        for pair in files.windows(2) {
            assert_eq!(key_cmp(&pair[0], &pair[1]), Ordering::Less, "{pair:?}");
        }
        // Both walks agree on the files.
        let from_all: Vec<&String> = all.iter().filter(|(_, k)| *k == Kind::File).map(|(p, _)| p).collect();
        assert_eq!(from_all, files.iter().collect::<Vec<_>>());

        // A generated walk is a valid planner input: planning it against itself finds no conflict.
        let listing: Vec<Entry> =
            all.iter()
                .map(|(p, k)| {
                    if *k == Kind::Dir { Entry::dir(p.clone(), Mtime(0)) } else { Entry::file(p.clone(), 1, Mtime(0)) }
                })
                .collect();
        let ops: Vec<Op> = Plan::new(listing.clone().into_iter(), listing.into_iter(), SYNC).collect();
        assert!(ops.iter().all(|op| matches!(op, Op::Same { .. })), "{ops:?}");
    }
    assert!(emitted > 10_000, "trees too small: {emitted}");
}

#[test]
fn folder_entry_at_descent_is_not_key_order() {
    // The pitfall walk_steps exists for: emitting a folder's entry when descending into it
    // puts "a" after its sibling "a-b".
    let mut names = vec![("a".to_owned(), Kind::Dir), ("a-b".to_owned(), Kind::File)];
    sort_dir_names(&mut names);
    let naive: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(naive, ["a-b", "a"]);
    assert_eq!(key_cmp("a-b", "a"), Ordering::Greater);
}
