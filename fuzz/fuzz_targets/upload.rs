#![no_main]
//! The upload path: a multipart body of any bytes, read as the upload endpoint reads it
//! (axum's `Multipart`), its `file` part streamed into a `FileStore`. Never a panic; a
//! file kept is byte for byte what the part held, under a name that is no path.
use axum::extract::{FromRequest, Multipart};
use confide_core::{
    SessionId,
    files::{FileLimits, FileStore},
};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

const BOUNDARY: &str = "fuzzboundary";

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let req = http::Request::builder()
            .method("POST")
            .uri("/api/files")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(axum::body::Body::from(data.to_vec()))
            .unwrap();
        let Ok(mut form) = Multipart::from_request(req, &()).await else {
            return;
        };
        let files = FileStore::in_memory(FileLimits {
            max_file_bytes: 64 * 1024,
            ..FileLimits::default()
        });
        let owner = SessionId::random();
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() != Some("file") {
                continue;
            }
            let name = field.file_name().unwrap_or("file").to_owned();
            // What the part held, read beside the upload through a tee.
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let tee = {
                let seen = seen.clone();
                field.map(move |chunk| {
                    if let Ok(c) = &chunk {
                        seen.lock().unwrap().extend_from_slice(c);
                    }
                    chunk
                })
            };
            let tee = std::pin::pin!(tee);
            if let Ok(a) = files.upload(&owner, &name, None, tee).await {
                assert!(!a.name.contains(['/', '\\']) && !a.name.chars().any(char::is_control));
                let (_, kept) = files.read(&owner, &a.id, u64::MAX).await.unwrap();
                assert_eq!(&kept[..], &seen.lock().unwrap()[..]);
            }
            break;
        }
    });
});
