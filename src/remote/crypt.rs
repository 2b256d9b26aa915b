//! The encrypting remote: wraps any [`Remote`] and keeps names and contents in rclone's crypt
//! format, so rclone (and TrueNAS) read what we write and we read what they wrote. Imports std,
//! tokio, `zeroize`, `crypt` (the pure format), `engine::{entry, filter}` and `super`.
//!
//! # Names
//!
//! `filename_encryption` on is rclone's `standard` (every path segment, folder names too, base32);
//! off is rclone's `off`: file names get `.bin`, folder names stay. That is what TrueNAS
//! configures. The task's folder itself (the root of the wrapped remote) is never encrypted.
//!
//! Names that cannot be decrypted are reported, never dropped silently:
//! - a name that is not an rclone crypt name at all (not base32, a wrong length; in `off` mode no
//!   `.bin` suffix) is [`Listed::Skipped`]: something else put it there (a README, another
//!   tool); it is logged and left alone, as rclone skips it;
//! - a name that has the shape of an encrypted name but does not decrypt (bad padding, not
//!   UTF-8: a wrong password, another task's password, or a damaged name), one that decrypts to a
//!   name no file system can hold (`..`, `/`, NUL), and a file whose size no encrypted file can
//!   have (cut short) are [`Listed::Error`]: the listing is incomplete, so the job fails and a
//!   SYNC deletes nothing.
//!
//! # Listing order
//!
//! Encrypted names sort differently from their plaintexts, and the planner needs plaintext key
//! order ([`crate::engine::entry`]). When the wrapped remote lists folder by folder
//! ([`Remote::list_folder`], as [`super::local::LocalFs`] does), the listing streams: one folder's
//! children are read, decrypted and sorted with [`walk_steps`] at a time, depth first, so memory
//! holds one folder per level of the path being walked (as the local walk does). A remote
//! that only lists whole trees is buffered whole: about 100 bytes plus the encrypted path per
//! object (some 200 MB for a million objects) until the walk starts.
//!
//! # Contents
//!
//! Reads decrypt block by block (64 KiB) from the wrapped stream; a bad header, a block that
//! does not authenticate (wrong password, corrupted data) or a cut block is an `InvalidData`
//! io error naming the file and the reason, after which the executor aborts the write. Writes
//! encrypt with a fresh random nonce into an upload of the encrypted size. Memory per open file:
//! about two blocks.

use super::{
    Archived, ByteStream, ListOptions, Listed, Meta, OnStored, RangeSource, Remote, RemoteError, RootState, Upload,
    Version, Written,
};
use crate::{
    crypt::{
        BLOCK_DATA_SIZE, BLOCK_SIZE, Cipher, ContentCipher, CryptError, Encryptor, HEADER_SIZE, NameEncryption,
        NameError, NameOptions, Nonce, decrypted_size, encrypted_size, header, parse_header,
    },
    engine::{
        entry::{Entry, Kind, Mtime, WalkStep, walk_steps},
        filter::Filter,
    },
};
use std::{
    collections::{HashMap, HashSet},
    fmt, io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, ReadBuf},
    sync::mpsc,
};
use zeroize::Zeroizing;

/// The name options of a task: rclone's defaults (directory names encrypted, base32, `.bin`),
/// with `standard` or `off` file name encryption, as TrueNAS configures rclone.
#[must_use]
pub fn task_name_options(filename_encryption: bool) -> NameOptions {
    NameOptions {
        encryption: if filename_encryption { NameEncryption::Standard } else { NameEncryption::Off },
        ..NameOptions::default()
    }
}

/// Derives a task's cipher from its password and salt (an empty salt is rclone's default salt,
/// as TrueNAS leaves `password2` unset), off the async threads: scrypt takes some 50 ms and
/// 16 MiB. Derive once per job and share the result.
///
/// # Errors
/// The blocking task died (a panic), which does not happen with valid constants.
pub async fn derive_cipher(password: &str, salt: &str, filename_encryption: bool) -> Result<Arc<Cipher>, String> {
    let password = Zeroizing::new(password.to_owned());
    let salt = Zeroizing::new(salt.to_owned());
    tokio::task::spawn_blocking(move || {
        Arc::new(Cipher::from_password(&password, &salt, task_name_options(filename_encryption)))
    })
    .await
    .map_err(|e| format!("deriving the encryption keys failed: {e}"))
}

/// A remote whose names and contents are encrypted in rclone's crypt format, stored in `inner`.
pub struct CryptRemote {
    inner: Arc<dyn Remote>,
    cipher: Arc<Cipher>,
}

impl fmt::Debug for CryptRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cipher's Debug shows the name options only, never a key.
        f.debug_struct("CryptRemote").field("inner", &self.inner.describe()).field("cipher", &self.cipher).finish()
    }
}

/// One child of a folder as `Credential.ListDirectory` shows an encrypted folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browsed {
    /// The decrypted name, or the stored one when it does not decrypt.
    pub name: String,
    /// File or folder.
    pub kind: Kind,
    /// Plaintext size (the stored size when it is not a possible encrypted size).
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
    /// Whether `name` is decrypted.
    pub decrypted: bool,
}

/// A child of a folder being walked: its plaintext entry and where it is stored.
struct Child {
    name: String,
    entry: Entry,
    stored: String,
    /// False for folders only implied by their contents (bucket stores): walked, not listed.
    emit: bool,
    /// The stored object's version, for a file whose mtime is left to the caller.
    version: Option<Version>,
}

