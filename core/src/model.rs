//! Chat data shared by server and browser: threads and messages of one session.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};
use uuid::Uuid;

/// Longest message a person may send, in characters.
pub const MAX_MESSAGE_CHARS: usize = 16_000;
/// Longest thread title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The title of a chat nothing has named yet.
pub const DEFAULT_TITLE: &str = "New chat";
/// Longest feedback comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// Server-issued random UUID v4, parsed only from its canonical form.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id, for something new.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }
            /// Reads an id from its canonical lowercase hyphenated form; any other spelling is
            /// `None`.
            pub fn parse(s: &str) -> Option<Self> {
                // Same canonical rules as session ids: one spelling per id.
                crate::SessionId::parse(s).ok().map(|sid| Self(Uuid::from_bytes(*sid.as_bytes())))
            }
            /// The canonical lowercase hyphenated form, as the browser sees it.
            pub fn as_string(&self) -> String {
                self.0.hyphenated().to_string()
            }
            /// The 16 raw bytes, as stores keep them.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            /// For stores reading back ids they wrote.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                Self::parse(s).ok_or(())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.as_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(concat!("not a valid ", stringify!($name))))
            }
        }
    };
}

id_type!(
    /// Names a thread within its session.
    ThreadId
);
id_type!(
    /// Names a message within its session.
    MessageId
);
id_type!(
    /// Names a step within its message.
    StepId
);
id_type!(
    /// Names an action button within its message.
    ActionId
);
id_type!(
    /// Names an uploaded file within its session.
    FileId
);

/// Longest file name kept, in characters; longer names are cut.
pub const MAX_FILE_NAME_CHARS: usize = 120;

/// A file a message carries: uploaded by the person, or attached by the assistant to a
/// reply. The bytes are served at [`url`](Self::url), to the session that owns them only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// The file's id, unique within its session; never derived from its name.
    pub id: FileId,
    /// The name it was uploaded with, cleaned for display (no path, no control characters).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type as read from its bytes, never as the uploader called it.
    pub mime: String,
}

impl Attachment {
    /// Whether the page may show it as a picture (a checked PNG, JPEG, GIF or WebP).
    pub fn is_image(&self) -> bool {
        is_image_type(&self.mime)
    }

    /// Where the session that owns it downloads it.
    pub fn url(&self) -> String {
        format!("/api/files/{}", self.id)
    }
}

/// The picture types that are checked on upload and shown inline.
pub fn is_image_type(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// "1.5 MB", "320 kB", "12 B": a size as people read it. Integer arithmetic only: the
/// browser build then carries no float formatting.
pub fn human_size(bytes: u64) -> String {
    let tenths = |unit: u64| bytes.saturating_mul(10).saturating_add(unit / 2) / unit;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..999_500 => format!("{} kB", (bytes + 500) / 1_000),
        999_500..999_950_000 => {
            let t = tenths(1_000_000);
            format!("{}.{} MB", t / 10, t % 10)
        }
        _ => {
            let t = tenths(1_000_000_000);
            format!("{}.{} GB", t / 10, t % 10)
        }
    }
}

/// A conversation of a session; its messages are stored and fetched separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// The thread's id, unique within its session.
    pub id: ThreadId,
    /// The name the thread list shows, at most `MAX_TITLE_CHARS` characters.
    pub title: String,
    /// When the thread was created, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When its latest message was added (its creation until then), in milliseconds since the
    /// Unix epoch; the thread list shows the most recent first.
    pub updated_ms: i64,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person chatting.
    User,
    /// The assistant, replying.
    Assistant,
}

/// Where a message stands. A person's message is `Done` from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// The reply is still being generated.
    Streaming,
    /// Finished: a person's message as sent, or a reply that ran to its end.
    Done,
    /// Cut off before it finished: the person pressed stop, or signed in while it ran.
    Stopped,
    /// Generation failed; `error` says why.
    Error,
}

