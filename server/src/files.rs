//! Attachments over HTTP: the backend the configuration picks (`[files]`), the upload
//! endpoint (`POST /api/files`, one multipart file per request, streamed to the store) and
//! the download endpoint (`GET /api/files/{id}`). Both sit behind the session guard like
//! every API call; what they may do is decided by `confide_core::files`.

use crate::{AppState, config::ConfigError};
use app::{ApiError, ErrorCode};
use axum::{
    Extension, Json,
    body::Body,
    extract::{Multipart, Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use confide_core::{
    VerifiedSession,
    files::{FileLimits, FileStore},
    model::FileId,
};
use object_store::{ObjectStore, aws::AmazonS3Builder, local::LocalFileSystem};
use serde::{Deserialize, Serialize};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// The `[files]` table: where attachments are kept and what is accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// `auto` (memory beside the memory store, else a directory beside the SQLite file, or
    /// `./data/files`), `memory`, `fs` (in `dir`) or `s3` (the `[files.s3]` table).
    pub backend: FilesBackend,
    /// The directory of the `fs` backend.
    pub dir: Option<PathBuf>,
    /// The bucket of the `s3` backend.
    pub s3: Option<S3Config>,
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Most files one message carries.
    pub max_files_per_message: usize,
    /// Most bytes of files one session (or signed-in account) keeps.
    pub max_session_bytes: u64,
    /// Media types accepted, as read from the bytes (`image/*` for a family). HTML, SVG,
    /// XML and scripts are never accepted.
    pub allowed_types: Vec<String>,
    /// How long an upload that no message took up is kept.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::ser_duration"
    )]
    pub pending_ttl: Duration,
    /// Most pixels (width × height) of an image.
    pub max_image_pixels: u64,
    /// Bound on one upload, from its first byte to its last.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::ser_duration"
    )]
    pub upload_timeout: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        let l = FileLimits::default();
        Self {
            backend: FilesBackend::Auto,
            dir: None,
            s3: None,
            max_file_bytes: l.max_file_bytes,
            max_files_per_message: l.max_files_per_message,
            max_session_bytes: l.max_owner_bytes,
            allowed_types: l.allowed_types,
            pending_ttl: l.pending_ttl,
            max_image_pixels: l.max_image_pixels,
            upload_timeout: Duration::from_secs(300),
        }
    }
}

/// Where attachments are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilesBackend {
    /// Follows the store: memory for `memory`, a directory for the others.
    Auto,
    /// In memory, lost on restart.
    Memory,
    /// A directory (`dir`).
    Fs,
    /// An S3-compatible bucket (`[files.s3]`).
    S3,
}

/// An S3-compatible bucket (AWS, MinIO, Garage, Ceph, R2…). Credentials not given here come
/// from the usual `AWS_*` environment variables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket; it must exist.
    pub bucket: String,
    /// The endpoint, for anything but AWS itself (e.g. `http://minio:9000`).
    #[serde(default)]
    pub endpoint: Option<url::Url>,
    /// The region (`us-east-1` unless given).
    #[serde(default)]
    pub region: Option<String>,
    /// The access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret access key. Never logged.
    #[serde(default)]
    pub secret_access_key: Option<crate::assistant::Secret>,
    /// Allow a plain-http endpoint (a bucket on the same host or network).
    #[serde(default)]
    pub allow_http: bool,
}

