//! rclone filter rules (a task's include and exclude patterns) as TrueNAS builds them. Pure: no IO, no async.
//!
//! Imports only std and thiserror. The glob matcher is hand-written (a small NFA), so matching
//! time is linear in the path length for any pattern.
//!
//! # Rule list
//!
//! Like the filter file TrueNAS writes, the rules are, in order:
//!
//! 1. `- .zfs` and `- .zfs/**` (always: ZFS snapshot folders are never transferred);
//! 2. `- <p>` for each exclude pattern;
//! 3. `+ <p>` for each include pattern;
//! 4. `- *` when there is at least one include.
//!
//! For a file, the first rule that matches its path decides; when none matches it is included.
//! (TrueNAS also excludes `/ix-applications` and `/ix-apps` when the task path is a pool root;
//! the caller adds those to the excludes, as it alone knows the path.)
//!
//! # Glob syntax (rclone)
//!
//! - `*` matches any run of characters except `/`; `**` any run including `/`; three or more
//!   `*` in a row are refused, as rclone does.
//! - `?` matches one character except `/`.
//! - `[abc]`, `[a-z]`, `[!a-z]` or `[^a-z]` (negated), and the ASCII POSIX classes inside brackets
//!   (`[[:digit:]]`) match one character. As in rclone (where a class becomes a Go regexp class), a
//!   class may match `/`: `[!x]` matches `/`. A `]` outside a class, an empty class, a reversed
//!   range and a `[` inside a class (other than `[:name:]`) are refused.
//! - `{a,b,c}` matches any of the alternatives, which may contain globs and may nest. rclone's
//!   `{{regexp}}` is refused (we have no regexp engine and will not guess).
//! - `\c` matches the character `c` literally (also inside classes). A trailing `\` is refused.
//! - A pattern starting with `/` is anchored at the root of the transfer. Otherwise it matches a
//!   tail of the path that starts on a segment boundary: `*.jpg` matches `x.jpg` and `a/b/x.jpg`,
//!   `b/*.jpg` matches `a/b/x.jpg` but not `ab/x.jpg`.
//! - A pattern ending with `/` is a folder rule: files never match it. As in rclone, excluding
//!   `dir/` means excluding `dir/**` (the folder and everything in it); including `dir/` includes
//!   the folder only, not its files.
//! - Matching is case-sensitive, on whole characters (so `?` matches `é`), on the full relative
//!   path without a leading slash.
//!
//! Differences from rclone's implementation, all where rclone's behaviour is an accident of
//! translating globs to Go regexps: `[!a-z]` is a negated class (rclone documents it so, but
//! its regexp treats `!` as a member); `\d`, `\w` and the like are the literal letters, not
//! regexp classes; `**` also matches newlines in names; an empty pattern is refused (TrueNAS
//! refuses empty patterns too). rclone trims whitespace around each line of the filter file;
//! we match patterns exactly as given.
//!
//! # Folders
//!
//! [`Filter::includes_dir`] answers: must the walk descend into this folder, and may it be
//! created when empty? rclone answers this with separate "directory rules" derived from the
//! file rules; we derive the answer from the same rule list, with a rule that is provably
//! consistent with [`Filter::includes_file`]. For a folder `d`, the rules are tried in order:
//!
//! - an **include** rule decides "included" if it could match anything at or below `d`: an
//!   unanchored include can always match deeper down; an anchored one if some path starting
//!   with `d/` can match it (so `/docs/**` keeps `docs`, `/a/b/**` and `/a/b/*.txt` keep `a`
//!   and `a/b`, and the folder rule `/a/b/` keeps `a` and `a/b`);
//! - an **exclude** rule decides "excluded" only if it matches *every* path below `d`: the rule
//!   ends in `**` and matches `d/` (so `/tmp/**`, `tmp/` and `.zfs/**` exclude the folder), or it
//!   is unanchored and made only of stars (the final `- *`, which matches every file);
//! - other rules do not decide; if none decides, the folder is included.
//!
//! Consequences: when `includes_dir(d)` is false, every file and folder below `d` is excluded
//! too, so skipping the folder never changes what is transferred. A folder is included whenever
//! anything inside it could be, so the final `- *` never hides included files, but it does
//! exclude the folders that cannot hold any (with include `/docs/**`, folder `photos` is
//! excluded and neither walked nor created). This differs from rclone in one direction only:
//! rclone turns an unanchored include with a slash (`b/*.jpg`) into the folder rule `b/`, and
//! with the final `- *` it then does not descend into `a` to find `a/b/x.jpg`; we do.

use std::fmt;

use thiserror::Error;

