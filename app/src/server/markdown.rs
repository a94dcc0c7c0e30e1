//! Markdown to safe HTML, on the server only (the browser never parses markdown, which keeps
//! the wasm bundle small and puts one sanitiser in charge).
//!
//! Raw HTML in a message is shown as text, never interpreted; the rendered HTML then goes
//! through ammonia with a short allowlist, so no script, event handler or `javascript:` URL
//! survives whatever the markdown parser does.

use ammonia::Builder;
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd, html};
use std::{collections::HashSet, sync::LazyLock};

static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut b = Builder::default();
    b.add_tags(["div", "span", "button"])
        .rm_tags(["img"]) // remote images would leak the reader's address to any host
        .add_allowed_classes("div", ["code-block", "code-head"])
        .add_allowed_classes("span", ["code-lang"])
        .add_allowed_classes("button", ["copy-code"])
        .add_tag_attributes("button", ["type"])
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank");
    b
});

/// Renders a message's markdown to sanitised HTML.
pub fn render(markdown: &str) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut events: Vec<Event> = Vec::new();
    let mut code: Option<(String, String)> = None; // (language, text)
    for ev in Parser::new_ext(markdown, opts) {
        match (&mut code, ev) {
            (None, Event::Start(Tag::CodeBlock(kind))) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => clean_lang(&info),
                    CodeBlockKind::Indented => String::new(),
                };
                code = Some((lang, String::new()));
            }
            (Some((_, text)), Event::Text(t)) => text.push_str(&t),
            (Some(_), Event::End(TagEnd::CodeBlock)) => {
                let (lang, text) = code.take().unwrap_or_default();
                events.push(Event::Html(code_block(&lang, &text).into()));
            }
            (Some(_), _) => {}
            // Raw HTML is content, not markup.
            (None, Event::Html(h) | Event::InlineHtml(h)) => events.push(Event::Text(h)),
            (None, ev) => events.push(ev),
        }
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    SANITIZER.clean(&out).to_string()
}

fn clean_lang(info: &str) -> String {
    info.split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '#' | '-' | '_' | '.'))
        .take(24)
        .collect()
}

fn code_block(lang: &str, text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    pulldown_cmark_escape(&mut escaped, text);
    let label = if lang.is_empty() { "text" } else { lang };
    format!(
        "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">{label}</span>\
         <button type=\"button\" class=\"copy-code\">Copy</button></div><pre><code>{escaped}</code></pre></div>"
    )
}

fn pulldown_cmark_escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    /// Every real tag in the output (text `<` is escaped, so each `<` opens one) must be on
    /// the allowlist and carry no handler and no script URL.
    fn assert_safe(input: &str) -> String {
        const ALLOWED: &[&str] = &[
            "p", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "a", "ul", "ol", "li", "table",
            "thead", "tbody", "tr", "th", "td", "code", "pre", "div", "span", "button", "blockquote", "hr", "br",
        ];
        let html = render(input);
        let mut rest = html.as_str();
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').map(|c| open + c).unwrap_or_else(|| panic!("unclosed tag in {html:?}"));
            let tag = rest[open + 1..close].to_ascii_lowercase();
            let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(ALLOWED.contains(&name.as_str()), "tag <{name}> survived in {html:?} (from {input:?})");
            for bad in ["javascript:", "vbscript:", "data:", "style="] {
                assert!(!tag.contains(bad), "{bad} in <{tag}> (from {input:?})");
            }
            for attr in tag.split_whitespace().skip(1) {
                assert!(!attr.starts_with("on"), "handler {attr} in <{tag}> (from {input:?})");
            }
            rest = &rest[close + 1..];
        }
        html
    }

    #[test]
    fn hostile_markdown_is_neutralised() {
        let cases = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<svg onload=alert(1)></svg>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<div onclick=\"alert(1)\">click</div>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](  javascript:alert(1))",
            "[x](java\tscript:alert(1))",
            "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "[x](vbscript:msgbox(1))",
            "![x](javascript:alert(1))",
            "![x](https://tracker.example/pixel.png)",
            "<javascript:alert(1)>",
            "[x]: javascript:alert(1)\n\n[link][x]",
            "<style>body{display:none}</style>",
            "<form action=https://evil.example><input></form>",
            "```\"><script>alert(1)</script>\n</code><script>alert(2)</script>\n```",
            "```js onload=alert(1)\nx\n```",
            "`<script>inline</script>`",
            "<object data=x></object><embed src=x>",
            "<a href=\"https://ok.example\" onmouseover=\"alert(1)\">ok</a>",
            "| a | b |\n|---|---|\n| <script>x</script> | <img src=x onerror=y> |",
        ];
        for case in cases {
            assert_safe(case);
        }
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let html = assert_safe("<script>alert(1)</script>");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    }

    #[test]
    fn ordinary_markdown_renders() {
        let html = assert_safe("# Title\n\n**bold** and *it* and [site](https://example.com)\n\n- a\n- b\n\n| h |\n|---|\n| c |");
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<a href=\"https://example.com\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">site</a>"), "{html}");
        assert!(html.contains("<li>a</li>"));
        assert!(html.contains("<table>"));
    }

    #[test]
    fn code_blocks_get_a_label_and_copy_button_and_stay_escaped() {
        let html = assert_safe("```rust\nfn main() { println!(\"<hi>\"); }\n```");
        assert!(html.contains("<span class=\"code-lang\">rust</span>"), "{html}");
        assert!(html.contains("<button type=\"button\" class=\"copy-code\">Copy</button>"), "{html}");
        assert!(html.contains("&lt;hi&gt;"), "{html}");
    }
}
