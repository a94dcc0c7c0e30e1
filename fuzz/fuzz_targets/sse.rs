#![no_main]
//! The model-stream SSE parser: never a panic, and feeding the bytes in two pieces gives
//! the same events as feeding them whole.
use libfuzzer_sys::fuzz_target;
use server::assistant::sse::SseParser;

fuzz_target!(|input: (u16, &[u8])| {
    let (split, data) = input;
    let whole = SseParser::default().feed(data);
    let at = (split as usize) % (data.len() + 1);
    let mut p = SseParser::default();
    let pieces = p.feed(&data[..at]).and_then(|mut a| {
        a.extend(p.feed(&data[at..])?);
        Ok(a)
    });
    if let (Ok(w), Ok(s)) = (whole, pieces) {
        assert_eq!(w, s);
    }
});
