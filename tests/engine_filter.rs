//! Tests of the rclone filter rules (`engine::filter`).

use cloudsyncd::engine::filter::{Filter, FilterError, GlobError, PatternList};

fn strings(patterns: &[&str]) -> Vec<String> {
    patterns.iter().map(|&p| p.to_owned()).collect()
}

fn filter(include: &[&str], exclude: &[&str]) -> Filter {
    Filter::new(&strings(include), &strings(exclude)).unwrap_or_else(|e| panic!("{e}"))
}

const F: bool = false; // a file
const D: bool = true; // a folder

/// One row: includes, excludes, path, is a folder, expected: included.
type Case = (&'static [&'static str], &'static [&'static str], &'static str, bool, bool);

const CASES: &[Case] = &[
    // No rules: everything but .zfs.
    (&[], &[], "a.txt", F, true),
    (&[], &[], "a", D, true),
    (&[], &[], ".zfs", F, false),
    (&[], &[], ".zfs", D, false),
    (&[], &[], ".zfs/snapshot/x", F, false),
    (&[], &[], ".zfs/snapshot", D, false),
    (&[], &[], "a/.zfs/b", F, false),
    (&[], &[], "a/.zfs", D, false),
    (&[], &[], "a/.zfs", F, false),
    (&[], &[], "a/.zfsx", F, true),
    (&[], &[], ".zfsx/y", F, true),
    (&[], &[], "a.zfs", F, true),
    (&[], &[], "x.zfs/y", F, true),
    // Unanchored: matches at the end, on a segment boundary.
    (&[], &["*.jpg"], "x.jpg", F, false),
    (&[], &["*.jpg"], "a/b/x.jpg", F, false),
    (&[], &["*.jpg"], "x.jpeg", F, true),
    (&[], &["*.jpg"], "x.jpg.txt", F, true),
    (&[], &["*.jpg"], "x.jpg", D, true), // a file rule never excludes a folder
    (&[], &["b/*.jpg"], "a/b/x.jpg", F, false),
    (&[], &["b/*.jpg"], "b/x.jpg", F, false),
    (&[], &["b/*.jpg"], "ab/x.jpg", F, true),
    (&[], &["b/*.jpg"], "b/c/x.jpg", F, true), // * stops at /
    (&[], &["tmp"], "a/tmp", F, false),
    (&[], &["tmp"], "a/tmp", D, true), // file rule: the folder is still walked
    (&[], &["tmp"], "atmp", F, true),
    // Anchored.
    (&[], &["/x.jpg"], "x.jpg", F, false),
    (&[], &["/x.jpg"], "a/x.jpg", F, true),
    (&[], &["/a/*"], "a/x", F, false),
    (&[], &["/a/*"], "a/b/x", F, true),
    (&[], &["/a/*"], "a", D, true),
    (&[], &["/a/**"], "a/b/x", F, false),
    (&[], &["/a/**"], "a", D, false),
    (&[], &["/a/**"], "a/b", D, false),
    (&[], &["/a/**"], "ab/x", F, true),
    (&[], &["/a/**"], "ab", D, true),
    (&[], &["/tmp/**"], "tmp", D, false),
    (&[], &["/a/**/z"], "a/b/c/z", F, false),
    (&[], &["/a/**/z"], "a/z", F, true), // needs two slashes, as rclone's a/.*/z
    (&[], &["a**"], "x/ab/c", F, false), // ** crosses /
    (&[], &["a*"], "x/ab/c", F, true),
    // ?
    (&[], &["?.txt"], "a.txt", F, false),
    (&[], &["?.txt"], "ab.txt", F, true),
    (&[], &["?.txt"], "é.txt", F, false), // one character, not one byte
    (&[], &["/a?b"], "a/b", F, true),
    (&[], &["/a?b"], "axb", F, false),
    // Classes.
    (&[], &["file[0-9].txt"], "file5.txt", F, false),
    (&[], &["file[0-9].txt"], "filex.txt", F, true),
    (&[], &["file[!0-9].txt"], "filex.txt", F, false),
    (&[], &["file[!0-9].txt"], "file5.txt", F, true),
    (&[], &["file[^0-9].txt"], "filex.txt", F, false),
    (&[], &["file[^0-9].txt"], "file5.txt", F, true),
    (&[], &["/a[!x]b"], "a/b", F, false), // as in rclone, a negated class matches '/'
    (&[], &["[abc]"], "b", F, false),
    (&[], &["[abc]"], "d", F, true),
    (&[], &["[[:digit:]]*"], "1a", F, false),
    (&[], &["[[:digit:]]*"], "a1", F, true),
    (&[], &["[a\\]]"], "]", F, false),
    (&[], &["[*?]"], "?", F, false), // no globs inside a class
    (&[], &["[*?]"], "x", F, true),
    (&[], &["[é-ë]"], "ê", F, false),
    // Braces.
    (&[], &["*.{jpg,png}"], "a.png", F, false),
    (&[], &["*.{jpg,png}"], "a.gif", F, true),
    (&[], &["{tmp*,cache/**}"], "tmpfile", F, false),
    (&[], &["{tmp*,cache/**}"], "x/cache/y/z", F, false),
    (&[], &["{tmp*,cache/**}"], "cachex", F, true),
    (&[], &["{a,{b,c}}.txt"], "c.txt", F, false),
    (&[], &["{a,{b,c}}.txt"], "d.txt", F, true),
    (&[], &["x{,y}"], "x", F, false),
    (&[], &["x{,y}"], "xy", F, false),
    (&[], &["a,b"], "a,b", F, false), // a comma outside braces is literal
    // Escapes.
    (&[], &["\\*.txt"], "*.txt", F, false),
    (&[], &["\\*.txt"], "a.txt", F, true),
    (&[], &["a\\?"], "a?", F, false),
    (&[], &["a\\?"], "ab", F, true),
    (&[], &["\\d"], "d", F, false), // the letter, not a regexp digit class
    (&[], &["a\\\\b"], "a\\b", F, false),
    (&[], &["\\{a,b\\}"], "{a,b}", F, false),
    // Folder rules.
    (&[], &["cache/"], "cache", F, true), // files never match a folder rule
    (&[], &["cache/"], "cache", D, false),
    (&[], &["cache/"], "x/cache", D, false),
    (&[], &["cache/"], "x/cache/y", F, false), // excluding a folder excludes its contents
    (&[], &["cache/"], "cachex/y", F, true),
    (&["photos/"], &[], "photos", D, true),
    (&["photos/"], &[], "photos/a.jpg", F, false), // including a folder includes only the folder
    // Includes add a final "- *".
    (&["*.jpg"], &[], "a.jpg", F, true),
    (&["*.jpg"], &[], "x/y/a.jpg", F, true),
    (&["*.jpg"], &[], "a.png", F, false),
    (&["*.jpg"], &[], "x", D, true), // may hold .jpg files
    (&["/docs/**"], &[], "docs/a", F, true),
    (&["/docs/**"], &[], "docs/x/y", F, true),
    (&["/docs/**"], &[], "other", F, false),
    (&["/docs/**"], &[], "docsx/a", F, false),
    (&["/docs/**"], &[], "docs", D, true),
    (&["/docs/**"], &[], "docs/x", D, true),
    (&["/docs/**"], &[], "other", D, false), // nothing in it can be included
    (&["/docs/**"], &[], "docsx", D, false),
    (&["/docs/**"], &[], "docs/.zfs", D, false),
    (&["/a/b/**"], &[], "a", D, true), // parents of anchored includes
    (&["/a/b/**"], &[], "a/b", D, true),
    (&["/a/b/**"], &[], "a/c", D, false),
    (&["/a/b/**"], &[], "a/x", F, false),
    (&["/a/b/**"], &[], "a/b/c/d", F, true),
    (&["/a/b/*.txt"], &[], "a", D, true),
    (&["/a/b/*.txt"], &[], "a/b", D, true),
    (&["/a/b/*.txt"], &[], "a/b/c", D, false),
    (&["/a/b/*.txt"], &[], "a/b/x.txt", F, true),
    (&["/a/b/*.txt"], &[], "a/b/c/x.txt", F, false),
    (&["/a/b/"], &[], "a", D, true),
    (&["/a/b/"], &[], "a/b", D, true),
    (&["/a/b/"], &[], "a/b/c", D, false),
    (&["/a/b/"], &[], "a/b/x", F, false),
    (&["/{a,b}/**"], &[], "b", D, true),
    (&["/{a,b}/**"], &[], "c", D, false),
    (&["/a*/x"], &[], "abc", D, true),
    (&["/a*/x"], &[], "abc/d", D, false),
    (&["b/*.jpg"], &[], "a", D, true), // unanchored: could match deeper (rclone would skip "a")
    (&["b/*.jpg"], &[], "a/b/x.jpg", F, true),
    (&["b/*.jpg"], &[], "a/c/x.jpg", F, false),
    (&["**/*.txt"], &[], "x.txt", F, false), // like rclone's (^|/).*/[^/]*\.txt$
    (&["**/*.txt"], &[], "a/x.txt", F, true),
    // Include and exclude: excludes come first and win.
    (&["/docs/**"], &["*.tmp"], "docs/a.tmp", F, false),
    (&["/docs/**"], &["*.tmp"], "docs/a.txt", F, true),
    (&["/docs/**"], &["/docs/private/**"], "docs/private", D, false),
    (&["/docs/**"], &["/docs/private/**"], "docs", D, true),
    (&["/docs/**"], &["/docs/private/**"], "docs/private/x", F, false),
    (&["/docs/**"], &["/docs/private/**"], "docs/public/x", F, true),
    (&["/a/keep.txt"], &["/a/**"], "a/keep.txt", F, false),
    (&["/a/keep.txt"], &["/a/**"], "a", D, false),
    (&["/a/keep.txt"], &["/a/*.log"], "a", D, true),
    (&["/a/keep.txt"], &["/a/*.log"], "a/keep.txt", F, true),
    (&["/a/keep.txt"], &["/a/*.log"], "a/other.txt", F, false),
    // .zfs is excluded before any include.
    (&["**"], &[], ".zfs/x", F, false),
    (&["**"], &[], "a/.zfs/x", F, false),
    (&["**"], &[], "a/b", F, true),
    (&[".zfs/**"], &[], ".zfs/snapshot/x", F, false),
    (&[".zfs/**"], &[], ".zfs", D, false),
    // Excluding everything.
    (&[], &["*"], "a", F, false),
    (&[], &["*"], "a", D, false),
    (&[], &["**"], "a/b", F, false),
    (&[], &["/*"], "a/b", F, true),
    (&[], &["/*"], "a", D, true),
    // Case and Unicode.
    (&[], &["*.JPG"], "a.jpg", F, true),
    (&[], &["*.JPG"], "a.JPG", F, false),
    (&[], &["日本*"], "x/日本語.txt", F, false),
    (&[], &["/my docs/**"], "my docs/a", F, false),
    (&[], &["/my docs/**"], "my docs", D, false),
];

