//! Incremental Server-Sent Events parser for model endpoints that stream with
//! `text/event-stream`. Bytes arrive in arbitrary pieces (a line, a UTF-8 character or a
//! `\r\n` may be split), so it buffers bytes until a blank line ends an event.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (the event's type); `None` when the event has none.
    pub event: Option<String>,
    /// The event's `data:` lines, joined with newlines.
    pub data: String,
}

/// Why a stream cannot be parsed any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An unfinished event grew past the limit (in bytes), so the stream is given up on
    /// rather than buffered without end.
    #[error("an event is larger than {0} bytes")]
    TooLarge(usize),
    /// A line is not valid UTF-8.
    #[error("the stream is not valid UTF-8")]
    NotUtf8,
}

/// Turns the pieces of a response body into complete events, whatever the pieces' bounds.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    max: usize,
    /// A `\r` ended the previous chunk: a `\n` starting the next one belongs to it.
    pending_cr: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

impl SseParser {
    /// A parser that refuses an event larger than `max_event_bytes`; the default allows 1 MiB.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            event: None,
            data: Vec::new(),
            max: max_event_bytes,
            pending_cr: false,
        }
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        let mut chunk = chunk;
        if self.pending_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.pending_cr = false;
        self.buf.extend_from_slice(chunk);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            let ended_with_cr = line.pop() == Some(b'\r');
            if ended_with_cr {
                match self.buf.first() {
                    Some(b'\n') => {
                        self.buf.remove(0);
                    }
                    None => self.pending_cr = true,
                    Some(_) => {}
                }
            }
            let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
            if let Some(ev) = self.line(&line) {
                out.push(ev);
            }
        }
        let pending: usize = self.buf.len() + self.data.iter().map(String::len).sum::<usize>();
        if pending > self.max {
            return Err(SseError::TooLarge(self.max));
        }
        Ok(out)
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event = None;
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent {
                event: self.event.take(),
                data,
            });
        }
        if line.starts_with(':') {
            return None; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields do not matter here
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c)?);
        }
        Ok(out)
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn whole_events() {
        let ev = all(&[b"data: one\n\ndata: two\n\n"]).unwrap();
        assert_eq!(data(&ev), ["one", "two"]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = "data: {\"a\":\"h\u{e9}llo \u{1F600}\"}\r\n\r\n: keep-alive\n\nevent: x\ndata: line1\ndata:line2\n\ndata: [DONE]\n\n".as_bytes();
        let want = all(&[stream]).unwrap();
        assert_eq!(
            data(&want),
            ["{\"a\":\"h\u{e9}llo \u{1F600}\"}", "line1\nline2", "[DONE]"]
        );
        assert_eq!(want[1].event.as_deref(), Some("x"));
        for i in 0..stream.len() {
            for j in i..stream.len() {
                let got = all(&[&stream[..i], &stream[i..j], &stream[j..]]).unwrap();
                assert_eq!(got, want, "split at {i}/{j}");
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let stream = b"data: a\r\rdata: b\r\n\r\ndata: c\n\n";
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for b in stream {
            out.extend(p.feed(&[*b]).unwrap());
        }
        assert_eq!(data(&out), ["a", "b", "c"]);
    }

    #[test]
    fn incomplete_event_is_not_emitted() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: partial").unwrap().is_empty());
        assert!(p.feed(b"\n").unwrap().is_empty());
        assert_eq!(data(&p.feed(b"\n").unwrap()), ["partial"]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert_eq!(all(&[b"data: \xff\xfe\n\n"]), Err(SseError::NotUtf8));
        let mut p = SseParser::new(16);
        assert_eq!(p.feed(&[b'x'; 64]), Err(SseError::TooLarge(16)));
        // Garbage without a field name is ignored, not fatal.
        assert_eq!(data(&all(&[b"nonsense\n\ndata: ok\n\n"]).unwrap()), ["ok"]);
    }
}
