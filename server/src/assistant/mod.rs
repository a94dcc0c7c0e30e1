//! Assistant backends chosen by `CONFIDE_ASSISTANT`.

mod echo;
mod openai;
pub mod sse;

pub use echo::EchoAssistant;
pub use openai::{ModelProfile, OpenAiAssistant, OpenAiConfig, Secret};
