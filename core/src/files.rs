//! Files people upload and replies attach, kept per owner (the session, or the signed-in
//! user's home) in any object store: a directory under the data directory, an
//! S3-compatible bucket, or memory for tests. The server picks the backend; everything that
//! decides (names, types, limits, who may read what) is here, so every backend behaves alike.
//!
//! Layout: `f/<owner>/<file id>` holds the bytes and `f/<owner>/<file id>.json` what is known
//! of them (`Meta`). Both names are made here from ids the server drew: nothing the client
//! sends ever becomes part of a path, and a file is found only under the owner asking, so a
//! foreign or guessed id reads exactly like a missing one.

use crate::{
    ApiError, ErrorCode, SessionId,
    model::{
        Attachment, FileId, MAX_FILE_NAME_CHARS, MessageId, ThreadId, human_size, is_image_type,
    },
    store::{SessionStore, now_ms},
};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path};
use serde::{Deserialize, Serialize};
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Bytes read before the type is decided: enough for every signature `infer` knows and to
/// tell text from binary.
const SNIFF_BYTES: usize = 8 * 1024;
/// Part size for multipart writes (S3's minimum is 5 MiB).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Uploads of one owner running at once; more wait for nothing and answer 409.
const UPLOADS_AT_ONCE: u32 = 4;

/// What the file store allows.
#[derive(Debug, Clone)]
pub struct FileLimits {
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Most files one message carries.
    pub max_files_per_message: usize,
    /// Most bytes one owner keeps in all.
    pub max_owner_bytes: u64,
    /// Media types accepted (as read from the bytes); `type/*` allows a whole family.
    pub allowed_types: Vec<String>,
    /// How long an upload no message took up is kept before the sweep removes it.
    pub pending_ttl: Duration,
    /// Most pixels an image may have (width × height), checked from its header before
    /// anything is decoded.
    pub max_image_pixels: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 20 * 1000 * 1000,
            max_files_per_message: 10,
            max_owner_bytes: 200 * 1000 * 1000,
            allowed_types: DEFAULT_TYPES.iter().map(|s| (*s).to_owned()).collect(),
            pending_ttl: Duration::from_secs(60 * 60),
            max_image_pixels: 50_000_000,
        }
    }
}

/// What is accepted unless configured otherwise: pictures, PDF, text and code.
pub const DEFAULT_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
];

/// Types that a browser would run or render as a page: never accepted, whatever the
/// configuration says (the sniffer never names them, but a list may).
const NEVER: &[&str] = &[
    "text/html",
    "image/svg+xml",
    "application/xhtml+xml",
    "text/xml",
    "application/xml",
    "application/javascript",
    "text/javascript",
];

/// What the store keeps beside a file's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    name: String,
    size: u64,
    mime: String,
    created_ms: i64,
    /// The thread whose message took the file up; `None` while the upload waits for one.
    #[serde(default)]
    thread: Option<ThreadId>,
    /// That message. A crash between taking the file up and storing the message leaves a
    /// file no message carries: the sweep looks for the message once, after `pending_ttl`.
    #[serde(default)]
    message: Option<MessageId>,
    /// The sweep found the message.
    #[serde(default)]
    checked: bool,
}

impl Meta {
    fn attachment(&self, id: FileId) -> Attachment {
        Attachment {
            id,
            name: self.name.clone(),
            size: self.size,
            mime: self.mime.clone(),
        }
    }
}

/// Uploads in flight of one owner: the bytes they may still add, and how many commits
/// happened, so a usage count that raced with one is taken again.
#[derive(Default)]
struct Usage {
    reserved: u64,
    uploads: u32,
    commits: u64,
}

/// The files of every owner, in one object store.
pub struct FileStore {
    objects: Arc<dyn ObjectStore>,
    limits: FileLimits,
    usage: Mutex<std::collections::HashMap<SessionId, Usage>>,
    /// Picture checks decode whole images: at most one per core at a time, so a burst of
    /// uploads cannot take every core and gigabytes at once.
    decoding: tokio::sync::Semaphore,
    /// The directory of a directory backend, whose staging files (`<id>#<n>`, which its
    /// listings never show) a killed process may have left.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileStore({})", self.objects)
    }
}

fn owner_dir(owner: &SessionId) -> Path {
    Path::from_iter(["f", owner.as_string().as_str()])
}

fn blob_path(owner: &SessionId, id: &FileId) -> Path {
    Path::from_iter(["f", owner.as_string().as_str(), id.as_string().as_str()])
}

fn meta_path(owner: &SessionId, id: &FileId) -> Path {
    Path::from_iter([
        "f",
        owner.as_string().as_str(),
        format!("{id}.json").as_str(),
    ])
}

fn unavailable(e: object_store::Error) -> ApiError {
    tracing::warn!(error = %e, "the file store failed");
    ApiError::new(
        ErrorCode::StoreUnavailable,
        "the file store is unavailable; try again shortly",
    )
}