/// A person's verdict on a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// Thumbs up: the reply helped.
    Up,
    /// Thumbs down: it did not.
    Down,
}

/// What a person thought of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Feedback {
    /// Whether the reply helped.
    pub rating: Rating,
    /// What they wrote along with it, at most `MAX_COMMENT_CHARS` characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// One message of a thread: the person's words or the assistant's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The message's id, unique within its session.
    pub id: MessageId,
    /// The thread it belongs to.
    pub thread_id: ThreadId,
    /// Whether the person or the assistant wrote it.
    pub role: Role,
    /// Markdown source, as written or as generated so far.
    pub content: String,
    /// When it was written (for a reply, when it started), in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Whether it is still streaming, or how it ended.
    pub status: MessageStatus,
    /// The person's rating of a reply, once they give one.
    #[serde(default)]
    pub feedback: Option<Feedback>,
    /// Why generation failed, for `status == error`.
    #[serde(default)]
    pub error: Option<String>,
    /// What the reply did on its way (tool calls, retrievals, reasoning), in the order the
    /// steps began. Empty for the person's messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Buttons the reply offers; a click calls back into the assistant with the action.
    /// Pressing one takes them all away (the choice is made).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// The files it carries: the person's uploads, or what the reply attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// Most actions one reply offers.
pub const MAX_ACTIONS: usize = 10;
/// Longest action label, in characters.
pub const MAX_ACTION_LABEL_CHARS: usize = 40;
/// Largest action payload, in bytes of JSON.
pub const MAX_ACTION_PAYLOAD_BYTES: usize = 4 * 1024;

/// A button under a reply. The browser is shown `label` and sends back only the message and
/// `id`; `name` and `payload` are read from the stored message of the session that clicks,
/// so a click can neither forge a payload nor reach another session's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What the browser sends back to say which button was pressed.
    pub id: ActionId,
    /// Which of the assistant's callbacks the click is for.
    pub name: String,
    /// The button's text, at most `MAX_ACTION_LABEL_CHARS` characters.
    pub label: String,
    /// What the assistant attached, as JSON text (see `payload`).
    #[serde(default)]
    pub payload: String,
}

impl Action {
    /// The payload read as `T`.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(if self.payload.is_empty() {
            "null"
        } else {
            &self.payload
        })
    }
}

/// Most steps one reply keeps; later ones are not recorded.
pub const MAX_STEPS: usize = 64;
/// Longest step name, in characters.
pub const MAX_STEP_NAME_CHARS: usize = 80;
/// Longest step input or output kept, in characters; longer text is cut with "…".
pub const MAX_STEP_TEXT_CHARS: usize = 8_000;

/// What a step is, which the page shows as its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A call of a tool (a function, an MCP tool).
    Tool,
    /// Looking something up (search, a vector store).
    Retrieval,
    /// The model thinking aloud.
    Reasoning,
    /// Anything else the reply does.
    Run,
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Begun and not yet ended.
    Running,
    /// Ended successfully.
    Done,
    /// Ended in an error; `output` says why.
    Failed,
    /// Cut off before it ended: the reply was stopped, or the step was dropped unfinished.
    Stopped,
}

/// One thing a reply did on its way to its text: a tool call, a retrieval, the model's
/// reasoning. Steps nest through `parent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step's id, unique within its message.
    pub id: StepId,
    /// The step it runs inside, if any.
    #[serde(default)]
    pub parent: Option<StepId>,
    /// What sort of step it is, which the page shows as its label.
    pub kind: StepKind,
    /// What it is called, e.g. the tool's name.
    pub name: String,
    /// What it was given, e.g. a tool call's arguments.
    #[serde(default)]
    pub input: String,
    /// The result, or for a failed step why it failed.
    #[serde(default)]
    pub output: String,
    /// Whether it is still running, or how it ended.
    pub status: StepStatus,
    /// When it began and ended, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// When it ended, in milliseconds since the Unix epoch; `None` while it runs.
    #[serde(default)]
    pub ended_ms: Option<i64>,
}

