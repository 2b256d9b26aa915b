//! A bucket tree walked folder by folder (ListObjectsV2 with delimiter `/`), yielding every
//! object in the byte order of the whole key, as one flat listing would; may import std, tokio,
//! `s3sig` and the sibling modules.
//!
//! Each folder's sub-folders are listed in place: a common prefix `a/` sorts exactly where
//! the keys under it would, so expanding it where it stands keeps the whole-key order. Up to
//! [`LOOKAHEAD`] folders are listed ahead of the consumer, topped up in walk order each time the
//! walk enters one (the folders still to come of the deepest folder first), and a folder the caller does not
//! want (a filter excludes it) is never listed at all. Folders the caller expects (the ones a
//! previous walk entered first) are listed from the start, alongside the root; one its parent's
//! listing turns out not to hold is dropped, with the hints under it. One request per folder costs more
//! requests than a flat listing where folders are small (task attribute `fast_list` chooses
//! the flat one), but many servers answer a folder quickly and a deep flat page slowly.

use std::collections::{HashMap, HashSet, VecDeque};

use tokio::sync::mpsc;

use super::{ListObjectsV2Page, ListRequest, Object, S3Client, S3Error};

/// Folder listings started ahead of the walk.
const LOOKAHEAD: usize = 8;

/// Objects handed on at once.
const BATCH: usize = 1000;

/// What a walk yields, in key order.
#[derive(Debug)]
pub enum Walked {
    /// Objects, in key order after everything yielded before.
    Objects(Vec<Object>),
    /// A folder whose name is not UTF-8 (its raw prefix): it was not listed.
    NotUtf8Folder(Vec<u8>),
}

type Pages = mpsc::Receiver<Result<ListObjectsV2Page, S3Error>>;

/// One entry of a folder listing.
enum Item {
    Object(Object),
    Folder(String),
}

/// A folder being walked: its listing pages and what is left of the current one.
struct Frame {
    /// Its full prefix (ending in `/`, or the walk's root prefix).
    prefix: String,
    pages: Pages,
    items: VecDeque<Item>,
    done: bool,
    /// Folders among `items` to be entered whose listing has not started yet, in order.
    waiting: VecDeque<String>,
}

impl S3Client {
    /// Walks every key under `prefix` of `bucket` folder by folder; a folder (its full prefix,
    /// ending in `/`) is entered only when `enter` says so. `hints`: folders (full prefixes
    /// under `prefix`, in walk order) to list from the start, before their parents' listings
    /// name them. The channel yields objects in key order and ends after the last one or after
    /// the first error.
    #[must_use]
    pub fn walk_objects(
        &self,
        bucket: &str,
        prefix: &str,
        hints: Vec<String>,
        enter: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> mpsc::Receiver<Result<Walked, S3Error>> {
        let (tx, rx) = mpsc::channel(2);
        let walker =
            Walker { client: self.clone(), bucket: bucket.to_owned(), ahead: HashMap::new(), hinted: HashSet::new() };
        let prefix = prefix.to_owned();
        tokio::spawn(async move { walker.run(&prefix, hints, &enter, &tx).await });
        rx
    }
}

struct Walker {
    client: S3Client,
    bucket: String,
    /// Listings started ahead, by prefix.
    ahead: HashMap<String, Pages>,
    /// Listings in `ahead` started from a hint that no listing has named yet.
    hinted: HashSet<String>,
}

impl Walker {
    fn start(&self, prefix: &str) -> Pages {
        let req = ListRequest { prefix: prefix.to_owned(), delimiter: "/".to_owned(), ..ListRequest::default() };
        self.client.list_objects_v2(&self.bucket, req).prefetch()
    }

    /// Starts listing folder `prefix` ahead of the walk.
    fn start_ahead(&mut self, prefix: String) {
        let pages = self.start(&prefix);
        self.ahead.insert(prefix, pages);
    }

    fn frame(&mut self, prefix: &str) -> Frame {
        self.hinted.remove(prefix);
        let pages = self.ahead.remove(prefix).unwrap_or_else(|| self.start(prefix));
        Frame { prefix: prefix.to_owned(), pages, items: VecDeque::new(), done: false, waiting: VecDeque::new() }
    }

    /// Drops the hinted listings of folders directly in `parent` (whose listing has ended
    /// without naming them), and the hints under those.
    fn drop_stale_hints(&mut self, parent: &str) {
        let stale: Vec<String> = self.hinted.iter().filter(|h| parent_of(h) == parent).cloned().collect();
        for h in stale {
            let under: Vec<String> = self.hinted.iter().filter(|x| x.starts_with(&h)).cloned().collect();
            for x in under {
                self.hinted.remove(&x);
                self.ahead.remove(&x);
            }
        }
    }