impl FilesConfig {
    /// Checks what reading alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_file_bytes == 0
            || self.max_files_per_message == 0
            || self.max_session_bytes < self.max_file_bytes
        {
            return Err(ConfigError::Invalid(
                "files: the limits must be above zero, and max_session_bytes at least max_file_bytes"
                    .into(),
            ));
        }
        if self.backend == FilesBackend::S3 && self.s3.is_none() {
            return Err(ConfigError::Invalid(
                "files: backend = \"s3\" needs a [files.s3] table".into(),
            ));
        }
        if self.backend == FilesBackend::Fs && self.dir.is_none() {
            return Err(ConfigError::Invalid(
                "files: backend = \"fs\" needs dir".into(),
            ));
        }
        Ok(())
    }

    fn limits(&self) -> FileLimits {
        FileLimits {
            max_file_bytes: self.max_file_bytes,
            max_files_per_message: self.max_files_per_message,
            max_owner_bytes: self.max_session_bytes,
            allowed_types: self.allowed_types.clone(),
            pending_ttl: self.pending_ttl,
            max_image_pixels: self.max_image_pixels,
        }
    }

    /// The file store this configures, for a server whose session store is `store`.
    pub fn open(&self, store: &crate::config::StoreKind) -> Result<FileStore, ConfigError> {
        use crate::config::StoreKind;
        let backend = match (self.backend, store) {
            (FilesBackend::Auto, StoreKind::Memory) => FilesBackend::Memory,
            (FilesBackend::Auto, _) => FilesBackend::Fs,
            (b, _) => b,
        };
        let objects: Arc<dyn ObjectStore> = match backend {
            FilesBackend::Memory | FilesBackend::Auto => {
                Arc::new(object_store::memory::InMemory::new())
            }
            FilesBackend::Fs => {
                let dir = match (&self.dir, store) {
                    (Some(d), _) => d.clone(),
                    (None, StoreKind::Sqlite(db)) => files_dir_of(db),
                    (None, _) => PathBuf::from("./data/files"),
                };
                let fs = local_dir(&dir)?;
                let root = std::fs::canonicalize(&dir).unwrap_or(dir);
                return Ok(FileStore::new(Arc::new(fs), self.limits()).with_local_root(root));
            }
            FilesBackend::S3 => {
                let Some(s3) = &self.s3 else {
                    return Err(ConfigError::Invalid("files: no [files.s3] table".into()));
                };
                Arc::new(s3_bucket(s3)?)
            }
        };
        Ok(FileStore::new(objects, self.limits()))
    }
}

/// The files directory of the SQLite database `db`: named after the database file
/// (`confide.db` → `confide.db-files`), as its `-wal` and `-shm` are. The sweep removes
/// the files of every owner its store does not know, so two databases in one directory
/// must never share a files directory: each would sweep away the other's uploads.
pub fn files_dir_of(db: &std::path::Path) -> PathBuf {
    let mut name = db
        .file_name()
        .map_or_else(|| "confide.db".into(), std::ffi::OsStr::to_os_string);
    name.push("-files");
    let own = db.with_file_name(name);
    // Earlier versions kept them in `files` beside the database. Keep using a directory
    // that is there, rather than losing sight of its files, but say how to move it.
    let legacy = db.with_file_name("files");
    if !own.exists() && legacy.is_dir() {
        tracing::warn!(
            "files are kept in {} beside the database; move it to {} (a directory shared by two databases loses files to their sweeps)",
            legacy.display(),
            own.display()
        );
        return legacy;
    }
    own
}

/// A directory as an object store; created if missing. Writes go to a staging file first
/// and are renamed into place, and a staging file is removed when its write is dropped.
pub fn local_dir(dir: &std::path::Path) -> Result<LocalFileSystem, ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ConfigError::Invalid(format!(
            "cannot create the files directory {}: {e}",
            dir.display()
        ))
    })?;
    LocalFileSystem::new_with_prefix(dir)
        .map(|fs| fs.with_automatic_cleanup(true))
        .map_err(|e| {
            ConfigError::Invalid(format!(
                "cannot use the files directory {}: {e}",
                dir.display()
            ))
        })
}

/// The bucket `s3` names, path-style when an endpoint is given (what MinIO and most
/// self-hosted stores expect).
pub fn s3_bucket(s3: &S3Config) -> Result<object_store::aws::AmazonS3, ConfigError> {
    // object_store's HTTP client brings no TLS crypto of its own: ring, as everywhere else.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".into()))
        .with_allow_http(s3.allow_http);
    if let Some(e) = &s3.endpoint {
        b = b
            .with_endpoint(e.as_str().trim_end_matches('/'))
            .with_virtual_hosted_style_request(false);
    }
    if let Some(k) = &s3.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = &s3.secret_access_key {
        b = b.with_secret_access_key(&s.0);
    }
    b.build()
        .map_err(|e| ConfigError::Invalid(format!("files: cannot use the S3 bucket: {e}")))
}