/// The filter of a task: built-in `.zfs` exclusion, then the task's excludes and includes.
#[derive(Debug, Clone)]
pub struct Filter {
    rules: Vec<Rule>,
    user_rules: bool,
}

/// Which list of the task a refused pattern is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternList {
    /// The task's `include` list.
    Include,
    /// The task's `exclude` list.
    Exclude,
}

impl fmt::Display for PatternList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Include => "include",
            Self::Exclude => "exclude",
        })
    }
}

/// A pattern that cannot be used, e.g. `exclude.2: unclosed '[' in "a[b"` (indices start at 0).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{list}.{index}: {reason} in {pattern:?}")]
pub struct FilterError {
    /// The list the pattern is in.
    pub list: PatternList,
    /// Its index in that list, from 0.
    pub index: usize,
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: GlobError,
}

/// What is wrong with a glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GlobError {
    /// The pattern is empty.
    #[error("empty pattern")]
    Empty,
    /// A `[` without its `]`.
    #[error("unclosed '['")]
    UnclosedBracket,
    /// A `]` without its `[`.
    #[error("unmatched ']'")]
    UnmatchedBracket,
    /// `[]`, `[!]` or `[^]`.
    #[error("empty character class")]
    EmptyClass,
    /// A `[` inside a class that does not start `[:name:]`.
    #[error("'[' inside a character class (escape it as '\\[')")]
    BracketInClass,
    /// `[:name:]` with an unknown name.
    #[error("unknown character class '[:{0}:]'")]
    UnknownClass(String),
    /// A range whose end is below its start, such as `z-a`.
    #[error("reversed range '{0}-{1}' in character class")]
    ReversedRange(char, char),
    /// A `{` without its `}`.
    #[error("unclosed '{{'")]
    UnclosedBrace,
    /// A `}` without its `{`.
    #[error("unmatched '}}'")]
    UnmatchedBrace,
    /// Braces nested deeper than the limit.
    #[error("braces nested more than {MAX_BRACE_DEPTH} deep")]
    TooDeep,
    /// rclone's `{{regexp}}`.
    #[error("'{{{{regexp}}}}' sections are not supported")]
    Regexp,
    /// `***` or more.
    #[error("more than two '*' in a row")]
    TooManyStars,
    /// A `\` at the end.
    #[error("trailing '\\'")]
    TrailingBackslash,
}

/// How deep `{…}` may nest (keeps the parser's recursion bounded).
const MAX_BRACE_DEPTH: usize = 16;

impl Filter {
    /// Builds the filter of a task from its include and exclude patterns, in the TrueNAS order
    /// described in the module docs.
    ///
    /// # Errors
    ///
    /// [`FilterError`] for the first pattern (excludes first, then includes) that is empty or not
    /// a valid glob, naming its list and index.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        let mut rules = vec![builtin(false, ".zfs"), builtin(false, ".zfs/**")];
        for (list, include_rule, patterns) in
            [(PatternList::Exclude, false, exclude), (PatternList::Include, true, include)]
        {
            for (index, pattern) in patterns.iter().enumerate() {
                let rule = Rule::new(include_rule, pattern).map_err(|reason| FilterError {
                    list,
                    index,
                    pattern: pattern.clone(),
                    reason,
                })?;
                rules.push(rule);
            }
        }
        if !include.is_empty() {
            rules.push(builtin(false, "*"));
        }
        Ok(Self { rules, user_rules: !(include.is_empty() && exclude.is_empty()) })
    }

    /// Whether there are only the built-in `.zfs` rules (no include and no exclude).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.user_rules
    }

    /// Whether the file at `path` (relative, `/`-separated, no leading slash) is transferred:
    /// the first rule that matches decides, folder rules are skipped, and no match includes.
    #[must_use]
    pub fn includes_file(&self, path: &str) -> bool {
        self.rules
            .iter()
            .find(|rule| !rule.dir_only && rule.glob.matches(path, rule.anchored))
            .is_none_or(|r| r.include)
    }

    /// Whether the folder at `path` is walked (and may be created when empty); see the module
    /// docs for the rule. The root (`""`) is always included.
    #[must_use]
    pub fn includes_dir(&self, path: &str) -> bool {
        if path.is_empty() {
            return true;
        }
        let dir = format!("{path}/");
        for rule in &self.rules {
            if rule.include {
                if !rule.anchored || rule.glob.can_match_after(&dir) {
                    return true;
                }
            } else if rule.covers(&dir) {
                return false;
            }
        }
        true
    }
}