impl Step {
    /// Whether it is done, failed or stopped.
    pub fn ended(&self) -> bool {
        self.status != StepStatus::Running
    }
}

/// How far a reply's steps and actions have come: each step counts once when it begins and
/// once when it ends, each action once, so the number only grows while the reply runs.
fn step_progress(steps: &[Step], actions: &[Action]) -> usize {
    steps.len() + steps.iter().filter(|s| s.ended()).count() + actions.len()
}

/// Where a message stands in its own history, read from what it holds. The server only
/// moves a message forward: a reply streams while its text grows, then ends once (done,
/// stopped or failed) and never streams again. Answers and live events may reach a page in
/// any order, so a page keeps whichever state of a message has the higher revision. States
/// of equal revision (a rating, an edit of the person's words) arrive in the order the
/// server made them, and the later one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Revision {
    /// Streaming, with this many bytes of text so far and its steps this far along (see
    /// `step_progress`). Both only grow while a reply runs, so the states of one reply are
    /// ordered the same way by either.
    Streaming(usize, usize),
    /// Done, stopped or failed: final, and ahead of every streaming state.
    Ended,
}

impl Message {
    /// How far this state of the message has come (see `Revision`).
    pub fn revision(&self) -> Revision {
        match self.status {
            MessageStatus::Streaming => Revision::Streaming(
                self.content.len(),
                step_progress(&self.steps, &self.actions),
            ),
            MessageStatus::Done | MessageStatus::Stopped | MessageStatus::Error => Revision::Ended,
        }
    }

    /// Whether this state of a message may replace `other`, a state of the same message.
    pub fn supersedes(&self, other: &Message) -> bool {
        self.revision() >= other.revision()
    }
}

impl Message {
    /// A reply of `thread` about to be written: empty, streaming, from now (`created_ms`).
    pub fn new_reply(thread_id: ThreadId, created_ms: i64) -> Self {
        Self {
            id: MessageId::random(),
            thread_id,
            role: Role::Assistant,
            content: String::new(),
            created_ms,
            status: MessageStatus::Streaming,
            feedback: None,
            error: None,
            steps: Vec::new(),
            actions: Vec::new(),
            attachments: Vec::new(),
        }
    }

    /// A reply being written, with this text so far.
    #[cfg(test)]
    pub(crate) fn streaming(content: &str) -> Self {
        Self {
            content: content.to_owned(),
            ..Self::new_reply(ThreadId::random(), 1)
        }
    }
}

/// A message as the browser shows it: the stored message plus its content rendered to
/// sanitised HTML on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// The message as stored.
    #[serde(flatten)]
    pub message: Message,
    /// `content` rendered to sanitised HTML.
    pub html: String,
}

/// A thread as the browser opens it: the thread and its messages, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadView {
    /// The thread's title and times.
    pub thread: Thread,
    /// Its messages in conversation order, each rendered.
    pub messages: Vec<MessageView>,
}

/// A search hit: the thread and, when the match is in a message, a snippet around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The thread that matched.
    pub thread: Thread,
    /// Text around the match in one of its messages; `None` when the title matched.
    pub snippet: Option<String>,
}

/// The result of sending (or editing) a message: the thread, the person's message and the
/// reply that has started streaming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The thread as it stands after the send (new, or with its time moved on).
    pub thread: Thread,
    /// The person's message as stored.
    pub user: MessageView,
    /// The assistant's reply, just begun: streaming, its text still to come.
    pub reply: MessageView,
}

/// A thread exported as a file for the browser to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Suggested file name, made from the thread's title.
    pub filename: String,
    /// The file's media type, e.g. `text/markdown`.
    pub mime: String,
    /// The file's text.
    pub content: String,
}