/// One folder of the depth-first walk.
struct Frame {
    children: Vec<Child>,
    steps: Vec<WalkStep>,
    next: usize,
    included: Vec<bool>,
}

/// Where the walk gets a folder's children from.
enum Folders {
    /// Folder by folder from the wrapped remote.
    Live,
    /// From the buffered whole listing: stored parent path → its children; folders implied only.
    Buffered { children: HashMap<String, Vec<Listed>>, implied: HashSet<String> },
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

fn last_segment(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The cause of an error of the wrapped remote, without its (encrypted) path.
fn cause(e: &RemoteError) -> String {
    match e {
        RemoteError::Io { source, .. } => source.to_string(),
        RemoteError::NotFound { .. } => "does not exist".to_owned(),
        RemoteError::Refused { reason, .. } => reason.clone(),
    }
}

/// An error of the wrapped remote, told about the plaintext `path` instead of the stored one.
fn at(path: &str, e: RemoteError) -> RemoteError {
    let path = path.to_owned();
    match e {
        RemoteError::Io { source, .. } => RemoteError::Io { path, source },
        RemoteError::NotFound { .. } => RemoteError::NotFound { path },
        RemoteError::Refused { reason, .. } => RemoteError::Refused { path, reason },
    }
}

/// Why a decrypted name cannot be used as a path segment, if it cannot.
fn unusable(name: &str) -> Option<&'static str> {
    match name {
        "" => Some("it is empty"),
        "." | ".." => Some("it is a dot segment"),
        n if n.contains('/') => Some("it contains '/'"),
        n if n.contains('\0') => Some("it contains a NUL byte"),
        _ => None,
    }
}

/// How a name that does not decrypt is reported (see the module docs).
fn undecryptable(path: String, err: &CryptError) -> Listed {
    if let CryptError::NameDecrypt { reason, .. } = err
        && matches!(
            reason,
            NameError::PaddingTooLong
                | NameError::PaddingTooShort
                | NameError::PaddingNotAllTheSame
                | NameError::NotUtf8
        )
    {
        return Listed::Error {
            path,
            reason: format!("cannot decrypt this name: wrong password or corrupted data ({reason})"),
        };
    }
    Listed::Skipped { path, reason: format!("not an encrypted name, left alone ({err})") }
}

impl CryptRemote {
    /// Wraps `inner` with `cipher` (see [`derive_cipher`]).
    #[must_use]
    pub fn new(inner: Arc<dyn Remote>, cipher: Arc<Cipher>) -> Self {
        Self { inner, cipher }
    }

    /// The cipher (to check name lengths before a run).
    #[must_use]
    pub fn cipher(&self) -> &Arc<Cipher> {
        &self.cipher
    }

    fn file_name(&self, path: &str) -> Result<String, RemoteError> {
        self.cipher
            .names()
            .encrypt_file_name(path)
            .map_err(|e| RemoteError::Refused { path: path.to_owned(), reason: e.to_string() })
    }

    fn dir_name(&self, path: &str) -> Result<String, RemoteError> {
        self.cipher
            .names()
            .encrypt_dir_name(path)
            .map_err(|e| RemoteError::Refused { path: path.to_owned(), reason: e.to_string() })
    }

    /// The plaintext name of a stored name; `Err` is the item to report instead.
    fn decrypt_name(&self, dir: &str, stored: &str, kind: Kind) -> Result<String, Listed> {
        let names = self.cipher.names();
        let name = match kind {
            Kind::File => names.decrypt_file_name(stored),
            Kind::Dir => names.decrypt_dir_name(stored),
        }
        .map_err(|e| undecryptable(join(dir, stored), &e))?;
        if let Some(why) = unusable(&name) {
            return Err(Listed::Error {
                path: join(dir, stored),
                reason: format!("decrypts to a name that cannot be used ({why}); refused"),
            });
        }
        Ok(name)
    }

    /// The plaintext name of a stored file name where it decrypts, else the stored name (for
    /// reports only).
    fn plain_file_name(&self, stored: &str) -> String {
        self.cipher.names().decrypt_file_name(stored).unwrap_or_else(|_| stored.to_owned())
    }

    /// The plaintext of a stored path where its segments decrypt, else the stored segments (for
    /// reports only).
    fn plain_path(&self, stored: &str) -> String {
        let (dir, name) = stored.rsplit_once('/').map_or(("", stored), |(d, n)| (d, n));
        let names = self.cipher.names();
        let mut out: Vec<String> = if dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').map(|seg| names.decrypt_dir_name(seg).unwrap_or_else(|_| seg.to_owned())).collect()
        };
        out.push(self.plain_file_name(name));
        out.join("/")
    }