/// A display name from whatever the browser called the file: its last path segment, without
/// control, formatting (bidi overrides, zero-width) or private-use characters, trimmed, at
/// most `MAX_FILE_NAME_CHARS` characters, never empty. It is shown and offered as a download
/// name only; it never names anything on disk.
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let kept: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(*c as u32,
                    0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF
                    | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFFF9..=0xFFFB)
        })
        .collect();
    let trimmed = kept.trim().trim_start_matches('.').trim();
    let mut name: String = trimmed.chars().take(MAX_FILE_NAME_CHARS).collect();
    if name.is_empty() {
        name = "file".into();
    }
    name
}

/// The media type of a file, from its first bytes (`head`) and, for text only, its name's
/// extension (which can only choose among text types). Unknown binary data is
/// `application/octet-stream`.
pub fn sniff(head: &[u8], name: &str) -> String {
    // Markup is text to us: shown and downloaded as text, never as a page.
    if let Some(kind) = infer::get(head)
        && !NEVER.contains(&kind.mime_type())
    {
        return kind.mime_type().to_owned();
    }
    if !head.is_empty() && looks_like_text(head) {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        return match ext.as_str() {
            "md" | "markdown" => "text/markdown",
            "csv" => "text/csv",
            "json" => "application/json",
            _ => "text/plain",
        }
        .to_owned();
    }
    "application/octet-stream".to_owned()
}

/// UTF-8 without NUL bytes; the last character may be cut by the end of `head`.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

impl FileStore {
    /// Files kept in `objects` within `limits`.
    pub fn new(objects: Arc<dyn ObjectStore>, limits: FileLimits) -> Self {
        let cores = crate::cores();
        Self {
            objects,
            limits,
            usage: Mutex::new(Default::default()),
            decoding: tokio::sync::Semaphore::new(cores),
            local_root: None,
        }
    }

    /// The same store, told that its objects are files under `root` (a directory backend):
    /// the sweep then also removes the staging files a killed upload left there.
    pub fn with_local_root(mut self, root: std::path::PathBuf) -> Self {
        self.local_root = Some(root);
        self
    }