/// What a session's live event stream carries (Server-Sent Events, one JSON object each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// A message was created or changed (including the final state of a reply). A new
    /// message also moves its thread's `updated_ms` up to its `created_ms`; no thread event
    /// says so.
    Message {
        /// The message's new state, rendered.
        message: MessageView,
    },
    /// A reply grew. Either whole (no `from`): its text so far and that text rendered; or
    /// what changed since the state whose text was `from` bytes long: the text that follows
    /// those bytes, and the rendering's end after its first `keep` bytes. A listener that
    /// does not hold that state skips such a delta; a whole one follows within a second. So
    /// a long reply costs its listeners about its own size, not its size for every delta.
    Delta {
        /// The thread the reply is in.
        thread_id: ThreadId,
        /// The reply that grew.
        message_id: MessageId,
        /// Its Markdown text so far, or (with `from`) the text after the first `from` bytes.
        content: String,
        /// The text rendered to sanitised HTML, or (with `keep`) what follows the first
        /// `keep` bytes of the rendering of the state it grew from.
        html: String,
        /// The length in bytes of the text this delta adds to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<usize>,
        /// How many bytes of that state's rendering stay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep: Option<usize>,
    },
    /// A thread was created or renamed. Listeners keep the newer `updated_ms` of this and
    /// what the messages since have moved it to.
    Thread {
        /// The thread's new state.
        thread: Thread,
    },
    /// A thread and its messages were deleted.
    ThreadDeleted {
        /// The thread that was deleted.
        thread_id: ThreadId,
    },
    /// Messages after `after` were dropped (an edit or a regeneration).
    Truncated {
        /// The thread that lost messages.
        thread_id: ThreadId,
        /// The last message kept; `None` when all of them went.
        after: Option<MessageId>,
    },
    /// The listener missed events and should reload what it shows.
    Resync,
    /// The stream's last event: a newer stream of the session took its place (the session
    /// is open in more tabs than it may stream to). The listener should not reconnect on its
    /// own, or the tabs would keep pushing each other out.
    Replaced,
}

/// What a delta that carries only a change (`from`, `keep`) changes, applied to a
/// streaming state of its message. `None` when the state is not the one the delta grew
/// from: the caller keeps what it has until a whole delta comes.
pub fn grow(
    (content, html): (&str, &str),
    (from, keep): (usize, usize),
    (more, html_end): (&str, &str),
) -> Option<(String, String)> {
    if content.len() != from || !html.is_char_boundary(keep) {
        return None;
    }
    Some(([content, more].concat(), [&html[..keep], html_end].concat()))
}

impl ChatEvent {
    /// `Resync` as the stream sends it, for a browser that passes a resync on to its other
    /// tabs without carrying the events' serialiser for that one event.
    pub const RESYNC_JSON: &'static str = r#"{"type":"resync"}"#;

    /// The thread the event concerns; `None` for `Resync`.
    pub fn thread_id(&self) -> Option<ThreadId> {
        match self {
            Self::Message { message } => Some(message.message.thread_id),
            Self::Delta { thread_id, .. }
            | Self::ThreadDeleted { thread_id }
            | Self::Truncated { thread_id, .. } => Some(*thread_id),
            Self::Thread { thread } => Some(thread.id),
            Self::Resync | Self::Replaced => None,
        }
    }
}

/// A title from the first words of a message. Messages are Markdown, titles plain text: the
/// first line with words in it (a code fence has none) loses its block markers (heading,
/// quote, bullet) and its bold and code marks, so `# Plan` is titled "Plan". A number
/// that starts a list item stays: it says something.
pub fn title_from(text: &str) -> String {
    let line = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("```") || l.starts_with("~~~"))
        })
        .map(plain_line)
        .find(|l| !l.is_empty())
        .unwrap_or_else(|| DEFAULT_TITLE.to_owned());
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