/// What a multipart form may add to its one file: boundaries, headers, a long file name.
pub const FORM_ALLOWANCE: u64 = 64 * 1024;

/// `POST /api/files`: one file, as the `file` part of a multipart form, streamed into the
/// session's files. Answers its `Attachment` (id, cleaned name, size, sniffed type).
pub async fn upload(
    State(state): State<AppState>,
    session: Option<Extension<VerifiedSession>>,
    headers: axum::http::HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Some(Extension(session)) = session else {
        return ApiError::no_session().into_response();
    };
    let Ok(mut multipart) = multipart else {
        return ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "uploads are multipart/form-data with a boundary",
        )
        .into_response();
    };
    // The request's length is the file's plus the form around it: a file of exactly the
    // limit must pass, so only a request longer than the limit and the form's allowance is
    // refused before its first byte; the count while it streams decides the rest.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = state.config.files.max_file_bytes;
    if declared.is_some_and(|n| n > max.saturating_add(FORM_ALLOWANCE)) {
        return ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "the file is over the limit of {}",
                confide_core::model::human_size(max)
            ),
        )
        .into_response();
    }
    let declared = declared.map(|n| n.min(max));
    let limit = state.config.files.upload_timeout;
    let files = state.files.clone();
    let work = async move {
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => return Err(ApiError::invalid_input("the form has no file part")),
                Err(e) => return Err(multipart_error(e)),
            };
            if field.name() != Some("file") {
                continue;
            }
            let name = field.file_name().unwrap_or("file").to_owned();
            // The part's own length is unknown; the request's bounds it from above.
            let field = std::pin::pin!(field);
            return files.upload(session.owner(), &name, declared, field).await;
        }
    };
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(a)) => Json(a).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => {
            ApiError::new(ErrorCode::RequestTimeout, "the upload took too long").into_response()
        }
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::TooLarge, "the upload is over the size limit")
    } else {
        ApiError::invalid_input("the upload is not a readable multipart form")
    }
}