    /// Decrypts one listed folder (`dir` plaintext, its children as the wrapped remote lists
    /// them): the children, and what to report about the rest.
    fn decode_folder(
        &self,
        dir: &str,
        listed: Vec<Listed>,
        implied: Option<&HashSet<String>>,
    ) -> (Vec<Child>, Vec<Listed>) {
        let mut children = Vec::with_capacity(listed.len());
        let mut problems = Vec::new();
        for item in listed {
            let (e, version) = match item {
                Listed::Entry(e) => (e, None),
                // Its mtime is left to the caller (what an earlier run saw, else a stat).
                Listed::Unresolved { entry, version } => (entry, Some(version)),
                // The wrapped remote's own problems, told at the plaintext folder.
                Listed::Skipped { path, reason } => {
                    problems.push(Listed::Skipped { path: join(dir, last_segment(&path)), reason });
                    continue;
                }
                Listed::Error { path, reason } => {
                    problems
                        .push(Listed::Error { path: join(dir, &self.plain_file_name(last_segment(&path))), reason });
                    continue;
                }
            };
            let name = match self.decrypt_name(dir, last_segment(&e.path), e.kind) {
                Ok(name) => name,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let path = join(dir, &name);
            let size = match e.kind {
                Kind::Dir => 0,
                Kind::File => match decrypted_size(e.size) {
                    Ok(size) => size,
                    Err(err) => {
                        problems.push(Listed::Error {
                            path,
                            reason: format!("{err}: the object was cut short or not written through encryption"),
                        });
                        continue;
                    }
                },
            };
            // Folders only implied by their contents are walked, not listed: in a buffered
            // listing those it added, folder by folder all folders of a store without folders
            // (a bucket's common prefixes), as a plain listing of such a store has none.
            let emit = match implied {
                Some(set) => !set.contains(&e.path),
                None => e.is_file() || self.inner.has_dirs(),
            };
            children.push(Child {
                name,
                entry: Entry { path, kind: e.kind, size, mtime: e.mtime },
                stored: e.path,
                emit,
                version,
            });
        }
        (children, problems)
    }

    /// Reads the whole listing of the wrapped remote into folders (when it cannot list folder by
    /// folder).
    async fn buffer_all(&self) -> Result<Folders, RemoteError> {
        let (tx, mut rx) = mpsc::channel(1024);
        let inner = self.inner.clone();
        let everything = ListOptions {
            filter: Arc::new(Filter::new(&[], &[]).expect("no rules is a valid filter")),
            follow_symlinks: false,
            versions: false,
            hints: Vec::new(),
        };
        let lister = tokio::spawn(async move { inner.list(everything, tx).await });
        let mut children: HashMap<String, Vec<Listed>> = HashMap::new();
        let mut dirs: HashSet<String> = HashSet::new();
        while let Some(item) = rx.recv().await {
            let path = match &item {
                Listed::Entry(e) | Listed::Unresolved { entry: e, .. } => {
                    if e.is_dir() {
                        dirs.insert(e.path.clone());
                    }
                    &e.path
                }
                Listed::Skipped { path, .. } | Listed::Error { path, .. } => path,
            };
            children.entry(parent(path).to_owned()).or_default().push(item);
        }
        lister
            .await
            .map_err(|e| RemoteError::Refused { path: self.describe(), reason: format!("listing failed: {e}") })??;
        // Folders only implied by their contents (bucket stores without folder markers) are
        // added, so that the walk descends into them.
        let mut implied = HashSet::new();
        let mut pending: Vec<String> = children.keys().filter(|k| !k.is_empty()).cloned().collect();
        while let Some(d) = pending.pop() {
            if d.is_empty() || dirs.contains(&d) || !implied.insert(d.clone()) {
                continue;
            }
            let up = parent(&d).to_owned();
            children.entry(up.clone()).or_default().push(Listed::Entry(Entry::dir(d, Mtime::default())));
            pending.push(up);
        }
        Ok(Folders::Buffered { children, implied })
    }

    /// The stored children of the stored folder `stored`; with `versions`, files may come
    /// unresolved (see [`Remote::list_folder_versions`]).
    async fn children(&self, folders: &mut Folders, stored: &str, versions: bool) -> Result<Vec<Listed>, RemoteError> {
        match folders {
            Folders::Live => self.folder(stored, versions).await?.ok_or_else(|| RemoteError::Refused {
                path: stored.to_owned(),
                reason: "the remote stopped listing folder by folder".to_owned(),
            }),
            Folders::Buffered { children, .. } => Ok(children.remove(stored).unwrap_or_default()),
        }
    }

    /// Decodes a folder into a walk frame, sending its problems; `None` when the receiver is gone.
    async fn frame(
        &self,
        folders: &Folders,
        dir: &str,
        listed: Vec<Listed>,
        tx: &mpsc::Sender<Listed>,
    ) -> Option<Frame> {
        let implied = match folders {
            Folders::Live => None,
            Folders::Buffered { implied, .. } => Some(implied),
        };
        let (children, problems) = self.decode_folder(dir, listed, implied);
        for p in problems {
            tx.send(p).await.ok()?;
        }
        let names: Vec<(String, Kind)> = children.iter().map(|c| (c.name.clone(), c.entry.kind)).collect();
        let steps = walk_steps(&names);
        Some(Frame { included: vec![false; children.len()], children, steps, next: 0 })
    }

    /// Checks the keys against what the tree already holds, before a PUSH writes into it: the
    /// first stored file with content must authenticate (its first block is read), and a name
    /// that has the shape of an encrypted name must decrypt. `Ok` also when there is nothing to
    /// check against. Without this, a mistyped password would add files under a second key to a
    /// backup, and with names `off` nothing else would notice.
    ///
    /// Streams the wrapped listing in its own order and stops at the first verdict.
    ///
    /// # Errors
    /// What does not decrypt, and why (for the user: the password or salt is not the one the
    /// tree was written with).
    /// The wrapped remote's listing of the stored folder `stored`, unresolved files allowed with
    /// `versions`.
    async fn folder(&self, stored: &str, versions: bool) -> Result<Option<Vec<Listed>>, RemoteError> {
        if versions { self.inner.list_folder_versions(stored).await } else { self.inner.list_folder(stored).await }
    }

    pub async fn check_keys(&self) -> Result<(), String> {
        let (tx, mut rx) = mpsc::channel(64);
        let inner = self.inner.clone();
        let everything = ListOptions {
            filter: Arc::new(Filter::new(&[], &[]).expect("no rules is a valid filter")),
            follow_symlinks: false,
            // Names and sizes are all it needs: no mtimes (a bucket store reads them by HEAD).
            versions: true,
            hints: Vec::new(),
        };
        let lister = tokio::spawn(async move { inner.list(everything, tx).await });
        let mut verdict = Ok(());
        while let Some(item) = rx.recv().await {
            let (Listed::Entry(e) | Listed::Unresolved { entry: e, .. }) = item else { continue };
            match self.decrypt_name(parent(&e.path), last_segment(&e.path), e.kind) {
                Ok(_) => {}
                Err(Listed::Error { path, reason }) => {
                    verdict = Err(format!("{path}: {reason}"));
                    break;
                }
                Err(_) => continue,
            }
            if !e.is_file() || e.size <= HEADER_SIZE as u64 {
                continue;
            }
            let Ok(stream) = self.inner.open(&e.path).await else { continue };
            let mut first = [0u8; 1];
            let mut dec = DecryptStream::new(stream, self.cipher.content(), &e.path);
            match tokio::io::AsyncReadExt::read(&mut dec, &mut first).await {
                Err(err) if err.kind() == io::ErrorKind::InvalidData => verdict = Err(err.to_string()),
                Err(_) => continue,
                Ok(_) => {}
            }
            break;
        }
        drop(rx);
        let _ = lister.await;
        verdict
    }

    /// The children of the root folder, decrypted where possible, sorted by name
    /// (`Credential.ListDirectory`).
    ///
    /// # Errors
    /// The root cannot be listed.
    pub async fn browse(&self) -> Result<Vec<Browsed>, RemoteError> {
        let listed = match self.inner.list_folder("").await? {
            Some(listed) => listed,
            None => match self.buffer_all().await? {
                Folders::Buffered { mut children, .. } => children.remove("").unwrap_or_default(),
                Folders::Live => Vec::new(),
            },
        };
        let mut out = Vec::new();
        for item in listed {
            let Listed::Entry(e) = item else { continue };
            let stored = last_segment(&e.path);
            let (name, decrypted) = match self.decrypt_name("", stored, e.kind) {
                Ok(name) => (name, true),
                Err(_) => (stored.to_owned(), false),
            };
            let size = match e.kind {
                Kind::Dir => 0,
                Kind::File if decrypted => decrypted_size(e.size).unwrap_or(e.size),
                Kind::File => e.size,
            };
            out.push(Browsed { name, kind: e.kind, size, mtime: e.mtime, decrypted });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Remote for CryptRemote {
    /// The wrapped remote's name: the task's folder, which is not encrypted.
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn requests(&self) -> Vec<(String, u64)> {
        self.inner.requests()
    }

    fn mtime_precision_ns(&self) -> u64 {
        self.inner.mtime_precision_ns()
    }

    fn has_dirs(&self) -> bool {
        self.inner.has_dirs()
    }

    async fn root_state(&self) -> Result<RootState, RemoteError> {
        self.inner.root_state().await
    }

    async fn create_root(&self) -> Result<(), RemoteError> {
        self.inner.create_root().await
    }

    async fn list(&self, opts: ListOptions, tx: mpsc::Sender<Listed>) -> Result<(), RemoteError> {
        let (mut folders, root) = match self.folder("", opts.versions).await? {
            Some(root) => (Folders::Live, root),
            None => {
                let mut folders = self.buffer_all().await?;
                let root = self.children(&mut folders, "", false).await?;
                (folders, root)
            }
        };
        let Some(first) = self.frame(&folders, "", root, &tx).await else { return Ok(()) };
        let mut stack = vec![first];
        while let Some(top) = stack.last_mut() {
            let Some(step) = top.steps.get(top.next).copied() else {
                stack.pop();
                continue;
            };
            top.next += 1;
            match step {
                WalkStep::Emit(i) => {
                    let child = &top.children[i];
                    let wanted = match child.entry.kind {
                        Kind::File => opts.filter.includes_file(&child.entry.path),
                        Kind::Dir => opts.filter.includes_dir(&child.entry.path),
                    };
                    if !wanted {
                        continue;
                    }
                    if child.entry.is_dir() {
                        top.included[i] = true;
                    }
                    let item = match &child.version {
                        Some(v) => Listed::Unresolved { entry: child.entry.clone(), version: v.clone() },
                        None => Listed::Entry(child.entry.clone()),
                    };
                    if child.emit && tx.send(item).await.is_err() {
                        return Ok(());
                    }
                }
                WalkStep::Descend(i) => {
                    if !top.included[i] {
                        continue;
                    }
                    let (dir, stored) = (top.children[i].entry.path.clone(), top.children[i].stored.clone());
                    let listed = match self.children(&mut folders, &stored, opts.versions).await {
                        Ok(listed) => listed,
                        Err(e) => {
                            if tx.send(Listed::Error { path: dir, reason: cause(&e) }).await.is_err() {
                                return Ok(());
                            }
                            continue;
                        }
                    };
                    let Some(frame) = self.frame(&folders, &dir, listed, &tx).await else { return Ok(()) };
                    stack.push(frame);
                }
            }
        }
        Ok(())
    }

    async fn open(&self, path: &str) -> Result<ByteStream, RemoteError> {
        let stored = self.file_name(path)?;
        let inner = self.inner.open(&stored).await.map_err(|e| at(path, e))?;
        Ok(Box::pin(DecryptStream::new(inner, self.cipher.content(), path)))
    }

    async fn create(&self, path: &str, size: u64, mtime: Mtime) -> Result<Box<dyn Upload>, RemoteError> {
        let stored = self.file_name(path)?;
        let enc = Encryptor::with_random_nonce(self.cipher.content())
            .map_err(|e| RemoteError::Refused { path: path.to_owned(), reason: e.to_string() })?;
        let inner = self.inner.create(&stored, encrypted_size(size), mtime).await.map_err(|e| at(path, e))?;
        Ok(Box::new(CryptUpload { inner, enc: Some(enc), out: Vec::new(), path: path.to_owned() }))
    }

    fn streams_uploads(&self) -> bool {
        self.inner.streams_uploads()
    }

    async fn upload_from(
        &self,
        entry: &Entry,
        _meta: Option<&Meta>,
        source: Arc<dyn RangeSource>,
        stored: OnStored,
    ) -> Result<Option<Written>, RemoteError> {
        let name = self.file_name(&entry.path)?;
        let nonce =
            Nonce::random().map_err(|e| RemoteError::Refused { path: entry.path.clone(), reason: e.to_string() })?;
        let enc_size = encrypted_size(entry.size);
        // Encrypted block by block as the store reads it: block `b` is always sealed with the
        // same nonce + b, so every read of a range (hash, send, retry) gives the same bytes.
        let sealed = Arc::new(SealedRange(Arc::new(SealedSource {
            plain: source,
            cipher: self.cipher.content().clone(),
            nonce,
            len: entry.size,
        })));
        // Progress counts plaintext bytes.
        let (plain, done) = (entry.size, Arc::new(std::sync::Mutex::new((0u64, 0u64))));
        let scaled: OnStored = Arc::new(move |n| {
            let mut d = done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            d.0 += n;
            let now = u64::try_from(u128::from(d.0) * u128::from(plain) / u128::from(enc_size.max(1))).unwrap_or(plain);
            if now > d.1 {
                stored(now - d.1);
                d.1 = now;
            }
        });
        let inner = Entry::file(name, enc_size, entry.mtime);
        self.inner.upload_from(&inner, None, sealed, scaled).await.map_err(|e| at(&entry.path, e))
    }

    async fn stat(&self, path: &str) -> Result<Option<Entry>, RemoteError> {
        let stored = self.file_name(path)?;
        if let Some(e) = self.inner.stat(&stored).await.map_err(|e| at(path, e))?
            && e.is_file()
        {
            let size = decrypted_size(e.size).map_err(|err| RemoteError::Refused {
                path: path.to_owned(),
                reason: format!("{err}: the object was cut short or not written through encryption"),
            })?;
            return Ok(Some(Entry::file(path, size, e.mtime)));
        }
        let stored = self.dir_name(path)?;
        Ok(match self.inner.stat(&stored).await.map_err(|e| at(path, e))? {
            Some(e) if e.is_dir() => Some(Entry::dir(path, e.mtime)),
            _ => None,
        })
    }

    async fn delete(&self, path: &str) -> Result<(), RemoteError> {
        let stored = self.file_name(path)?;
        self.inner.delete(&stored).await.map_err(|e| at(path, e))
    }

    async fn make_dir(&self, path: &str) -> Result<(), RemoteError> {
        let stored = self.dir_name(path)?;
        self.inner.make_dir(&stored).await.map_err(|e| at(path, e))
    }

    async fn remove_dir(&self, path: &str) -> Result<bool, RemoteError> {
        let stored = self.dir_name(path)?;
        self.inner.remove_dir(&stored).await.map_err(|e| at(path, e))
    }

    async fn sweep_partials(&self, keep_job: Option<u64>) -> Result<u64, RemoteError> {
        // Temporary names are the wrapped remote's own, never encrypted.
        self.inner.sweep_partials(keep_job).await
    }

    fn archived(&self) -> Vec<Archived> {
        let mut out = self.inner.archived();
        for a in &mut out {
            a.path = self.plain_path(&a.path);
        }
        out
    }
}

/// Encrypts into the wrapped upload; nothing is visible until `finish`, as with any upload.
/// A plaintext [`RangeSource`] as its rclone crypt encryption with `nonce`: header, then one
/// sealed block per 64 KiB, each made when a reader reaches it.
struct SealedRange(Arc<SealedSource>);

#[async_trait::async_trait]
impl RangeSource for SealedRange {
    async fn open_at(&self, offset: u64, len: u64) -> io::Result<ByteStream> {
        Ok(Box::pin(SealedReader {
            src: self.0.clone(),
            pos: offset,
            end: offset.saturating_add(len),
            buf: Vec::new(),
            buf_start: 0,
            pending: None,
        }))
    }

    async fn changed(&self) -> Option<String> {
        self.0.plain.changed().await
    }
}

struct SealedSource {
    plain: Arc<dyn RangeSource>,
    cipher: ContentCipher,
    nonce: Nonce,
    len: u64,
}

impl SealedSource {
    /// Sealed block `b` (its encrypted bytes).
    async fn block(&self, b: u64) -> io::Result<Vec<u8>> {
        let from = b * BLOCK_DATA_SIZE as u64;
        let n = usize::try_from(self.len.saturating_sub(from).min(BLOCK_DATA_SIZE as u64)).unwrap_or(0);
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut rd = self.plain.open_at(from, n as u64).await?;
        let mut plain = Zeroizing::new(vec![0u8; n]);
        rd.read_exact(&mut plain).await?;
        let mut out = Vec::with_capacity(n + BLOCK_SIZE - BLOCK_DATA_SIZE);
        self.cipher
            .encrypt_block(&self.nonce, b, &plain, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(out)
    }
}

type Sealing = Pin<Box<dyn std::future::Future<Output = io::Result<(u64, Vec<u8>)>> + Send>>;

/// Reads `pos..end` of a [`SealedRange`].
struct SealedReader {
    src: Arc<SealedSource>,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    pending: Option<Sealing>,
}

impl AsyncRead for SealedReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos >= this.end {
                return Poll::Ready(Ok(()));
            }
            let in_buf = this.pos.checked_sub(this.buf_start).and_then(|o| usize::try_from(o).ok());
            if let Some(o) = in_buf.filter(|o| *o < this.buf.len()) {
                let left = usize::try_from(this.end - this.pos).unwrap_or(usize::MAX);
                let n = (this.buf.len() - o).min(out.remaining()).min(left);
                out.put_slice(&this.buf[o..o + n]);
                this.pos += n as u64;
                return Poll::Ready(Ok(()));
            }
            if let Some(f) = this.pending.as_mut() {
                let (start, data) = ready!(f.as_mut().poll(cx))?;
                this.pending = None;
                if data.is_empty() {
                    return Poll::Ready(Ok(())); // past the end
                }
                this.buf = data;
                this.buf_start = start;
                continue;
            }
            let header_len = HEADER_SIZE as u64;
            if this.pos < header_len {
                this.buf = header(&this.src.nonce).to_vec();
                this.buf_start = 0;
                continue;
            }
            let b = (this.pos - header_len) / BLOCK_SIZE as u64;
            let src = this.src.clone();
            this.pending = Some(Box::pin(async move {
                let data = src.block(b).await?;
                Ok((header_len + b * BLOCK_SIZE as u64, data))
            }));
        }
    }
}

struct CryptUpload {
    inner: Box<dyn Upload>,
    enc: Option<Encryptor>,
    out: Vec<u8>,
    path: String,
}

#[async_trait::async_trait]
impl Upload for CryptUpload {
    async fn write(&mut self, buf: &[u8]) -> Result<(), RemoteError> {
        let enc = self.enc.as_mut().expect("write after finish");
        self.out.clear();
        enc.update(buf, &mut self.out);
        if self.out.is_empty() {
            return Ok(());
        }
        self.inner.write(&self.out).await.map_err(|e| at(&self.path, e))
    }

    async fn finish(mut self: Box<Self>) -> Result<Option<Written>, RemoteError> {
        self.out.clear();
        self.enc.take().expect("finish twice").finish(&mut self.out);
        let Self { mut inner, out, path, .. } = *self;
        if let Err(e) = inner.write(&out).await {
            inner.abort().await;
            return Err(at(&path, e));
        }
        inner.finish().await.map_err(|e| at(&path, e))
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
}

/// Decrypts an rclone crypt file block by block as it is read; holds one sealed and one
/// opened block.
struct DecryptStream {
    inner: ByteStream,
    cipher: ContentCipher,
    path: String,
    nonce: Option<Nonce>,
    header: [u8; HEADER_SIZE],
    sealed: Vec<u8>,
    filled: usize,
    block: u64,
    out: Zeroizing<Vec<u8>>,
    out_pos: usize,
    done: bool,
    failed: Option<String>,
}

impl DecryptStream {
    fn new(inner: ByteStream, cipher: &ContentCipher, path: &str) -> Self {
        Self {
            inner,
            cipher: cipher.clone(),
            path: path.to_owned(),
            nonce: None,
            header: [0; HEADER_SIZE],
            sealed: vec![0; BLOCK_SIZE],
            filled: 0,
            block: 0,
            out: Zeroizing::new(Vec::with_capacity(BLOCK_SIZE)),
            out_pos: 0,
            done: false,
            failed: None,
        }
    }

    fn fail(&mut self, err: &CryptError) -> Poll<io::Result<()>> {
        let msg = format!("cannot decrypt {}: {err}", self.path);
        self.failed = Some(msg.clone());
        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, msg)))
    }