/// One line of Markdown as the words it shows, roughly: block markers off its start, and
/// the marks that never stand for themselves in a title (`**`, `__`, `` ` ``) taken out.
fn plain_line(line: &str) -> String {
    let mut rest = line.trim();
    loop {
        let before = rest;
        rest = rest.trim_start_matches('>').trim_start();
        // A marker is one only when a space or the line's end follows it.
        let marker = |r: &str| r.is_empty() || r.starts_with([' ', '\t']);
        let hashes = rest.len() - rest.trim_start_matches('#').len();
        if (1..=6).contains(&hashes) && marker(&rest[hashes..]) {
            rest = rest[hashes..].trim_start();
        }
        if let Some(r) = rest.strip_prefix(['-', '*', '+'])
            && marker(r)
        {
            rest = r.trim_start();
        }
        for task in ["[ ] ", "[x] ", "[X] "] {
            if let Some(r) = rest.strip_prefix(task) {
                rest = r.trim_start();
            }
        }
        if rest.len() == before.len() {
            break;
        }
    }
    let plain = rest.replace("**", "").replace("__", "").replace('`', "");
    plain.trim().trim_end_matches(['#', ' ']).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_canonical_v4() {
        let id = ThreadId::random();
        assert_eq!(ThreadId::parse(&id.as_string()), Some(id));
        assert_eq!(ThreadId::parse(&id.as_string().to_uppercase()), None);
        assert_eq!(MessageId::parse("nope"), None);
        assert!(
            serde_json::from_str::<MessageId>("\"00000000-0000-0000-0000-000000000000\"").is_err()
        );
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_000), "1 kB");
        assert_eq!(human_size(14_499), "14 kB");
        assert_eq!(human_size(999_499), "999 kB");
        assert_eq!(human_size(999_500), "1.0 MB");
        assert_eq!(human_size(1_450_000), "1.5 MB");
        assert_eq!(human_size(20_000_000), "20.0 MB");
        assert_eq!(human_size(2_345_000_000), "2.3 GB");
        assert!(human_size(u64::MAX).ends_with(" GB"));
    }

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(title_from("\n  hello world \nmore"), "hello world");
        assert_eq!(title_from(""), "New chat");
        let long = "x".repeat(80);
        assert_eq!(title_from(&long).chars().count(), 61);
    }

    #[test]
    fn titles_are_the_words_markdown_shows() {
        for (text, title) in [
            ("# Plan for Monday\nmore", "Plan for Monday"),
            ("### Closed heading ###", "Closed heading"),
            ("> quoted **bold** words", "quoted bold words"),
            ("> - [ ] a task in a quote", "a task in a quote"),
            ("1. first step", "1. first step"),
            ("* star item", "star item"),
            ("```rust\nfn main() {}\n```", "fn main() {}"),
            ("~~~\n\n~~~\nafter the fence", "after the fence"),
            ("`code` in __words__", "code in words"),
            // Not markers: kept as written.
            ("#hashtag", "#hashtag"),
            ("2024. A year", "2024. A year"),
            ("snake_case_name", "snake_case_name"),
            ("-5 degrees", "-5 degrees"),
            ("C# is a language", "C# is a language"),
            // Nothing but markers: the next line, or the default.
            ("#\n> \n- \nreal words", "real words"),
            ("```", "New chat"),
            ("# ", "New chat"),
        ] {
            assert_eq!(title_from(text), title, "{text:?}");
        }
    }

    #[test]
    fn a_state_never_gives_way_to_an_older_one() {
        let placeholder = Message::streaming("");
        let partial = Message {
            content: "Hello ".into(),
            ..placeholder.clone()
        };
        let done = Message {
            content: "Hello there".into(),
            status: MessageStatus::Done,
            ..placeholder.clone()
        };
        let stopped_early = Message {
            status: MessageStatus::Stopped,
            ..placeholder.clone()
        };
        let rated = Message {
            feedback: Some(Feedback {
                rating: Rating::Up,
                comment: None,
            }),
            ..done.clone()
        };
        assert!(partial.supersedes(&placeholder));
        assert!(!placeholder.supersedes(&partial));
        assert!(done.supersedes(&partial));
        assert!(!placeholder.supersedes(&done), "the late send answer");
        assert!(!partial.supersedes(&done), "a late delta");
        assert!(stopped_early.supersedes(&partial), "ended, however short");
        assert!(rated.supersedes(&done) && done.supersedes(&rated));
    }

    #[test]
    fn a_step_moves_a_reply_forward_even_without_text() {
        let step = Step {
            id: StepId::random(),
            parent: None,
            kind: StepKind::Tool,
            name: "clock".into(),
            input: String::new(),
            output: String::new(),
            status: StepStatus::Running,
            started_ms: 1,
            ended_ms: None,
        };
        let before = Message::streaming("Let me look");
        let began = Message {
            steps: vec![step.clone()],
            ..before.clone()
        };
        let ended = Message {
            steps: vec![Step {
                status: StepStatus::Done,
                output: "12:00".into(),
                ended_ms: Some(2),
                ..step
            }],
            ..before.clone()
        };
        assert!(began.supersedes(&before) && !before.supersedes(&began));
        assert!(ended.supersedes(&began) && !began.supersedes(&ended));
        let json = serde_json::to_value(&before).unwrap();
        assert!(json.get("steps").is_none(), "no steps, no field: {json}");
        let back: Message = serde_json::from_value(serde_json::to_value(&ended).unwrap()).unwrap();
        assert_eq!(back, ended);
    }

    #[test]
    fn events_are_tagged_json() {
        let e = ChatEvent::ThreadDeleted {
            thread_id: ThreadId::random(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "thread_deleted");
        assert_eq!(serde_json::from_value::<ChatEvent>(json).unwrap(), e);
    }

    #[test]
    fn the_resync_a_tab_passes_on_is_the_one_the_stream_sends() {
        assert_eq!(
            serde_json::to_string(&ChatEvent::Resync).unwrap(),
            ChatEvent::RESYNC_JSON
        );
    }
}