fn builtin(include: bool, pattern: &str) -> Rule {
    // The built-in patterns are valid; an error here is a bug caught by every test.
    Rule::new(include, pattern).unwrap_or_else(|e| unreachable!("built-in pattern {pattern:?}: {e}"))
}

/// One compiled `+ pattern` or `- pattern` line.
#[derive(Debug, Clone)]
struct Rule {
    include: bool,
    /// Ends in `/` and is an include: matches folders only.
    dir_only: bool,
    /// Starts with `/`.
    anchored: bool,
    /// The last token is `**`: matching `d/` implies matching everything below `d`.
    ends_with_double_star: bool,
    /// Only `*` and `**` tokens: unanchored, it matches every path.
    only_stars: bool,
    glob: Nfa,
}

impl Rule {
    fn new(include: bool, pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let (anchored, body) = match pattern.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let mut tokens = Parser { chars: body.chars().collect(), pos: 0 }.parse()?;
        let mut dir_only = pattern.ends_with('/');
        if dir_only && !include {
            // rclone: excluding "dir/" is excluding "dir/**", which also excludes its files.
            tokens.push(Token::DoubleStar);
            dir_only = false;
        }
        Ok(Self {
            include,
            dir_only,
            anchored,
            ends_with_double_star: matches!(tokens.last(), Some(Token::DoubleStar)),
            only_stars: !tokens.is_empty() && tokens.iter().all(|t| matches!(t, Token::Star | Token::DoubleStar)),
            glob: Nfa::compile(&tokens),
        })
    }

