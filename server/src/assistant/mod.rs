//! Assistant backends chosen by `CONFIDE_ASSISTANT`.

mod echo;

pub use echo::EchoAssistant;