    /// Files kept in memory, lost on restart: for tests and the memory store.
    pub fn in_memory(limits: FileLimits) -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), limits)
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &FileLimits {
        &self.limits
    }

    fn allowed(&self, mime: &str) -> bool {
        if NEVER.contains(&mime) {
            return false;
        }
        self.limits.allowed_types.iter().any(|t| {
            t == mime
                || t.strip_suffix("/*")
                    .is_some_and(|family| mime.split('/').next() == Some(family))
        })
    }

    fn usage<T>(&self, f: impl FnOnce(&mut std::collections::HashMap<SessionId, Usage>) -> T) -> T {
        let mut map = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    /// Bytes `owner` keeps now, and how many commits its count has seen.
    async fn stored_bytes(&self, owner: &SessionId) -> Result<u64, ApiError> {
        let dir = owner_dir(owner);
        let mut total = 0u64;
        let mut list = self.objects.list(Some(&dir));
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(unavailable)?;
            total += meta.size;
        }
        Ok(total)
    }

    /// Makes room for an upload of up to `want` bytes, or says which limit it would pass.
    async fn reserve(&self, owner: &SessionId, want: u64) -> Result<Reservation<'_>, ApiError> {
        // The upload counts itself in before it counts the stored bytes: its entry, and
        // with it the commit counter, then lives until it is done, so a commit that lands
        // while the listing runs is always seen (an entry dropped and made again would
        // read as "no commits" and let two uploads pass the limit together).
        self.usage(|m| {
            let u = m.entry(*owner).or_default();
            if u.uploads >= UPLOADS_AT_ONCE {
                return Err(ApiError::new(
                    ErrorCode::LimitReached,
                    format!("at most {UPLOADS_AT_ONCE} uploads may run at once"),
                ));
            }
            u.uploads += 1;
            Ok(())
        })?;
        // From here on, dropping it gives the slot back, whatever happens.
        let mut reservation = Reservation {
            files: self,
            owner: *owner,
            want: 0,
            committed: false,
        };
        loop {
            let seen = self.usage(|m| m.get(owner).map_or(0, |u| u.commits));
            let stored = self.stored_bytes(owner).await?;
            let verdict = self.usage(|m| {
                let u = m.entry(*owner).or_default();
                if u.commits != seen {
                    // An upload finished while we counted: count again.
                    return None;
                }
                let max = self.limits.max_owner_bytes;
                if stored + u.reserved + want > max {
                    return Some(Err(ApiError::new(
                        ErrorCode::LimitReached,
                        format!(
                            "this would go over the {} of files a session may keep ({} kept)",
                            human_size(max),
                            human_size(stored + u.reserved)
                        ),
                    )));
                }
                u.reserved += want;
                Some(Ok(()))
            });
            match verdict {
                None => continue,
                Some(Err(e)) => return Err(e),
                Some(Ok(())) => {
                    reservation.want = want;
                    return Ok(reservation);
                }
            }
        }
    }

    /// Stores an upload of `owner` as it streams in: `name` is what the browser called it,
    /// `declared` the length it announced, if any. The type is read from the bytes; an image
    /// is checked before it is kept. Over a limit, of a type not allowed, empty, or broken
    /// off, nothing is kept.
    pub async fn upload<S, E>(
        &self,
        owner: &SessionId,
        name: &str,
        declared: Option<u64>,
        body: S,
    ) -> Result<Attachment, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let max = self.limits.max_file_bytes;
        let too_large = || {
            ApiError::new(
                ErrorCode::TooLarge,
                format!("the file is over the limit of {}", human_size(max)),
            )
        };
        if declared.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let name = clean_name(name);
        let mut reservation = self
            .reserve(owner, declared.unwrap_or(max).min(max))
            .await?;
        let id = FileId::random();
        let path = blob_path(owner, &id);
        let mut writer = Writer {
            objects: &self.objects,
            path: path.clone(),
            upload: None,
        };
        let mut body = body;
        let mut head: Vec<u8> = Vec::new();
        let mut mime: Option<String> = None;
        let mut size = 0u64;
        loop {
            let chunk = match body.next().await {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    writer.abort().await;
                    return Err(ApiError::invalid_input(format!(
                        "the upload broke off: {e}"
                    )));
                }
                None => None,
            };
            if let Some(c) = &chunk {
                size += c.len() as u64;
                if size > max {
                    writer.abort().await;
                    return Err(too_large());
                }
            }
            if mime.is_none() {
                if let Some(c) = &chunk {
                    head.extend_from_slice(c);
                    if head.len() < SNIFF_BYTES {
                        continue;
                    }
                }
                if head.is_empty() {
                    return Err(ApiError::invalid_input("the file is empty"));
                }
                let sniffed = sniff(&head[..head.len().min(SNIFF_BYTES)], &name);
                if !self.allowed(&sniffed) {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaType,
                        format!("files of type {sniffed} are not accepted here"),
                    ));
                }
                mime = Some(sniffed);
                writer.write(Bytes::from(std::mem::take(&mut head))).await?;
                if chunk.is_none() {
                    break;
                }
                continue;
            }
            match chunk {
                Some(c) => writer.write(c).await?,
                None => break,
            }
        }
        let mime = mime.unwrap_or_default();
        writer.finish().await?;
        if is_image_type(&mime)
            && let Err(e) = self.check_image(&path).await
        {
            let _ = self.objects.delete(&path).await;
            return Err(e);
        }
        let meta = Meta {
            name,
            size,
            mime,
            created_ms: now_ms(),
            thread: None,
            message: None,
            checked: false,
        };
        if let Err(e) = self.put_meta(owner, &id, &meta).await {
            let _ = self.objects.delete(&path).await;
            return Err(e);
        }
        reservation.commit();
        Ok(meta.attachment(id))
    }

    /// Refuses a picture too large to decode safely (by its header) or one that does not
    /// decode at all.
    async fn check_image(&self, path: &Path) -> Result<(), ApiError> {
        let _turn = self
            .decoding
            .acquire()
            .await
            .map_err(|_| ApiError::internal())?;
        let bytes = self
            .objects
            .get(path)
            .await
            .map_err(unavailable)?
            .bytes()
            .await
            .map_err(unavailable)?;
        let max_pixels = self.limits.max_image_pixels;
        tokio::task::spawn_blocking(move || check_image_bytes(&bytes, max_pixels))
            .await
            .map_err(|_| ApiError::invalid_input("the image cannot be read"))?
    }

    async fn put_meta(&self, owner: &SessionId, id: &FileId, meta: &Meta) -> Result<(), ApiError> {
        let json = serde_json::to_vec(meta).map_err(|_| ApiError::internal())?;
        self.objects
            .put(&meta_path(owner, id), PutPayload::from(json))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn meta(&self, owner: &SessionId, id: &FileId) -> Result<Option<Meta>, ApiError> {
        match self.objects.get(&meta_path(owner, id)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(unavailable)?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// What is known of `owner`'s file `id`: not found when it is not theirs.
    pub async fn get(&self, owner: &SessionId, id: &FileId) -> Result<Attachment, ApiError> {
        self.meta(owner, id)
            .await?
            .map(|m| m.attachment(*id))
            .ok_or_else(ApiError::not_found)
    }

    /// `owner`'s upload `id` that no message has taken up yet: not found when it is not
    /// theirs, refused when a message carries it already.
    pub async fn get_pending(
        &self,
        owner: &SessionId,
        id: &FileId,
    ) -> Result<Attachment, ApiError> {
        Ok(self.pending_meta(owner, id).await?.attachment(*id))
    }

    async fn pending_meta(&self, owner: &SessionId, id: &FileId) -> Result<Meta, ApiError> {
        let meta = self
            .meta(owner, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if meta.thread.is_some() {
            return Err(ApiError::invalid_input(format!(
                "{} is already part of a message",
                meta.name
            )));
        }
        Ok(meta)
    }

    /// `owner`'s file `id` and its bytes as a stream: not found when it is not theirs.
    pub async fn open(
        &self,
        owner: &SessionId,
        id: &FileId,
    ) -> Result<
        (
            Attachment,
            BoxStream<'static, Result<Bytes, std::io::Error>>,
        ),
        ApiError,
    > {
        let a = self.get(owner, id).await?;
        match self.objects.get(&blob_path(owner, id)).await {
            Ok(r) => Ok((a, r.into_stream().map_err(std::io::Error::other).boxed())),
            Err(object_store::Error::NotFound { .. }) => Err(ApiError::not_found()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The whole of `owner`'s file `id`, if it is at most `max` bytes (what a model reads).
    pub async fn read(
        &self,
        owner: &SessionId,
        id: &FileId,
        max: u64,
    ) -> Result<(Attachment, Bytes), ApiError> {
        let a = self.get(owner, id).await?;
        if a.size > max {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("{} is over {} to read", a.name, human_size(max)),
            ));
        }
        let bytes = self
            .objects
            .get(&blob_path(owner, id))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => ApiError::not_found(),
                e => unavailable(e),
            })?
            .bytes()
            .await
            .map_err(unavailable)?;
        Ok((a, bytes))
    }

    /// Gives `owner`'s uploads `ids` to `message` of `thread`: each must be theirs and not
    /// yet taken by another message. Returns them in the order asked.
    pub async fn take_up(
        &self,
        owner: &SessionId,
        ids: &[FileId],
        thread: &ThreadId,
        message: &MessageId,
    ) -> Result<Vec<Attachment>, ApiError> {
        let max = self.limits.max_files_per_message;
        let unique: HashSet<_> = ids.iter().collect();
        if unique.len() != ids.len() {
            return Err(ApiError::invalid_input("a file is attached twice"));
        }
        if ids.len() > max {
            return Err(ApiError::new(
                ErrorCode::LimitReached,
                format!("a message carries at most {max} files"),
            ));
        }
        let mut metas = Vec::with_capacity(ids.len());
        for id in ids {
            metas.push(self.pending_meta(owner, id).await?);
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, mut meta) in ids.iter().zip(metas) {
            meta.thread = Some(*thread);
            meta.message = Some(*message);
            self.put_meta(owner, id, &meta).await?;
            out.push(meta.attachment(*id));
        }
        Ok(out)
    }

    /// Gives `owner`'s files `ids` back to waiting for a message: the message that took them
    /// up was not stored after all.
    pub async fn release(&self, owner: &SessionId, ids: &[FileId]) {
        for id in ids {
            if let Ok(Some(mut meta)) = self.meta(owner, id).await {
                meta.thread = None;
                meta.message = None;
                let _ = self.put_meta(owner, id, &meta).await;
            }
        }
    }

    /// Removes `owner`'s upload `id` that no message took up (the person took it off before
    /// sending).
    pub async fn discard(&self, owner: &SessionId, id: &FileId) -> Result<(), ApiError> {
        let meta = self
            .meta(owner, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if meta.thread.is_some() {
            return Err(ApiError::invalid_input(
                "the file is part of a message; delete the chat to remove it",
            ));
        }
        self.remove(owner, id).await
    }

    /// Keeps `bytes` as a file of `message` in `thread` of `owner` right away (what a reply
    /// attaches): the same type and size rules as an upload.
    pub async fn attach(
        &self,
        owner: &SessionId,
        thread: &ThreadId,
        message: &MessageId,
        name: &str,
        bytes: Bytes,
    ) -> Result<Attachment, ApiError> {
        let len = bytes.len() as u64;
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        let a = self.upload(owner, name, Some(len), body).await?;
        self.take_up(owner, &[a.id], thread, message).await?;
        Ok(a)
    }

    /// `owner`'s files, uploads not yet sent included (for "export my data").
    pub async fn list(&self, owner: &SessionId) -> Result<Vec<Attachment>, ApiError> {
        Ok(self
            .metas(owner)
            .await?
            .into_iter()
            .map(|(id, meta, _)| meta.attachment(id))
            .collect())
    }

    /// How many files anything is kept of under `owner` (bytes or meta): what the sweep
    /// and the tests look at.
    pub async fn count_kept(&self, owner: &SessionId) -> Result<usize, ApiError> {
        let ids: HashSet<FileId> = self
            .entries(owner)
            .await?
            .into_iter()
            .map(|e| e.0)
            .collect();
        Ok(ids.len())
    }

    /// Every file id of `owner` with its meta.
    async fn metas(&self, owner: &SessionId) -> Result<Vec<(FileId, Meta, i64)>, ApiError> {
        let mut out = Vec::new();
        for (id, is_meta, modified) in self.entries(owner).await? {
            if is_meta && let Some(meta) = self.meta(owner, &id).await? {
                out.push((id, meta, modified));
            }
        }
        Ok(out)
    }

    /// What lies under `owner`: each file id, whether the entry is its meta, and when it
    /// was last written.
    async fn entries(&self, owner: &SessionId) -> Result<Vec<(FileId, bool, i64)>, ApiError> {
        let mut list = self.objects.list(Some(&owner_dir(owner)));
        let mut out = Vec::new();
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(unavailable)?;
            let Some(file) = meta.location.filename() else {
                continue;
            };
            let (stem, is_meta) = match file.strip_suffix(".json") {
                Some(s) => (s, true),
                None => (file, false),
            };
            if let Some(id) = FileId::parse(stem) {
                out.push((id, is_meta, meta.last_modified.timestamp_millis()));
            }
        }
        Ok(out)
    }

    async fn remove(&self, owner: &SessionId, id: &FileId) -> Result<(), ApiError> {
        for path in [meta_path(owner, id), blob_path(owner, id)] {
            match self.objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    /// Removes `owner`'s files that belong to `thread` (the thread was deleted).
    pub async fn delete_thread(
        &self,
        owner: &SessionId,
        thread: &ThreadId,
    ) -> Result<(), ApiError> {
        for (id, meta, _) in self.metas(owner).await? {
            if meta.thread.as_ref() == Some(thread) {
                self.remove(owner, &id).await?;
            }
        }
        Ok(())
    }

    /// Removes `owner`'s files that are not among `keep` and belong to `thread` (messages
    /// were dropped by an edit or a regeneration).
    pub async fn retain_in_thread(
        &self,
        owner: &SessionId,
        thread: &ThreadId,
        keep: &HashSet<FileId>,
    ) -> Result<(), ApiError> {
        for (id, meta, _) in self.metas(owner).await? {
            if meta.thread.as_ref() == Some(thread) && !keep.contains(&id) {
                self.remove(owner, &id).await?;
            }
        }
        Ok(())
    }

    /// Removes every file of `owner` (the session ended, or was forgotten).
    pub async fn delete_owner(&self, owner: &SessionId) -> Result<(), ApiError> {
        for (id, _, _) in self.entries(owner).await? {
            self.remove(owner, &id).await?;
        }
        Ok(())
    }

    /// Moves the files of `from` that a message took up to `to` (a sign-in that keeps the
    /// anonymous session's chats); uploads still waiting for a message stay and go with it.
    pub async fn adopt(&self, from: &SessionId, to: &SessionId) -> Result<(), ApiError> {
        for (id, meta, _) in self.metas(from).await? {
            if meta.thread.is_none() {
                continue;
            }
            self.objects
                .copy(&blob_path(from, &id), &blob_path(to, &id))
                .await
                .map_err(unavailable)?;
            self.put_meta(to, &id, &meta).await?;
            self.remove(from, &id).await?;
        }
        Ok(())
    }

    /// Removes what nobody can reach any more: the files of sessions that have ended,
    /// uploads no message took up within `pending_ttl`, and bytes whose meta was never
    /// written (a crash between the two). Returns how many files went.
    pub async fn sweep(&self, store: &dyn SessionStore) -> Result<usize, ApiError> {
        self.sweep_at(store, now_ms()).await
    }

    /// `sweep` as if it were `now` (milliseconds since the epoch): for tests of what ages.
    pub async fn sweep_at(&self, store: &dyn SessionStore, now: i64) -> Result<usize, ApiError> {
        let owners = self
            .objects
            .list_with_delimiter(Some(&Path::from("f")))
            .await
            .map_err(unavailable)?;
        let cutoff = now - self.limits.pending_ttl.as_millis() as i64;
        let mut removed = 0;
        if let Some(root) = self.local_root.clone() {
            let age = self.limits.pending_ttl;
            removed += tokio::task::spawn_blocking(move || sweep_staging(&root, age))
                .await
                .unwrap_or(0);
        }
        // Owners a few at a time: a pass over thousands is mostly waiting on the store and
        // the object store. One that fails (the store away for a moment) is left to the next
        // sweep; the others go on.
        let owner_ids: Vec<SessionId> = owners
            .common_prefixes
            .iter()
            .filter_map(|dir| dir.filename().and_then(|s| SessionId::parse_stored(s).ok()))
            .collect();
        let mut sweeps = Vec::with_capacity(owner_ids.len());
        for owner in owner_ids {
            sweeps.push(self.sweep_owner(store, owner, cutoff));
        }
        let mut done = futures::stream::iter(sweeps).buffer_unordered(8);
        while let Some(r) = done.next().await {
            match r {
                Ok(n) => removed += n,
                Err(e) => tracing::debug!(error = %e.message, "sweeping one owner's files failed"),
            }
        }
        Ok(removed)
    }

    /// `sweep` for one owner's files; how many went.
    async fn sweep_owner(
        &self,
        store: &dyn SessionStore,
        owner: SessionId,
        cutoff: i64,
    ) -> Result<usize, ApiError> {
        let mut removed = 0;
        if self.usage(|m| m.contains_key(&owner)) {
            // Uploads are running: leave the owner to the next sweep.
            return Ok(0);
        }
        let live = match owner.is_home() {
            true => true,
            false => store
                .peek(&owner)
                .await
                .map_err(|_| ApiError::store_unavailable())?
                .is_some(),
        };
        let entries = self.entries(&owner).await?;
        if !live {
            let ids: HashSet<_> = entries.iter().map(|e| e.0).collect();
            self.delete_owner(&owner).await?;
            return Ok(ids.len());
        }
        let with_meta: HashSet<FileId> = entries.iter().filter(|e| e.1).map(|e| e.0).collect();
        for (id, is_meta, modified) in &entries {
            if modified >= &cutoff {
                continue;
            }
            if !*is_meta {
                // Bytes whose description was never written: a crash in between.
                if !with_meta.contains(id) {
                    self.remove(&owner, id).await?;
                    removed += 1;
                }
                continue;
            }
            let Some(mut meta) = self.meta(&owner, id).await? else {
                continue;
            };
            let stale = match (meta.thread, meta.message, meta.checked) {
                // An upload no message took up in time.
                (None, _, _) => true,
                (Some(_), Some(message), false) => {
                    let found = store
                        .get_message(&owner, &message)
                        .await
                        .map_err(|_| ApiError::store_unavailable())?;
                    if found.is_some() {
                        meta.checked = true;
                        self.put_meta(&owner, id, &meta).await?;
                    }
                    found.is_none()
                }
                _ => false,
            };
            if stale {
                self.remove(&owner, id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The files a reply sees: the session's, within its thread. It reads what the turns carry
/// and attaches new files to the reply, which shows them under its text.
#[derive(Clone)]
pub struct ReplyFiles {
    store: Arc<FileStore>,
    owner: SessionId,
    thread: ThreadId,
    message: MessageId,
    attached: Arc<Mutex<Vec<Attachment>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for ReplyFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyFiles")
            .field("attached", &self.attached().len())
            .finish()
    }
}

impl ReplyFiles {
    /// Files of `owner` in a store of their own (a context made for a test).
    pub(crate) fn detached(
        owner: SessionId,
        thread: ThreadId,
        changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            store: Arc::new(FileStore::in_memory(FileLimits::default())),
            owner,
            thread,
            message: MessageId::random(),
            attached: Default::default(),
            changed,
        }
    }

    /// The files of `owner`'s `thread` in the runtime's `store`, for the reply `message`.
    pub(crate) fn in_store(
        store: Arc<FileStore>,
        owner: SessionId,
        thread: ThreadId,
        message: MessageId,
        changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            store,
            owner,
            thread,
            message,
            attached: Default::default(),
            changed,
        }
    }

    /// The bytes of a file a turn carries (at most the store's file limit).
    pub async fn read(&self, file: &Attachment) -> Result<Bytes, ApiError> {
        let max = self.store.limits.max_file_bytes;
        Ok(self.store.read(&self.owner, &file.id, max).await?.1)
    }

    /// The text of a file a turn carries, at most `max_chars` characters (cut ones end
    /// with "[… cut]"): a text file as it is, a PDF's extracted text. `None` for pictures and
    /// anything else without text, or a PDF whose text cannot be read.
    pub async fn text(
        &self,
        file: &Attachment,
        max_chars: usize,
    ) -> Result<Option<String>, ApiError> {
        let textual = file.mime.starts_with("text/") || file.mime == "application/json";
        let pdf = file.mime == "application/pdf";
        if !(textual || pdf) {
            return Ok(None);
        }
        let bytes = self.read(file).await?;
        let text = if pdf {
            match pdf_text(bytes).await {
                Some(t) => t,
                None => return Ok(None),
            }
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let mut cut: String = text.chars().take(max_chars).collect();
        if cut.len() < text.len() {
            cut.push_str("\n[… cut]");
        }
        Ok(Some(cut))
    }

    /// Keeps `bytes` as a file named `name` and shows it under the reply. The type is read
    /// from the bytes and must be one the store accepts, within its size limits.
    pub async fn attach(
        &self,
        name: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<Attachment, ApiError> {
        let max = self.store.limits.max_files_per_message;
        if self.attached().len() >= max {
            return Err(ApiError::new(
                ErrorCode::LimitReached,
                format!("a message carries at most {max} files"),
            ));
        }
        let a = self
            .store
            .attach(&self.owner, &self.thread, &self.message, name, bytes.into())
            .await?;
        if let Ok(mut list) = self.attached.lock() {
            list.push(a.clone());
        }
        self.changed.notify_one();
        Ok(a)
    }

    /// What the reply attached so far, in order.
    pub fn attached(&self) -> Vec<Attachment> {
        self.attached.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The room an upload holds in its owner's limits until it is kept or given up.
struct Reservation<'a> {
    files: &'a FileStore,
    owner: SessionId,
    want: u64,
    committed: bool,
}

impl Reservation<'_> {
    /// The file is stored and counts by itself now.
    fn commit(&mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let (owner, want, committed) = (self.owner, self.want, self.committed);
        self.files.usage(|m| {
            if let Some(u) = m.get_mut(&owner) {
                u.reserved = u.reserved.saturating_sub(want);
                u.uploads = u.uploads.saturating_sub(1);
                if committed {
                    u.commits += 1;
                }
                if u.uploads == 0 {
                    m.remove(&owner);
                }
            }
        });
    }
}

/// A multipart write that is aborted if it is dropped unfinished (the client went away):
/// the backend keeps no half-written file.
struct Writer<'a> {
    objects: &'a Arc<dyn ObjectStore>,
    path: Path,
    upload: Option<WriteMultipart>,
}

impl Writer<'_> {
    async fn write(&mut self, bytes: Bytes) -> Result<(), ApiError> {
        if self.upload.is_none() {
            let up = self
                .objects
                .put_multipart(&self.path)
                .await
                .map_err(unavailable)?;
            self.upload = Some(WriteMultipart::new_with_chunk_size(up, PART_BYTES));
        }
        if let Some(up) = self.upload.as_mut() {
            up.wait_for_capacity(2).await.map_err(unavailable)?;
            up.put(bytes);
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ApiError> {
        if let Some(up) = self.upload.take() {
            up.finish().await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some(up) = self.upload.take() {
            let _ = up.abort().await;
        }
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if let Some(up) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = up.abort().await;
            });
        }
    }
}

/// Removes the staging files (`<id>#<n>`) older than `age` under `root/f/<owner>/`: what a
/// directory backend's upload leaves when its process is killed mid-write (a dropped write
/// removes its own). Returns how many went.
fn sweep_staging(root: &std::path::Path, age: Duration) -> usize {
    let Ok(owners) = std::fs::read_dir(root.join("f")) else {
        return 0;
    };
    let mut removed = 0;
    for owner in owners.flatten() {
        let Ok(entries) = std::fs::read_dir(owner.path()) else {
            continue;
        };
        for e in entries.flatten() {
            let staging = e.file_name().to_string_lossy().contains('#');
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|a| a >= age);
            if staging && old && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// How long reading a PDF's text may take before the reply goes on without it.
const PDF_TEXT_TIMEOUT: Duration = Duration::from_secs(15);

/// The text of a PDF, read on a blocking thread: a parser panic or a PDF that takes too long
/// gives `None`, never a failed reply.
async fn pdf_text(bytes: Bytes) -> Option<String> {
    let work = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(&bytes).ok())
            .ok()
            .flatten()
    });
    match tokio::time::timeout(PDF_TEXT_TIMEOUT, work).await {
        Ok(Ok(text)) => text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
        _ => None,
    }
}

/// Checks a picture: its header's size first (a small file can claim a huge canvas), then
/// a full decode within a memory bound, so a decompression bomb or a broken file is refused.
pub fn check_image_bytes(bytes: &[u8], max_pixels: u64) -> Result<(), ApiError> {
    use image::ImageReader;
    let unreadable = || ApiError::invalid_input("the image cannot be read");
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| unreadable())?;
    let (w, h) = reader.into_dimensions().map_err(|_| unreadable())?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels || w > 20_000 || h > 20_000 {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("the image is {w}×{h} pixels; the limit is {max_pixels} pixels"),
        ));
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| unreadable())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(max_pixels.saturating_mul(8).min(1 << 31));
    reader.limits(limits);
    reader.decode().map(drop).map_err(|_| unreadable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_controls_and_hidden_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("a\u{202E}fdp.exe"), "afdp.exe");
        assert_eq!(clean_name("\u{E000}\u{200B}x\u{0}y.txt"), "xy.txt");
        assert_eq!(clean_name("..."), "file");
        assert_eq!(clean_name(".env"), "env");
        assert_eq!(clean_name(""), "file");
        assert_eq!(
            clean_name(&"é".repeat(500)).chars().count(),
            MAX_FILE_NAME_CHARS
        );
    }

    #[test]
    fn the_type_comes_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png, "notes.txt"), "image/png");
        assert_eq!(sniff(b"# Title\n", "a.md"), "text/markdown");
        assert_eq!(sniff(b"<html><script>", "page.html"), "text/plain");
        assert_eq!(sniff(b"<svg onload=alert(1)>", "x.svg"), "text/plain");
        assert_eq!(
            sniff(b"MZ\x90\0\x03\0\0\0", "cat.png"),
            "application/vnd.microsoft.portable-executable"
        );
        assert_eq!(sniff(b"\0\x01\x02", "a.txt"), "application/octet-stream");
        // A multi-byte character cut by the end of what was read is still text.
        assert_eq!(
            sniff("naïve é".as_bytes().split_at(8).0, "a.txt"),
            "text/plain"
        );
    }

    #[test]
    fn types_that_run_in_a_browser_are_never_allowed() {
        let files = FileStore::in_memory(FileLimits {
            allowed_types: vec!["text/*".into(), "image/*".into()],
            ..FileLimits::default()
        });
        assert!(files.allowed("text/plain"));
        assert!(files.allowed("image/png"));
        assert!(!files.allowed("text/html"));
        assert!(!files.allowed("image/svg+xml"));
        assert!(!files.allowed("application/pdf"));
    }

    #[test]
    fn a_huge_canvas_is_refused_before_decoding() {
        // A well-formed PNG (every CRC right) that claims 100000 × 100000 pixels: 69 bytes
        // that would need 40 GB to decode.
        let png = [
            0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48,
            0x44, 0x52, 0x00, 0x01, 0x86, 0xA0, 0x00, 0x01, 0x86, 0xA0, 0x08, 0x06, 0x00, 0x00,
            0x00, 0xA8, 0x52, 0x0B, 0xC8, 0x00, 0x00, 0x00, 0x0C, 0x49, 0x44, 0x41, 0x54, 0x78,
            0x9C, 0x63, 0x60, 0xA0, 0x0C, 0x00, 0x00, 0x00, 0x40, 0x00, 0x01, 0xB7, 0x34, 0x7C,
            0xEF, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
        ];
        let e = check_image_bytes(&png, 50_000_000).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge, "{e}");
        let e = check_image_bytes(b"\x89PNG\r\n\x1a\nbroken", 50_000_000).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput);
    }

    /// An in-memory backend whose listings, while `hold` is set, take their snapshot at once
    /// and then wait for `gate`: a listing that overlaps a whole other upload.
    #[derive(Debug, Default)]
    struct HeldListings {
        inner: object_store::memory::InMemory,
        hold: std::sync::atomic::AtomicBool,
        arrived: Arc<tokio::sync::Notify>,
        gate: Arc<tokio::sync::Notify>,
    }

    impl std::fmt::Display for HeldListings {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("HeldListings")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for HeldListings {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            let listing = self.inner.list(prefix);
            if !self.hold.load(std::sync::atomic::Ordering::SeqCst) {
                return listing;
            }
            let (arrived, gate) = (self.arrived.clone(), self.gate.clone());
            futures::stream::once(async move {
                arrived.notify_one();
                gate.notified().await;
                listing
            })
            .flatten()
            .boxed()
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// An upload that finishes while another one counts what is stored is still counted:
    /// the two cannot pass the session's limit together (a contract test on a directory
    /// backend once kept five files where four fit).
    #[tokio::test]
    async fn an_upload_finishing_during_a_count_is_counted() {
        type Body = futures::channel::mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>;
        let objects = Arc::new(HeldListings::default());
        let files = Arc::new(FileStore::new(
            objects.clone(),
            FileLimits {
                max_file_bytes: 64 * 1024,
                max_owner_bytes: 256 * 1024,
                ..FileLimits::default()
            },
        ));
        let owner = SessionId::random();
        let piece = |b: u8| Bytes::from(vec![b; 60 * 1024]);
        let whole = |b: u8| futures::stream::iter([Ok::<_, std::io::Error>(piece(b))]);
        for b in b"abc" {
            files
                .upload(&owner, "kept.txt", None, whole(*b))
                .await
                .unwrap();
        }
        // B has room (180 + 60 of 256 kB) and waits for its bytes.
        let (tx, body): (_, Body) = futures::channel::mpsc::unbounded();
        let b = tokio::spawn({
            let files = files.clone();
            async move { files.upload(&owner, "b.txt", Some(60 * 1024), body).await }
        });
        while files.usage(|m| m.get(&owner).map_or(0, |u| u.reserved)) == 0 {
            tokio::task::yield_now().await;
        }
        // A counts 180 kB stored, and B finishes before A's count comes back.
        objects
            .hold
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let a = tokio::spawn({
            let (files, body) = (files.clone(), whole(b'a'));
            async move { files.upload(&owner, "a.txt", None, body).await }
        });
        objects.arrived.notified().await;
        objects
            .hold
            .store(false, std::sync::atomic::Ordering::SeqCst);
        tx.unbounded_send(Ok(piece(b'b'))).unwrap();
        drop(tx);
        b.await.unwrap().unwrap();
        objects.gate.notify_one();
        let e = a.await.unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitReached, "{e}");
        assert_eq!(files.count_kept(&owner).await.unwrap(), 4);
        assert!(files.stored_bytes(&owner).await.unwrap() <= 256 * 1024);
    }
}
