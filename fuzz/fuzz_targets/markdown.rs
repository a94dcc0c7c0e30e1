#![no_main]
//! Any markdown: the rendered HTML holds only allow-listed tags, no event handler or style
//! attribute, no class the renderer does not write, and no link or source whose scheme is not
//! http, https or mailto. Private-use characters and character references for them (once the
//! code-block placeholder) are part of the seeds.
use libfuzzer_sys::fuzz_target;

const ALLOWED: &[&str] = &[
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "a", "ul", "ol", "li", "table", "thead", "tbody",
    "tr", "th", "td", "code", "pre", "div", "span", "button", "blockquote", "hr", "br",
];

/// The attributes of one tag's inside (`a href="x" rel="y"`), as (name, value) pairs. The
/// serialiser always double-quotes values and escapes quotes inside them.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag.trim_start_matches('/');
    rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest == "/" {
            return out;
        }
        let name_end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"').expect("quoted values are closed");
                value = quoted[..end].to_owned();
                rest = &quoted[end + 1..];
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                value = after[..end].to_owned();
                rest = &after[end..];
            }
        }
        out.push((name, value));
    }
}

/// A URL's scheme as a browser reads it: tabs and newlines anywhere are dropped, C0 controls
/// and spaces around it trimmed, and a scheme is a letter then letters, digits, `+`, `-`, `.`
/// before the first colon; anything else (`javascr%60pt:x`) is a relative URL.
fn scheme(url: &str) -> Option<String> {
    let url: String = url.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let url = url.trim_matches(|c: char| c <= ' ');
    let colon = url.find(':')?;
    let s = &url[..colon];
    let valid = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| s.to_ascii_lowercase())
}

fuzz_target!(|md: &str| {
    let html = confide_core::markdown::render(md);
    let mut rest = html.as_str();
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').map(|c| open + c).expect("every tag is closed");
        let tag = &rest[open + 1..close];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(ALLOWED.contains(&name.as_str()), "tag <{name}> in {html:?}");
        for (attr, value) in attributes(tag) {
            assert!(!attr.starts_with("on"), "handler {attr} in <{tag}>");
            assert_ne!(attr, "style", "style attribute in <{tag}>");
            // Classes are the renderer's own: input that reaches a class could restyle or
            // disguise parts of the page (the code-block placeholder attacks went this way).
            if attr == "class" {
                let ok = |c: &str| {
                    matches!(c, "code-block" | "code-head" | "code-lang" | "copy-code") || c.starts_with("hl-")
                };
                assert!(value.split_ascii_whitespace().all(ok), "class {value:?} in <{tag}>");
            }
            if matches!(attr.as_str(), "href" | "src" | "action" | "formaction") {
                let s = scheme(&value.replace("&amp;", "&"));
                assert!(
                    s.as_deref().is_none_or(|s| matches!(s, "http" | "https" | "mailto")),
                    "{attr} with scheme {s:?} in <{tag}>"
                );
            }
        }
        rest = &rest[close + 1..];
    }
});