/// `GET /api/files/{id}`: the session's file, typed by what its bytes are. Pictures are
/// shown inline; anything else is a download. A foreign or unknown id is 404, alike.
pub async fn download(
    State(state): State<AppState>,
    session: Option<Extension<VerifiedSession>>,
    Path(id): Path<String>,
) -> Response {
    let Some(Extension(session)) = session else {
        return ApiError::no_session().into_response();
    };
    let Some(id) = FileId::parse(&id) else {
        return ApiError::not_found().into_response();
    };
    let (file, bytes) = match state.files.open(session.owner(), &id).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let mut res = Body::from_stream(bytes).into_response();
    let h = res.headers_mut();
    let mime = if file.mime.starts_with("text/") {
        format!("{}; charset=utf-8", file.mime)
    } else {
        file.mime.clone()
    };
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    let disposition = if file.is_image() {
        "inline"
    } else {
        "attachment"
    };
    if let Ok(v) = HeaderValue::from_str(&content_disposition(disposition, &file.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // Even opened on its own, nothing in the file may run or reach anything.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
    );
    res
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266): the ASCII
/// fallback keeps letters, digits and `.-_` only, so no quote or line break can end it.
pub fn content_disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The contract every file backend passes: run by `file_contract!` against memory, a
/// directory and an S3-compatible server (s3s on a directory, started per test).
#[cfg(test)]
mod contract {
    use super::*;
    use bytes::Bytes;
    use confide_core::{
        Chats, Claim, Lifetimes, Proof, SessionId, SessionStore, Sessions,
        model::{FileId, MessageId, ThreadId},
    };
    use futures::stream;

    pub(super) const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];

    pub(super) fn limits() -> FileLimits {
        FileLimits {
            max_file_bytes: 64 * 1024,
            max_owner_bytes: 256 * 1024,
            max_files_per_message: 3,
            ..FileLimits::default()
        }
    }

    /// A body that arrives in pieces of `piece` bytes.
    pub(super) fn body(
        bytes: &[u8],
        piece: usize,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + use<> {
        let chunks: Vec<_> = bytes
            .chunks(piece.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        stream::iter(chunks)
    }

    async fn up(
        files: &FileStore,
        owner: &SessionId,
        name: &str,
        bytes: &[u8],
    ) -> Result<confide_core::model::Attachment, app::ApiError> {
        files
            .upload(owner, name, Some(bytes.len() as u64), body(bytes, 1000))
            .await
    }

    pub(super) async fn stored(
        files: &FileStore,
        owner: &SessionId,
        id: &FileId,
    ) -> Option<Vec<u8>> {
        files
            .read(owner, id, u64::MAX)
            .await
            .ok()
            .map(|(_, b)| b.to_vec())
    }

    pub(super) async fn roundtrip_and_isolation(files: FileStore) {
        let (alice, bob) = (SessionId::random(), SessionId::random());
        let text = "hello\n".repeat(3000);
        let a = up(&files, &alice, "../../notes.txt", text.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            (a.name.as_str(), a.mime.as_str(), a.size),
            ("notes.txt", "text/plain", text.len() as u64)
        );
        assert_eq!(
            stored(&files, &alice, &a.id).await.unwrap(),
            text.as_bytes()
        );
        // Another owner asking for the same id finds nothing, exactly as for a made-up one.
        let foreign = files.get(&bob, &a.id).await.unwrap_err();
        let missing = files.get(&alice, &FileId::random()).await.unwrap_err();
        assert_eq!(
            (foreign.code, foreign.message),
            (missing.code, missing.message)
        );
        assert!(files.open(&bob, &a.id).await.is_err());
        assert!(files.discard(&bob, &a.id).await.is_err());
        assert!(
            files
                .take_up(&bob, &[a.id], &ThreadId::random(), &MessageId::random())
                .await
                .is_err()
        );
        assert!(
            stored(&files, &alice, &a.id).await.is_some(),
            "bob's tries changed nothing"
        );
        // The picture's type comes from its bytes, whatever it is called.
        let p = up(&files, &bob, "cat.txt", PNG_1X1).await.unwrap();
        assert_eq!(p.mime, "image/png");
    }

    pub(super) async fn refusals_keep_nothing(files: FileStore) {
        let owner = SessionId::random();
        let cases: Vec<(&str, Vec<u8>, app::ErrorCode)> = vec![
            ("empty.txt", Vec::new(), app::ErrorCode::InvalidInput),
            (
                "big.txt",
                vec![b'a'; 64 * 1024 + 1],
                app::ErrorCode::TooLarge,
            ),
            (
                "tool.png",
                b"MZ\x90\0\x03\0\0\0\x04\0".to_vec(),
                app::ErrorCode::UnsupportedMediaType,
            ),
            (
                "page.html",
                b"\0<html><script>alert(1)</script>".to_vec(),
                app::ErrorCode::UnsupportedMediaType,
            ),
            (
                "broken.png",
                b"\x89PNG\r\n\x1a\nnot really".to_vec(),
                app::ErrorCode::InvalidInput,
            ),
        ];
        for (name, bytes, code) in cases {
            let e = up(&files, &owner, name, &bytes).await.unwrap_err();
            assert_eq!(e.code, code, "{name}: {e}");
        }
        // A body larger than it said, and one that breaks off.
        let e = files
            .upload(
                &owner,
                "liar.txt",
                Some(10),
                body(&vec![b'a'; 70 * 1024], 4096),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, app::ErrorCode::TooLarge);
        let broken = stream::iter(vec![
            Ok(Bytes::from(vec![b'a'; 9000])),
            Err(std::io::Error::other("connection reset")),
        ]);
        assert!(files.upload(&owner, "cut.txt", None, broken).await.is_err());
        assert_eq!(
            files.count_kept(&owner).await.unwrap(),
            0,
            "nothing was kept"
        );
    }

    pub(super) async fn limits_hold_under_concurrency(files: FileStore) {
        let owner = SessionId::random();
        let files = std::sync::Arc::new(files);
        // 60 kB each against 256 kB in all: at most four fit, however they interleave.
        let tries = (0..8).map(|i| {
            let files = files.clone();
            async move {
                let bytes = vec![b'a' + i as u8; 60 * 1024];
                files
                    .upload(
                        &owner,
                        &format!("{i}.txt"),
                        Some(bytes.len() as u64),
                        body(&bytes, 8192),
                    )
                    .await
            }
        });
        let results = futures::future::join_all(tries).await;
        let kept = results.iter().filter(|r| r.is_ok()).count();
        assert!((1..=4).contains(&kept), "{kept} kept");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.code, app::ErrorCode::LimitReached, "{r}");
        }
        let now = files.count_kept(&owner).await.unwrap();
        assert_eq!(now, kept);
        // A message carries at most three; the same file twice is refused.
        let ids: Vec<FileId> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|a| a.id)
            .collect();
        let thread = ThreadId::random();
        if !ids.is_empty() {
            let e = files
                .take_up(&owner, &[ids[0], ids[0]], &thread, &MessageId::random())
                .await
                .unwrap_err();
            assert_eq!(e.code, app::ErrorCode::InvalidInput);
        }
        let taken = files
            .take_up(
                &owner,
                &ids[..ids.len().min(3)],
                &thread,
                &MessageId::random(),
            )
            .await
            .unwrap();
        assert_eq!(taken.len(), ids.len().min(3));
        // Taken up once, never again, and no longer discardable.
        assert!(
            files
                .take_up(&owner, &ids[..1], &ThreadId::random(), &MessageId::random())
                .await
                .is_err()
        );
        assert!(files.discard(&owner, &ids[0]).await.is_err());
        // Deleting the thread frees its files.
        files.delete_thread(&owner, &thread).await.unwrap();
        assert_eq!(
            files.count_kept(&owner).await.unwrap(),
            kept - ids.len().min(3)
        );
    }

    pub(super) async fn ended_sessions_lose_their_files(files: FileStore) {
        let store = crate::store::MemoryStore::new(Lifetimes::default());
        let live = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        assert_eq!(store.claim(&live, &proof, None).await.unwrap(), Claim::Won);
        let gone = SessionId::random();
        let home = SessionId::home("password", "ann");
        let kept = up(&files, &live, "a.txt", b"live").await.unwrap();
        files
            .take_up(&live, &[kept.id], &ThreadId::random(), &MessageId::random())
            .await
            .unwrap();
        let lost = up(&files, &gone, "b.txt", b"ended").await.unwrap();
        // A sign-in that keeps the chats moves the files with them.
        let moved = up(&files, &gone, "c.txt", b"moved").await.unwrap();
        files
            .take_up(
                &gone,
                &[moved.id],
                &ThreadId::random(),
                &MessageId::random(),
            )
            .await
            .unwrap();
        files.adopt(&gone, &home).await.unwrap();
        assert_eq!(stored(&files, &home, &moved.id).await.unwrap(), b"moved");
        assert!(stored(&files, &gone, &moved.id).await.is_none());
        let swept = files.sweep(&store as &dyn SessionStore).await.unwrap();
        assert_eq!(swept, 1, "only the ended session's pending upload");
        assert!(stored(&files, &gone, &lost.id).await.is_none());
        assert!(stored(&files, &live, &kept.id).await.is_some());
        assert!(stored(&files, &home, &moved.id).await.is_some());
        files.delete_owner(&live).await.unwrap();
        assert!(stored(&files, &live, &kept.id).await.is_none());
    }

    /// What a process killed mid-turn leaves (an upload never sent, a file taken up by a
    /// message that was never stored) is gone after `pending_ttl`; what a stored message
    /// carries stays, however old.
    pub(super) async fn the_sweep_clears_what_a_crash_left(files: FileStore) {
        use confide_core::model::{Message, MessageStatus, Role, Thread};
        let store = crate::store::MemoryStore::new(Lifetimes::default());
        let owner = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        assert_eq!(store.claim(&owner, &proof, None).await.unwrap(), Claim::Won);
        let thread = Thread {
            id: ThreadId::random(),
            title: "t".into(),
            created_ms: 1,
            updated_ms: 1,
        };
        store.create_thread(&owner, &thread).await.unwrap();
        let kept = up(&files, &owner, "kept.txt", b"kept").await.unwrap();
        let message = MessageId::random();
        files
            .take_up(&owner, &[kept.id], &thread.id, &message)
            .await
            .unwrap();
        let m = Message {
            id: message,
            thread_id: thread.id,
            role: Role::User,
            content: String::new(),
            created_ms: 2,
            status: MessageStatus::Done,
            feedback: None,
            error: None,
            steps: Vec::new(),
            actions: Vec::new(),
            attachments: vec![kept.clone()],
        };
        assert!(store.put_message(&owner, &m).await.unwrap());
        let never_sent = up(&files, &owner, "pending.txt", b"pending").await.unwrap();
        let lost = up(&files, &owner, "lost.txt", b"lost").await.unwrap();
        files
            .take_up(&owner, &[lost.id], &thread.id, &MessageId::random())
            .await
            .unwrap();
        // Young, everything stays: a send may be on its way.
        assert_eq!(files.sweep(&store as &dyn SessionStore).await.unwrap(), 0);
        let later = confide_core::store::now_ms() + 2 * 3600 * 1000;
        assert_eq!(
            files
                .sweep_at(&store as &dyn SessionStore, later)
                .await
                .unwrap(),
            2
        );
        assert!(stored(&files, &owner, &kept.id).await.is_some());
        assert!(stored(&files, &owner, &never_sent.id).await.is_none());
        assert!(stored(&files, &owner, &lost.id).await.is_none());
        // Checked once, the kept file is not looked up again.
        assert_eq!(
            files
                .sweep_at(&store as &dyn SessionStore, later)
                .await
                .unwrap(),
            0
        );
        assert_eq!(files.count_kept(&owner).await.unwrap(), 1);
    }
}