    /// Opens the block in `sealed[..filled]` into `out`.
    fn open_block(&mut self, nonce: Nonce) -> Result<(), CryptError> {
        self.out.clear();
        self.out_pos = 0;
        let res = self.cipher.decrypt_block(&nonce, self.block, &self.sealed[..self.filled], &mut self.out);
        self.filled = 0;
        res?;
        self.block += 1;
        Ok(())
    }
}

impl AsyncRead for DecryptStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if me.out_pos < me.out.len() {
                let n = (me.out.len() - me.out_pos).min(buf.remaining());
                buf.put_slice(&me.out[me.out_pos..me.out_pos + n]);
                me.out_pos += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(msg) = &me.failed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, msg.clone())));
            }
            if me.done {
                return Poll::Ready(Ok(()));
            }
            let target = match me.nonce {
                None => &mut me.header[me.filled..],
                Some(_) => &mut me.sealed[me.filled..],
            };
            let mut rb = ReadBuf::new(target);
            ready!(me.inner.as_mut().poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            me.filled += n;
            let eof = n == 0;
            match me.nonce {
                None if me.filled == HEADER_SIZE => match parse_header(&me.header) {
                    Ok(nonce) => {
                        me.nonce = Some(nonce);
                        me.filled = 0;
                    }
                    Err(e) => return me.fail(&e),
                },
                None if eof => return me.fail(&CryptError::TooShort),
                None => {}
                Some(nonce) => {
                    if (me.filled == BLOCK_SIZE || (eof && me.filled > 0))
                        && let Err(e) = me.open_block(nonce)
                    {
                        return me.fail(&e);
                    }
                    if eof {
                        me.done = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::{Keys, NameOptions};
    use std::sync::Mutex;
    use tokio::io::AsyncReadExt;

    /// A remote that only lists whole trees, in the order given (as a bucket store might, with
    /// or without folder entries); everything else is unused here.
    struct TreeOnly(Mutex<Vec<Listed>>);

    #[async_trait::async_trait]
    impl Remote for TreeOnly {
        fn describe(&self) -> String {
            "tree-only".into()
        }
        fn mtime_precision_ns(&self) -> u64 {
            1
        }
        fn has_dirs(&self) -> bool {
            false
        }
        async fn root_state(&self) -> Result<RootState, RemoteError> {
            Ok(RootState::Present)
        }
        async fn list(&self, _opts: ListOptions, tx: mpsc::Sender<Listed>) -> Result<(), RemoteError> {
            let items = self.0.lock().unwrap().clone();
            for i in items {
                tx.send(i).await.unwrap();
            }
            Ok(())
        }
        async fn open(&self, path: &str) -> Result<ByteStream, RemoteError> {
            Err(RemoteError::NotFound { path: path.into() })
        }
        async fn create(&self, path: &str, _: u64, _: Mtime) -> Result<Box<dyn Upload>, RemoteError> {
            Err(RemoteError::NotFound { path: path.into() })
        }
        async fn stat(&self, _: &str) -> Result<Option<Entry>, RemoteError> {
            Ok(None)
        }
        async fn delete(&self, _: &str) -> Result<(), RemoteError> {
            Ok(())
        }
        async fn make_dir(&self, _: &str) -> Result<(), RemoteError> {
            Ok(())
        }
        async fn remove_dir(&self, _: &str) -> Result<bool, RemoteError> {
            Ok(true)
        }
        async fn sweep_partials(&self, _: Option<u64>) -> Result<u64, RemoteError> {
            Ok(0)
        }
    }

    fn cipher(filename_encryption: bool) -> Arc<Cipher> {
        // Fixed keys: no scrypt in unit tests.
        Arc::new(Cipher::new(Keys::from_parts([1; 32], [2; 32], [3; 16]), task_name_options(filename_encryption)))
    }

    async fn collect(remote: &CryptRemote, filter: Filter) -> Vec<Listed> {
        let (tx, mut rx) = mpsc::channel(4);
        let opts = ListOptions { filter: Arc::new(filter), follow_symlinks: false, versions: false, hints: Vec::new() };
        let (res, items) = tokio::join!(remote.list(opts, tx), async {
            let mut v = Vec::new();
            while let Some(i) = rx.recv().await {
                v.push(i);
            }
            v
        });
        res.unwrap();
        items
    }

    fn entries(items: &[Listed]) -> Vec<String> {
        items
            .iter()
            .filter_map(|i| match i {
                Listed::Entry(e) => Some(format!("{}{}", e.path, if e.is_dir() { "/" } else { "" })),
                _ => None,
            })
            .collect()
    }

    /// The plaintext tree stored through `c` as a whole listing in stored key order.
    fn stored_tree(c: &Cipher, plain: &[(&str, bool)], with_dirs: bool) -> Vec<Listed> {
        let mut out = Vec::new();
        for (p, is_dir) in plain {
            if *is_dir {
                if with_dirs {
                    out.push(Listed::Entry(Entry::dir(c.names().encrypt_dir_name(p).unwrap(), Mtime(5))));
                }
            } else {
                let stored = c.names().encrypt_file_name(p).unwrap();
                out.push(Listed::Entry(Entry::file(stored, encrypted_size(10), Mtime(7))));
            }
        }
        out.sort_by(|a, b| {
            let key = |l: &Listed| match l {
                Listed::Entry(e) => e.path.clone(),
                _ => String::new(),
            };
            key(a).cmp(&key(b))
        });
        out
    }

    const TREE: &[(&str, bool)] = &[
        ("a", true),
        ("a/x", false),
        ("a/z/deep", false),
        ("a/z", true),
        ("a-b", false),
        ("a.txt", false),
        ("a0", false),
        ("b c/ü", false),
        ("b c", true),
    ];

    #[tokio::test]
    async fn buffered_listing_comes_out_in_plaintext_key_order() {
        for filename_encryption in [true, false] {
            for with_dirs in [true, false] {
                let c = cipher(filename_encryption);
                let inner = TreeOnly(Mutex::new(stored_tree(&c, TREE, with_dirs)));
                let remote = CryptRemote::new(Arc::new(inner), c);
                let items = collect(&remote, Filter::new(&[], &[]).unwrap()).await;
                let got = entries(&items);
                let want: Vec<&str> = if with_dirs {
                    vec!["a/", "a-b", "a.txt", "a/x", "a/z/", "a/z/deep", "a0", "b c/", "b c/ü"]
                } else {
                    // Folders only implied by their contents are walked, not listed.
                    vec!["a-b", "a.txt", "a/x", "a/z/deep", "a0", "b c/ü"]
                };
                assert_eq!(got, want, "filename_encryption {filename_encryption}, folder entries {with_dirs}");
                let sizes: Vec<u64> = items
                    .iter()
                    .filter_map(|i| match i {
                        Listed::Entry(e) if e.is_file() => Some(e.size),
                        _ => None,
                    })
                    .collect();
                assert!(sizes.iter().all(|s| *s == 10), "plaintext sizes: {sizes:?}");
                let keys: Vec<&str> = got.iter().map(|p| p.trim_end_matches('/')).collect();
                assert!(keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()), "{keys:?}");
            }
        }
    }

    #[tokio::test]
    async fn filter_applies_to_plaintext_paths_and_prunes_folders() {
        let c = cipher(true);
        let inner = TreeOnly(Mutex::new(stored_tree(&c, TREE, true)));
        let remote = CryptRemote::new(Arc::new(inner), c);
        let filter = Filter::new(&[], &["/a/**".to_owned(), "*.txt".to_owned()]).unwrap();
        let got = entries(&collect(&remote, filter).await);
        assert_eq!(got, ["a-b", "a0", "b c/", "b c/ü"]);
    }

    #[tokio::test]
    async fn undecryptable_names_are_reported_not_dropped() {
        let c = cipher(true);
        let other = Cipher::new(Keys::from_parts([9; 32], [9; 32], [9; 16]), NameOptions::default());
        let mut items = stored_tree(&c, &[("ok", false)], true);
        // Not an encrypted name at all: skipped. Encrypted with other keys: an error.
        items.push(Listed::Entry(Entry::file("README.txt", 40, Mtime(1))));
        let foreign = other.names().encrypt_file_name("secret-of-someone-else").unwrap();
        items.push(Listed::Entry(Entry::file(foreign.clone(), 40, Mtime(1))));
        // A name that decrypts to "..": refused.
        let dotdot = c.names().encrypt_segment("..").unwrap();
        items.push(Listed::Entry(Entry::dir(dotdot.clone(), Mtime(1))));
        // A file cut to an impossible size.
        let cut = c.names().encrypt_file_name("cut").unwrap();
        items.push(Listed::Entry(Entry::file(cut, 32 + 10, Mtime(1))));
        let remote = CryptRemote::new(Arc::new(TreeOnly(Mutex::new(items))), c);
        let got = collect(&remote, Filter::new(&[], &[]).unwrap()).await;
        assert_eq!(entries(&got), ["ok"]);
        let skipped: Vec<&str> = got
            .iter()
            .filter_map(|i| match i {
                Listed::Skipped { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, ["README.txt"]);
        let errors: HashMap<&str, &str> = got
            .iter()
            .filter_map(|i| match i {
                Listed::Error { path, reason } => Some((path.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        assert!(errors[foreign.as_str()].contains("wrong password or corrupted data"), "{errors:?}");
        assert!(errors[dotdot.as_str()].contains("dot segment"), "{errors:?}");
        assert!(errors["cut"].contains("cut short"), "{errors:?}");
        assert_eq!(errors.len(), 3);
    }

    #[tokio::test]
    async fn decrypt_stream_yields_plaintext_and_names_the_file_on_errors() {
        let c = cipher(false);
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = Vec::new();
        let mut enc = c.encryptor(Nonce::from_bytes([4; 24]));
        enc.update(&plain, &mut sealed);
        enc.finish(&mut sealed);
        let read = |bytes: Vec<u8>| async move {
            let inner: ByteStream = Box::pin(std::io::Cursor::new(bytes));
            let mut s = DecryptStream::new(inner, cipher(false).content(), "dir/f");
            let mut out = Vec::new();
            let res = s.read_to_end(&mut out).await;
            (res, out)
        };
        let (res, out) = read(sealed.clone()).await;
        assert_eq!(res.unwrap(), plain.len());
        assert!(out == plain);

        let mut flipped = sealed.clone();
        flipped[HEADER_SIZE + BLOCK_SIZE + 100] ^= 1;
        let (res, out) = read(flipped).await;
        let e = res.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("dir/f") && e.to_string().contains("wrong password or corrupted data"), "{e}");
        assert_eq!(out.len(), 65_536, "the first block was authenticated before the bad one");

        for cut in [sealed.len() - 5, HEADER_SIZE + BLOCK_SIZE + 10, 20] {
            let (res, _) = read(sealed[..cut].to_vec()).await;
            let e = res.unwrap_err().to_string();
            assert!(e.contains("dir/f"), "{e}");
        }
        let (res, out) = read(sealed[..HEADER_SIZE].to_vec()).await;
        assert_eq!((res.unwrap(), out.len()), (0, 0), "a header alone is an empty file");
    }
}
