#![no_main]
//! Any markdown: the rendered HTML never holds a script, an event handler or a script URL
//! inside a tag, and only allow-listed tags.
use libfuzzer_sys::fuzz_target;

const ALLOWED: &[&str] = &[
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "a", "ul", "ol", "li", "table", "thead", "tbody",
    "tr", "th", "td", "code", "pre", "div", "span", "button", "blockquote", "hr", "br",
];

fuzz_target!(|md: &str| {
    let html = app::server::markdown::render(md);
    let mut rest = html.as_str();
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').map(|c| open + c).expect("every tag is closed");
        let tag = rest[open + 1..close].to_ascii_lowercase();
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(ALLOWED.contains(&name.as_str()), "tag <{name}> in {html:?}");
        for bad in ["javascript:", "vbscript:", "data:", "style="] {
            assert!(!tag.contains(bad), "{bad} in <{tag}>");
        }
        for attr in tag.split_whitespace().skip(1) {
            assert!(!attr.starts_with("on"), "handler {attr} in <{tag}>");
        }
        rest = &rest[close + 1..];
    }
});