/// Runs the contract against one backend, built by `$make` (async, returning the store and
/// whatever must live as long as it).
#[cfg(test)]
macro_rules! file_contract {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::contract::*;
            #[tokio::test]
            async fn roundtrip_and_isolation_() {
                let (files, _keep) = $make.await;
                roundtrip_and_isolation(files).await;
            }
            #[tokio::test]
            async fn refusals_keep_nothing_() {
                let (files, _keep) = $make.await;
                refusals_keep_nothing(files).await;
            }
            #[tokio::test]
            async fn limits_hold_under_concurrency_() {
                let (files, _keep) = $make.await;
                limits_hold_under_concurrency(files).await;
            }
            #[tokio::test]
            async fn ended_sessions_lose_their_files_() {
                let (files, _keep) = $make.await;
                ended_sessions_lose_their_files(files).await;
            }
            #[tokio::test]
            async fn the_sweep_clears_what_a_crash_left_() {
                let (files, _keep) = $make.await;
                the_sweep_clears_what_a_crash_left(files).await;
            }
        }
    };
}

#[cfg(test)]
mod backends {
    use super::*;

    pub(super) async fn memory() -> (FileStore, ()) {
        (FileStore::in_memory(contract::limits()), ())
    }

    pub(super) async fn dir() -> (FileStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let fs = local_dir(dir.path()).unwrap();
        let files =
            FileStore::new(Arc::new(fs), contract::limits()).with_local_root(dir.path().to_owned());
        (files, dir)
    }