// ---- chat settings and profiles -------------------------------------------------------------

/// A setting an assistant declares; the person sets it in the settings panel, and each
/// reply sees its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingSpec {
    /// The key the assistant reads the value by.
    pub id: String,
    /// What the panel calls it.
    pub label: String,
    /// A line of help under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Its control, the values it takes and its default.
    pub kind: SettingKind,
}

/// A setting's control, the values it takes, and its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SettingKind {
    /// One of `options` (by value).
    Select {
        /// The choices, in the order shown.
        options: Vec<Choice>,
        /// The `value` in effect until the person picks one.
        default: String,
    },
    /// A number from `min` to `max` in steps of `step`.
    Slider {
        /// The lowest value.
        min: f64,
        /// The highest value.
        max: f64,
        /// The spacing between allowed values.
        step: f64,
        /// The value in effect until the person moves it.
        default: f64,
    },
    /// On or off.
    Switch {
        /// Whether it is on until the person sets it.
        default: bool,
    },
    /// Free text of at most `max_chars` characters.
    Text {
        /// The text in effect until the person changes it.
        default: String,
        /// The most characters the text may have.
        max_chars: usize,
    },
}

/// One option of a select: `value` is what the assistant reads, `label` what is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// What the assistant reads when this is chosen.
    pub value: String,
    /// What the select shows.
    pub label: String,
}

/// What a person can choose to talk to (a model, a persona), with the starters its empty
/// chat offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// What the session's choice is kept as.
    pub id: String,
    /// What the picker shows.
    pub name: String,
    /// What the picker says of it (its tooltip).
    #[serde(default)]
    pub description: String,
    /// Suggestions its empty chat offers.
    #[serde(default)]
    pub starters: Vec<Starter>,
}

