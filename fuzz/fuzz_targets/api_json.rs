#![no_main]
//! Every server function's JSON payload decoder on arbitrary bytes: never a panic.
use app::{account, api};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<api::SetNote>(data);
    let _ = serde_json::from_slice::<api::CreateThread>(data);
    let _ = serde_json::from_slice::<api::RenameThread>(data);
    let _ = serde_json::from_slice::<api::DeleteThread>(data);
    let _ = serde_json::from_slice::<api::SearchThreads>(data);
    let _ = serde_json::from_slice::<api::GetThread>(data);
    let _ = serde_json::from_slice::<api::ExportThread>(data);
    let _ = serde_json::from_slice::<api::SendMessage>(data);
    let _ = serde_json::from_slice::<api::StopReply>(data);
    let _ = serde_json::from_slice::<api::EditMessage>(data);
    let _ = serde_json::from_slice::<api::RegenerateReply>(data);
    let _ = serde_json::from_slice::<api::SetFeedback>(data);
    let _ = serde_json::from_slice::<account::LogIn>(data);
    let _ = serde_json::from_slice::<account::Register>(data);
    let _ = serde_json::from_slice::<account::LogInByHeader>(data);
    let _ = serde_json::from_slice::<account::OidcStart>(data);
    let _ = serde_json::from_slice::<account::OidcFinish>(data);
    let _ = serde_json::from_slice::<account::EndSession>(data);
    let _ = serde_json::from_slice::<account::ChangePassword>(data);
    let _ = serde_json::from_slice::<account::SignedIn>(data);
    let _ = serde_json::from_slice::<app::model::ChatEvent>(data);
    let _ = serde_json::from_slice::<app::ApiError>(data);
});