    /// Starts waiting folders until [`LOOKAHEAD`] are listed ahead: the deepest folder's first,
    /// as the walk will enter them.
    fn top_up(&mut self, stack: &mut [Frame]) {
        for frame in stack.iter_mut().rev() {
            while self.ahead.len() < LOOKAHEAD {
                let Some(p) = frame.waiting.pop_front() else { break };
                self.start_ahead(p);
            }
        }
    }

    async fn run(
        mut self,
        prefix: &str,
        hints: Vec<String>,
        enter: &(impl Fn(&str) -> bool + Send + Sync),
        tx: &mpsc::Sender<Result<Walked, S3Error>>,
    ) {
        let mut stack = vec![self.frame(prefix)];
        for h in hints {
            if self.ahead.len() >= LOOKAHEAD {
                break;
            }
            // Listed only if the walk would enter it: it and every folder above it pass `enter`.
            let wanted = h.len() > prefix.len()
                && h.starts_with(prefix)
                && h.ends_with('/')
                && h[prefix.len()..].match_indices('/').all(|(i, _)| enter(&h[..=prefix.len() + i]));
            if wanted {
                self.hinted.insert(h.clone());
                self.start_ahead(h);
            }
        }
        let mut batch = Vec::new();
        while let Some(top) = stack.last_mut() {
            match top.items.pop_front() {
                Some(Item::Object(o)) => {
                    batch.push(o);
                    if batch.len() >= BATCH && tx.send(Ok(Walked::Objects(std::mem::take(&mut batch)))).await.is_err() {
                        return;
                    }
                }
                Some(Item::Folder(p)) => {
                    if enter(&p) {
                        if top.waiting.front() == Some(&p) {
                            top.waiting.pop_front();
                        }
                        let frame = self.frame(&p);
                        stack.push(frame);
                        self.top_up(&mut stack);
                    }
                }
                None if top.done => {
                    stack.pop();
                }
                None => {
                    // Hand on what is ready before waiting for the network.
                    if !batch.is_empty() && tx.send(Ok(Walked::Objects(std::mem::take(&mut batch)))).await.is_err() {
                        return;
                    }
                    let page = match top.pages.recv().await {
                        None => {
                            top.done = true;
                            let parent = top.prefix.clone();
                            self.drop_stale_hints(&parent);
                            self.top_up(&mut stack);
                            continue;
                        }
                        Some(Err(e)) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        Some(Ok(page)) => page,
                    };
                    for raw in page.common_prefixes_not_utf8 {
                        if tx.send(Ok(Walked::NotUtf8Folder(raw))).await.is_err() {
                            return;
                        }
                    }
                    let items = merge(page.contents, page.common_prefixes);
                    for item in &items {
                        if let Item::Folder(p) = item
                            && enter(p)
                        {
                            if self.ahead.contains_key(p) {
                                // Started from a hint: now known to exist.
                                self.hinted.remove(p);
                            } else if self.ahead.len() < LOOKAHEAD {
                                self.start_ahead(p.clone());
                            } else {
                                top.waiting.push_back(p.clone());
                            }
                        }
                    }
                    top.items.extend(items);
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(Walked::Objects(batch))).await;
        }
    }
}

/// The full prefix of the folder holding folder `prefix` (which ends in `/`).
fn parent_of(prefix: &str) -> &str {
    let inner = prefix.strip_suffix('/').unwrap_or(prefix);
    inner.rfind('/').map_or("", |i| &prefix[..=i])
}

/// One page's objects and folders in byte order of their keys (each list is sorted already).
fn merge(objects: Vec<Object>, folders: Vec<String>) -> VecDeque<Item> {
    let mut out = VecDeque::with_capacity(objects.len() + folders.len());
    let mut folders = folders.into_iter().peekable();
    for o in objects {
        while let Some(f) = folders.next_if(|f| f.as_bytes() < o.key.as_bytes()) {
            out.push_back(Item::Folder(f));
        }
        out.push_back(Item::Object(o));
    }
    out.extend(folders.map(Item::Folder));
    out
}

#[cfg(test)]
mod tests {
    use super::{Item, Object, merge};

    fn obj(key: &str) -> Object {
        Object {
            key: key.to_owned(),
            key_bytes: None,
            last_modified: 0,
            etag: String::new(),
            size: 0,
            storage_class: None,
        }
    }

    #[test]
    fn folders_sit_where_their_keys_sort() {
        // "a.txt" < "a/" < "a0" < "b" < "c/" by bytes ('.' 0x2e, '/' 0x2f, '0' 0x30).
        let items = merge(vec![obj("a.txt"), obj("a0"), obj("b")], vec!["a/".into(), "c/".into()]);
        let names: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Item::Object(o) => o.key,
                Item::Folder(f) => format!("[{f}]"),
            })
            .collect();
        assert_eq!(names, ["a.txt", "[a/]", "a0", "b", "[c/]"]);
    }
}