    /// An S3-compatible server (s3s on a temporary directory, with a key pair) on a free
    /// port of this process, and a bucket in it.
    pub(super) async fn s3() -> (FileStore, (tempfile::TempDir, tokio::task::JoinHandle<()>)) {
        use axum::response::IntoResponse;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("confide")).unwrap();
        let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(
            "test-key",
            "test-secret-key",
        ));
        let svc = b.build();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let mut svc = svc.clone();
            async move {
                match tower::Service::call(&mut svc, req).await {
                    Ok(r) => r.map(axum::body::Body::new).into_response(),
                    Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let bucket = s3_bucket(&S3Config {
            bucket: "confide".into(),
            endpoint: Some(format!("http://{addr}").parse().unwrap()),
            region: None,
            access_key_id: Some("test-key".into()),
            secret_access_key: Some(crate::assistant::Secret("test-secret-key".into())),
            allow_http: true,
        })
        .unwrap();
        (
            FileStore::new(Arc::new(bucket), contract::limits()),
            (dir, server),
        )
    }
}

#[cfg(test)]
file_contract!(memory_backend, super::backends::memory());
#[cfg(test)]
file_contract!(directory_backend, super::backends::dir());
#[cfg(test)]
file_contract!(s3_backend, super::backends::s3());

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory backend's upload killed mid-write leaves a staging file that listings
    /// never show; the sweep removes it once it is older than `pending_ttl`, and only then.
    #[tokio::test]
    async fn the_sweep_removes_staging_files_a_kill_left() {
        use confide_core::SessionId;
        let (files, dir) = super::backends::dir().await;
        let owner = SessionId::random();
        let owner_dir = dir.path().join("f").join(owner.as_string());
        std::fs::create_dir_all(&owner_dir).unwrap();
        let (old, young) = (owner_dir.join("a#1"), owner_dir.join("b#1"));
        for p in [&old, &young] {
            std::fs::write(p, b"half").unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        let store = crate::store::MemoryStore::new(confide_core::Lifetimes::default());
        let removed = files.sweep(&store).await.unwrap();
        assert_eq!(removed, 1);
        assert!(!old.exists() && young.exists());
    }

    /// Two SQLite databases in one directory keep their files apart. They once shared
    /// `files/` beside them, and each one's sweep removed the other's uploads as the files
    /// of sessions it did not know (seen as a message refused with 404 in the browser
    /// tests, whose servers keep their databases in one directory).
    #[tokio::test]
    async fn two_databases_in_one_directory_never_sweep_each_others_files() {
        use crate::config::StoreKind;
        use confide_core::{Claim, Lifetimes, Proof, SessionId, SessionStore, store::Sessions};
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            let db = dir.path().join(name);
            async move {
                let store = crate::store::SqliteStore::open(
                    &db,
                    Lifetimes::default(),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
                let files = FilesConfig::default().open(&StoreKind::Sqlite(db)).unwrap();
                (store, files)
            }
        };
        let (a, a_files) = open("a.db").await;
        let (b, b_files) = open("b.db").await;
        let owner = SessionId::random();
        let proof = Proof::generate().unwrap().hash();
        assert_eq!(a.claim(&owner, &proof, None).await.unwrap(), Claim::Won);
        let kept = a_files
            .upload(
                &owner,
                "notes.txt",
                None,
                contract::body(b"private notes", 5),
            )
            .await
            .unwrap();
        assert_eq!(b_files.sweep(&b as &dyn SessionStore).await.unwrap(), 0);
        assert_eq!(a_files.sweep(&a as &dyn SessionStore).await.unwrap(), 0);
        assert_eq!(a_files.get_pending(&owner, &kept.id).await.unwrap(), kept);
        assert!(dir.path().join("a.db-files").is_dir() && dir.path().join("b.db-files").is_dir());
        assert!(!dir.path().join("files").exists());
    }

    /// A files directory that earlier versions made (`files/` beside the database) stays
    /// in use, so an upgrade does not lose sight of its files.
    #[test]
    fn an_earlier_files_directory_stays_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("confide.db");
        assert_eq!(files_dir_of(&db), dir.path().join("confide.db-files"));
        std::fs::create_dir(dir.path().join("files")).unwrap();
        assert_eq!(files_dir_of(&db), dir.path().join("files"));
        std::fs::create_dir(dir.path().join("confide.db-files")).unwrap();
        assert_eq!(files_dir_of(&db), dir.path().join("confide.db-files"));
    }

    #[test]
    fn download_names_cannot_break_the_header() {
        let d = content_disposition("attachment", "a\"b\r\nSet-Cookie: x.txt");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(
            d.starts_with("attachment; filename=\"a_b__Set-Cookie__x.txt\";"),
            "{d}"
        );
        assert!(HeaderValue::from_str(&d).is_ok());
        let d = content_disposition("inline", "café.png");
        assert!(d.ends_with("filename*=UTF-8''caf%C3%A9%2Epng"), "{d}");
    }
}