#[test]
fn filter_table() {
    let mut failures = Vec::new();
    for &(include, exclude, path, dir, want) in CASES {
        let f = filter(include, exclude);
        let got = if dir { f.includes_dir(path) } else { f.includes_file(path) };
        if got != want {
            let what = if dir { "folder" } else { "file" };
            failures.push(format!("include {include:?} exclude {exclude:?}: {what} {path:?}: got {got}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn root_is_always_included() {
    assert!(filter(&["/docs/**"], &["*"]).includes_dir(""));
}

#[test]
fn is_empty_means_only_builtin_rules() {
    assert!(filter(&[], &[]).is_empty());
    assert!(!filter(&["a"], &[]).is_empty());
    assert!(!filter(&[], &["a"]).is_empty());
}

/// One row: includes, excludes, expected error message.
type Bad = (&'static [&'static str], &'static [&'static str], &'static str);

const BAD: &[Bad] = &[
    (&[], &["ok", "*.jpg", "a[b"], r#"exclude.2: unclosed '[' in "a[b""#),
    (&["a]"], &[], r#"include.0: unmatched ']' in "a]""#),
    (&["{a,b"], &[], r#"include.0: unclosed '{' in "{a,b""#),
    (&["a}"], &[], r#"include.0: unmatched '}' in "a}""#),
    (&["x", "***"], &[], r#"include.1: more than two '*' in a row in "***""#),
    (&["a\\"], &[], r#"include.0: trailing '\' in "a\\""#),
    (&["[]"], &[], r#"include.0: empty character class in "[]""#),
    (&["[!]"], &[], r#"include.0: empty character class in "[!]""#),
    (&["[z-a]"], &[], r#"include.0: reversed range 'z-a' in character class in "[z-a]""#),
    (&["[a--b]"], &[], r#"include.0: reversed range 'a--' in character class in "[a--b]""#),
    (&["{{x}}"], &[], r#"include.0: '{{regexp}}' sections are not supported in "{{x}}""#),
    (&["[[:foo:]]"], &[], r#"include.0: unknown character class '[:foo:]' in "[[:foo:]]""#),
    (&["[[a]"], &[], r#"include.0: '[' inside a character class (escape it as '\[') in "[[a]""#),
    (&["[a-"], &[], r#"include.0: unclosed '[' in "[a-""#),
    (&["ok", ""], &[], r#"include.1: empty pattern in """#),
    (&["a\nb["], &[], r#"include.0: unclosed '[' in "a\nb[""#),
    (&["[bad"], &["also[bad"], r#"exclude.0: unclosed '[' in "also[bad""#), // excludes are checked first
];

#[test]
fn malformed_patterns_are_refused_with_their_index() {
    for &(include, exclude, want) in BAD {
        let err = Filter::new(&strings(include), &strings(exclude)).expect_err(want);
        assert_eq!(err.to_string(), want);
    }
    let err = Filter::new(&[], &strings(&["a", "b{"])).unwrap_err();
    assert_eq!(
        err,
        FilterError { list: PatternList::Exclude, index: 1, pattern: "b{".into(), reason: GlobError::UnclosedBrace }
    );
}

#[test]
fn deep_braces_are_refused() {
    let deep = "{a,".repeat(100) + &"}".repeat(100);
    let err = Filter::new(&[deep], &[]).unwrap_err();
    assert_eq!(err.reason, GlobError::TooDeep);
}

/// xorshift64*
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        usize::try_from(self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64).unwrap()
    }
}

const PATTERNS: &[&str] = &[
    "*.jpg",
    "/tmp/**",
    "tmp/",
    "/docs/**",
    "b/*.jpg",
    "/a/b/",
    "a*",
    "**/x.jpg",
    "/a/*",
    "{a,b}/**",
    "?",
    "[ab]",
    "*",
    "/**",
    "docs",
    "/a/b/**",
    "/a/**/tmp",
    "tmp",
    "/a*/b",
    "[!a]*/**",
    "a/",
    "/docs/*/",
    "**a",
    "x.jpg",
];
const SEGMENTS: &[&str] = &["a", "b", "tmp", "docs", ".zfs", "x.jpg", "a-b", "ab", "ba"];

/// Skipping a folder that `includes_dir` refuses never loses a file or folder that would be
/// included: every path below an excluded folder is excluded too.
#[test]
fn excluded_folders_hold_nothing_included() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut excluded_dirs = 0;
    for _ in 0..400 {
        let pick = |rng: &mut Rng| -> Vec<String> {
            (0..rng.below(3)).map(|_| PATTERNS[rng.below(PATTERNS.len())].to_owned()).collect()
        };
        let (include, exclude) = (pick(&mut rng), pick(&mut rng));
        let f = Filter::new(&include, &exclude).unwrap();
        for _ in 0..50 {
            let depth = 1 + rng.below(4);
            let segments: Vec<&str> = (0..depth).map(|_| SEGMENTS[rng.below(SEGMENTS.len())]).collect();
            let path = segments.join("/");
            for cut in 1..depth {
                let dir = segments[..cut].join("/");
                if !f.includes_dir(&dir) {
                    excluded_dirs += 1;
                    assert!(!f.includes_file(&path), "include {include:?} exclude {exclude:?}: {dir:?} / {path:?}");
                    assert!(!f.includes_dir(&path), "include {include:?} exclude {exclude:?}: {dir:?} / {path:?}");
                }
            }
        }
    }
    assert!(excluded_dirs > 1_000, "too few excluded folders to mean anything: {excluded_dirs}");
}