/// A suggestion on the empty chat: `label` is shown, `message` is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Starter {
    /// The suggestion's text on the empty chat.
    pub label: String,
    /// What is sent when it is clicked.
    pub message: String,
}

/// The settings panel's content: what the assistant offers and what this session chose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatSettings {
    /// What the person can choose to talk to, in picker order.
    pub profiles: Vec<Profile>,
    /// The chosen profile's id (the first profile until one is chosen).
    pub profile: Option<String>,
    /// The settings the assistant declares, in panel order.
    pub settings: Vec<SettingSpec>,
    /// Every setting's value, the defaults filled in.
    pub values: std::collections::BTreeMap<String, SettingValue>,
}

/// A setting's value as the page and the server exchange it: a select's or a text's string,
/// a slider's number, a switch's state. In JSON it is the bare value (`"shout"`, `0.7`,
/// `true`). Not `serde_json::Value`, whose decoder would weigh on every page load for
/// three shapes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// A switch.
    Switch(bool),
    /// A slider.
    Number(f64),
    /// A select's option or a text.
    Text(String),
}

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl serde::de::Visitor<'_> for Shape {
            type Value = SettingValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<SettingValue, E> {
                Ok(SettingValue::Switch(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<SettingValue, E> {
                Ok(SettingValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<SettingValue, E> {
                Ok(SettingValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<SettingValue, E> {
                Ok(SettingValue::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<SettingValue, E> {
                Ok(SettingValue::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<SettingValue, E> {
                Ok(SettingValue::Text(v))
            }
        }
        d.deserialize_any(Shape)
    }
}

impl SettingValue {
    /// The text, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }
    /// The number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }
    /// The state, if it is a switch's.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Switch(b) => Some(*b),
            _ => None,
        }
    }
}

/// What a chat is exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A Markdown transcript (`.md`), with each reply's steps.
    #[serde(alias = "md")]
    Markdown,
    /// The thread and its messages as stored, in JSON.
    Json,
}

// ---- accounts ------------------------------------------------------------------------------

/// How an account signs in. Its name is part of how the account's home id is derived
/// (`SessionId::home`), so the names never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignInMethod {
    /// A username and password kept by Confide.
    Password,
    /// An OpenID Connect identity provider.
    Oidc,
    /// A user a trusted reverse proxy vouches for in a header.
    Header,
}

impl SignInMethod {
    /// The method's fixed name, as serialised and as used to derive homes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Oidc => "oidc",
            Self::Header => "header",
        }
    }
}

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// What the account is called: the username, or the name the provider or proxy gave.
    pub name: String,
    /// How it signs in.
    pub method: SignInMethod,
}

/// An OpenID Connect provider, as a button on the sign-in page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderButton {
    /// The provider's short name, which the button asks to sign in with.
    pub id: String,
    /// The provider's label on the button.
    pub name: String,
}

/// What the sign-in page offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInOptions {
    /// Password sign-in is enabled.
    pub password: bool,
    /// Anyone may create a password account here (only with password sign-in).
    pub registration: bool,
    /// The OpenID Connect providers to offer.
    pub providers: Vec<ProviderButton>,
    /// The user a trusted proxy vouches for, when header sign-in is configured.
    pub header_user: Option<String>,
}

/// The answer to a successful sign-in: the browser must switch to this id (its proof came
/// as an HttpOnly cookie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The new session, bound to the account, that replaces the browser's old one.
    pub session_id: crate::SessionId,
    /// Who is now signed in.
    pub account: Account,
}

/// One session in "my sessions".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// Opaque handle for "end"; not the session id.
    pub handle: String,
    /// When the session signed in, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Its last verified request, in milliseconds since the Unix epoch (up to a minute behind).
    pub last_seen_ms: i64,
    /// "Chrome on Linux".
    pub agent: String,
    /// How it signed in.
    pub method: SignInMethod,
    /// Whether it is the session asking (this browser).
    pub current: bool,
}