    /// Whether this rule matches every path below the folder `dir` (given with its trailing `/`).
    fn covers(&self, dir: &str) -> bool {
        (!self.anchored && self.only_stars) || (self.ends_with_double_star && self.glob.matches(dir, self.anchored))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`
    AnyButSlash,
    /// `*`
    Star,
    /// `**`
    DoubleStar,
    Class(Class),
    Alternatives(Vec<Vec<Token>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClassItem {
    Range(char, char),
    Posix(Posix),
}

/// The ASCII POSIX classes of Go's regexp syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Posix {
    Alnum,
    Alpha,
    Ascii,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Word,
    Xdigit,
}

impl Posix {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "alnum" => Self::Alnum,
            "alpha" => Self::Alpha,
            "ascii" => Self::Ascii,
            "blank" => Self::Blank,
            "cntrl" => Self::Cntrl,
            "digit" => Self::Digit,
            "graph" => Self::Graph,
            "lower" => Self::Lower,
            "print" => Self::Print,
            "punct" => Self::Punct,
            "space" => Self::Space,
            "upper" => Self::Upper,
            "word" => Self::Word,
            "xdigit" => Self::Xdigit,
            _ => return None,
        })
    }

    fn contains(self, c: char) -> bool {
        match self {
            Self::Alnum => c.is_ascii_alphanumeric(),
            Self::Alpha => c.is_ascii_alphabetic(),
            Self::Ascii => c.is_ascii(),
            Self::Blank => c == ' ' || c == '\t',
            Self::Cntrl => c.is_ascii_control(),
            Self::Digit => c.is_ascii_digit(),
            Self::Graph => c.is_ascii_graphic(),
            Self::Lower => c.is_ascii_lowercase(),
            Self::Print => c == ' ' || c.is_ascii_graphic(),
            Self::Punct => c.is_ascii_punctuation(),
            // Go: [\t\n\v\f\r ]
            Self::Space => matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' '),
            Self::Upper => c.is_ascii_uppercase(),
            Self::Word => c.is_ascii_alphanumeric() || c == '_',
            Self::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

impl Class {
    fn contains(&self, c: char) -> bool {
        let hit = self.items.iter().any(|item| match *item {
            ClassItem::Range(lo, hi) => (lo..=hi).contains(&c),
            ClassItem::Posix(p) => p.contains(c),
        });
        hit != self.negated
    }
}

/// What ended a sequence inside braces.
enum End {
    Input,
    Comma,
    Close,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn parse(mut self) -> Result<Vec<Token>, GlobError> {
        let (tokens, _) = self.sequence(0)?;
        Ok(tokens)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        self.pos += usize::from(c.is_some());
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Parses tokens until the end, or (inside braces, `depth > 0`) a `,` or `}`.
    fn sequence(&mut self, depth: usize) -> Result<(Vec<Token>, End), GlobError> {
        let mut tokens = Vec::new();
        while let Some(c) = self.next() {
            let token = match c {
                '\\' => Token::Literal(self.next().ok_or(GlobError::TrailingBackslash)?),
                '*' => {
                    let mut stars = 1;
                    while self.peek() == Some('*') {
                        self.pos += 1;
                        stars += 1;
                    }
                    match stars {
                        1 => Token::Star,
                        2 => Token::DoubleStar,
                        _ => return Err(GlobError::TooManyStars),
                    }
                }
                '?' => Token::AnyButSlash,
                '[' => Token::Class(self.class()?),
                ']' => return Err(GlobError::UnmatchedBracket),
                '{' => {
                    if self.peek() == Some('{') {
                        return Err(GlobError::Regexp);
                    }
                    if depth >= MAX_BRACE_DEPTH {
                        return Err(GlobError::TooDeep);
                    }
                    let mut alternatives = Vec::new();
                    loop {
                        let (alternative, end) = self.sequence(depth + 1)?;
                        alternatives.push(alternative);
                        match end {
                            End::Comma => {}
                            End::Close => break,
                            End::Input => return Err(GlobError::UnclosedBrace),
                        }
                    }
                    Token::Alternatives(alternatives)
                }
                '}' if depth > 0 => return Ok((tokens, End::Close)),
                '}' => return Err(GlobError::UnmatchedBrace),
                ',' if depth > 0 => return Ok((tokens, End::Comma)),
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok((tokens, End::Input))
    }

    /// Parses a class after its `[`, up to and including its `]`.
    fn class(&mut self) -> Result<Class, GlobError> {
        let negated = matches!(self.peek(), Some('!' | '^'));
        self.pos += usize::from(negated);
        let mut items = Vec::new();
        loop {
            let c = self.next().ok_or(GlobError::UnclosedBracket)?;
            let lo = match c {
                ']' if items.is_empty() => return Err(GlobError::EmptyClass),
                ']' => return Ok(Class { negated, items }),
                '[' if self.peek() == Some(':') => {
                    self.pos += 1;
                    let mut name = String::new();
                    loop {
                        match self.next().ok_or(GlobError::UnclosedBracket)? {
                            ':' if self.peek() == Some(']') => break,
                            c => name.push(c),
                        }
                    }
                    self.pos += 1;
                    let posix = Posix::from_name(&name).ok_or(GlobError::UnknownClass(name))?;
                    items.push(ClassItem::Posix(posix));
                    continue;
                }
                '[' => return Err(GlobError::BracketInClass),
                '\\' => self.next().ok_or(GlobError::UnclosedBracket)?,
                c => c,
            };
            let is_range = self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&c| c != ']');
            if is_range {
                self.pos += 1;
                let hi = match self.next().ok_or(GlobError::UnclosedBracket)? {
                    '\\' => self.next().ok_or(GlobError::UnclosedBracket)?,
                    '[' => return Err(GlobError::BracketInClass),
                    c => c,
                };
                if hi < lo {
                    return Err(GlobError::ReversedRange(lo, hi));
                }
                items.push(ClassItem::Range(lo, hi));
            } else {
                items.push(ClassItem::Range(lo, lo));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Matching: a Thompson NFA, simulated one character at a time.

#[derive(Debug, Clone)]
enum Node {
    /// The pattern matched. Always node 0.
    Match,
    /// Consume one character that the matcher accepts, then go to the next node.
    Char(CharMatcher, usize),
    /// Try both.
    Split(usize, usize),
}

#[derive(Debug, Clone)]
enum CharMatcher {
    Literal(char),
    AnyButSlash,
    Any,
    Class(Class),
}

impl CharMatcher {
    fn accepts(&self, c: char) -> bool {
        match self {
            Self::Literal(l) => *l == c,
            Self::AnyButSlash => c != '/',
            Self::Any => true,
            Self::Class(class) => class.contains(c),
        }
    }
}

#[derive(Debug, Clone)]
struct Nfa {
    nodes: Vec<Node>,
    start: usize,
}

const MATCH: usize = 0;

impl Nfa {
    fn compile(tokens: &[Token]) -> Self {
        let mut nodes = vec![Node::Match];
        let start = compile_sequence(&mut nodes, tokens, MATCH);
        Self { nodes, start }
    }

    /// Runs the NFA over `input`. Unanchored, a match may also start after any `/`.
    /// Returns the set of live nodes after the last character.
    fn run(&self, input: &str, anchored: bool) -> States {
        let mut current = States::new(self.nodes.len());
        let mut next = States::new(self.nodes.len());
        current.add(&self.nodes, self.start);
        for c in input.chars() {
            next.clear();
            for &node in &current.list {
                if let Node::Char(matcher, to) = &self.nodes[node]
                    && matcher.accepts(c)
                {
                    next.add(&self.nodes, *to);
                }
            }
            if !anchored && c == '/' {
                next.add(&self.nodes, self.start);
            }
            std::mem::swap(&mut current, &mut next);
            if anchored && current.list.is_empty() {
                break;
            }
        }
        current
    }

    /// Whether the whole of `input` matches.
    fn matches(&self, input: &str, anchored: bool) -> bool {
        self.run(input, anchored).contains(MATCH)
    }

    /// Whether some string that starts with `prefix` can match (anchored): every node can reach
    /// the match, so any live node after `prefix` will do.
    fn can_match_after(&self, prefix: &str) -> bool {
        !self.run(prefix, true).list.is_empty()
    }
}

fn compile_sequence(nodes: &mut Vec<Node>, tokens: &[Token], next: usize) -> usize {
    tokens.iter().rev().fold(next, |next, token| compile_token(nodes, token, next))
}

fn compile_token(nodes: &mut Vec<Node>, token: &Token, next: usize) -> usize {
    let mut push = |node: Node| {
        nodes.push(node);
        nodes.len() - 1
    };
    match token {
        Token::Literal(c) => push(Node::Char(CharMatcher::Literal(*c), next)),
        Token::AnyButSlash => push(Node::Char(CharMatcher::AnyButSlash, next)),
        Token::Class(class) => push(Node::Char(CharMatcher::Class(class.clone()), next)),
        Token::Star | Token::DoubleStar => {
            let matcher = if *token == Token::Star { CharMatcher::AnyButSlash } else { CharMatcher::Any };
            let split = push(Node::Split(MATCH, next));
            let char_node = push(Node::Char(matcher, split));
            nodes[split] = Node::Split(char_node, next);
            split
        }
        Token::Alternatives(alternatives) => {
            let starts: Vec<usize> = alternatives.iter().map(|alt| compile_sequence(nodes, alt, next)).collect();
            let (&last, rest) = starts.split_last().unwrap_or((&next, &[]));
            rest.iter().rev().fold(last, |other, &start| {
                nodes.push(Node::Split(start, other));
                nodes.len() - 1
            })
        }
    }
}

/// A set of NFA nodes, closed under `Split` (`list` holds every member, so `clear` is cheap).
struct States {
    list: Vec<usize>,
    member: Vec<bool>,
    stack: Vec<usize>,
}

impl States {
    fn new(len: usize) -> Self {
        Self { list: Vec::new(), member: vec![false; len], stack: Vec::new() }
    }

    fn clear(&mut self) {
        for &node in &self.list {
            self.member[node] = false;
        }
        self.list.clear();
    }

    fn contains(&self, node: usize) -> bool {
        self.member[node]
    }

    /// Adds `node` and everything reachable from it through `Split`s.
    fn add(&mut self, nodes: &[Node], node: usize) {
        self.stack.push(node);
        while let Some(node) = self.stack.pop() {
            if self.member[node] {
                continue;
            }
            self.member[node] = true;
            self.list.push(node);
            if let Node::Split(a, b) = nodes[node] {
                self.stack.push(b);
                self.stack.push(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &str) -> Result<Vec<Token>, GlobError> {
        Parser { chars: p.chars().collect(), pos: 0 }.parse()
    }

    #[test]
    fn parses_tokens() {
        assert_eq!(parse("a*").unwrap(), vec![Token::Literal('a'), Token::Star]);
        assert_eq!(parse("**").unwrap(), vec![Token::DoubleStar]);
        assert_eq!(parse("{a,}").unwrap(), vec![Token::Alternatives(vec![vec![Token::Literal('a')], vec![]])]);
        assert_eq!(parse("x,y").unwrap().len(), 3);
        assert_eq!(
            parse("[a-]").unwrap(),
            vec![Token::Class(Class {
                negated: false,
                items: vec![ClassItem::Range('a', 'a'), ClassItem::Range('-', '-')]
            })]
        );
    }

    #[test]
    fn nested_braces_are_bounded() {
        let deep = "{a,".repeat(MAX_BRACE_DEPTH + 1) + &"}".repeat(MAX_BRACE_DEPTH + 1);
        assert_eq!(parse(&deep), Err(GlobError::TooDeep));
        let ok = "{a,".repeat(MAX_BRACE_DEPTH) + &"}".repeat(MAX_BRACE_DEPTH);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn matching_is_linear_on_hostile_input() {
        // Exponential for a naive backtracker; trivial for the NFA.
        let rule = Rule::new(false, &"**a".repeat(20)).unwrap();
        let path = "a".repeat(19) + &"/b".repeat(5_000);
        assert!(!rule.glob.matches(&path, false));
    }
}
