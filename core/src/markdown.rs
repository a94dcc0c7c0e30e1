//! Markdown to safe HTML, on the server only (the browser never parses markdown, which keeps
//! the wasm bundle small and puts one sanitiser in charge).
//!
//! Raw HTML in a message is shown as text, never interpreted; the rendered HTML then goes
//! through ammonia with a short allowlist, so no script, event handler or `javascript:` URL
//! survives whatever the markdown parser does.

use ammonia::Builder;
use linkify::{LinkFinder, LinkKind};
use pulldown_cmark::{CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};
use std::{collections::HashSet, sync::LazyLock};
use syntect::{
    html::{ClassStyle, ClassedHTMLGenerator},
    parsing::SyntaxSet,
    util::LinesWithEndings,
};

/// Code longer than this is shown unhighlighted, to bound the work per render.
const MAX_HIGHLIGHT_BYTES: usize = 32 * 1024;

static SYNTAXES: LazyLock<SyntaxSet> = LazyLock::new(SyntaxSet::load_defaults_newlines);

static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut b = Builder::default();
    b.add_tags(["div", "span", "button"])
        .rm_tags(["img"]) // remote images would leak the reader's address to any host
        .add_allowed_classes("div", ["code-block", "code-head"])
        .add_allowed_classes("button", ["copy-code"])
        .add_tag_attributes("button", ["type"])
        // The highlighter's spans carry one class per scope (`hl-keyword hl-rust`), too many
        // to list; they are let through by shape instead (see `span_class`).
        .add_tag_attributes("span", ["class"])
        .attribute_filter(|tag, attr, value| match (tag, attr) {
            ("span", "class") => span_class(value).map(Into::into),
            _ => Some(value.into()),
        })
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank");
    b
});

/// Keeps the classes of a `<span>` that the renderer itself writes: the code block's label
/// and the highlighter's `hl-` scopes. Anything else is dropped, and so is an empty list.
fn span_class(value: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split_ascii_whitespace()
        .filter(|c| {
            *c == "code-lang"
                || c.strip_prefix("hl-").is_some_and(|rest| {
                    !rest.is_empty()
                        && rest.bytes().all(|b| {
                            b.is_ascii_alphanumeric()
                                || matches!(b, b'-' | b'_' | b'+' | b'#' | b'.')
                        })
                })
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(" "))
}

/// Renders a message's markdown to sanitised HTML. Code blocks are highlighted, and the
/// highlighted HTML goes through the sanitiser with everything else: nothing is spliced in
/// after it, so no text of the message (a character reference included) can become markup
/// once the allow-list has been applied.
pub fn render(markdown: &str) -> String {
    plain(markdown).unwrap_or_else(|| render_full(markdown))
}

/// A line of plain prose (ASCII letters and digits, spaces and `,.?!'`, starting with a
/// letter) holds no markdown and nothing to escape, so its HTML is known without parsing
/// and sanitising: the common short message skips the most expensive work of a chat turn.
/// `plain_prose_renders_as_the_full_pipeline_would` holds this to `render_full`'s answer.
fn plain(markdown: &str) -> Option<String> {
    let b = markdown.as_bytes();
    let prose = b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.last().is_some_and(|&c| c != b' ')
        && b.iter().all(|&c| {
            c.is_ascii_alphanumeric() || matches!(c, b' ' | b',' | b'.' | b'?' | b'!' | b'\'')
        });
    prose.then(|| format!("<p>{markdown}</p>\n"))
}

fn render_full(markdown: &str) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut events: Vec<Event> = Vec::new();
    let mut code: Option<(String, String)> = None; // (language, text)
    // Text waiting to be searched for bare links: the parser may hand over one run of text
    // in several pieces (around `_`, `[` and the like), and a link can span them.
    let mut prose = String::new();
    let mut links_open = 0usize;
    for ev in Parser::new_ext(markdown, opts) {
        if !prose.is_empty() && !matches!(ev, Event::Text(_)) {
            linkify(&mut events, std::mem::take(&mut prose));
        }
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
                events.push(Event::Html(
                    code_block(&lang, &highlight(&lang, &text)).into(),
                ));
            }
            (Some(_), _) => {}
            // Raw HTML is content, not markup.
            (None, Event::Html(h) | Event::InlineHtml(h)) => events.push(Event::Text(h)),
            (None, Event::Text(t)) if links_open == 0 => prose.push_str(&t),
            (None, ev) => {
                match &ev {
                    Event::Start(Tag::Link { .. } | Tag::Image { .. }) => links_open += 1,
                    Event::End(TagEnd::Link | TagEnd::Image) => {
                        links_open = links_open.saturating_sub(1)
                    }
                    _ => {}
                }
                events.push(ev)
            }
        }
    }
    if !prose.is_empty() {
        linkify(&mut events, prose);
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    SANITIZER.clean(&out).to_string()
}

/// Text with the web addresses (`https://…`) and email addresses in it made links, as
/// chat readers expect; other schemes stay text (and the sanitiser would drop them).
fn linkify<'a>(events: &mut Vec<Event<'a>>, text: String) {
    static FINDER: LazyLock<LinkFinder> = LazyLock::new(LinkFinder::new);
    if FINDER.links(&text).next().is_none() {
        events.push(Event::Text(text.into()));
        return;
    }
    for piece in FINDER.spans(&text) {
        let shown = piece.as_str();
        let href = match piece.kind() {
            Some(LinkKind::Email) => format!("mailto:{shown}"),
            Some(LinkKind::Url) if web_address(shown) => shown.to_owned(),
            _ => {
                events.push(Event::Text(shown.to_owned().into()));
                continue;
            }
        };
        events.push(Event::Start(Tag::Link {
            link_type: LinkType::Autolink,
            dest_url: href.into(),
            title: CowStr::Borrowed(""),
            id: CowStr::Borrowed(""),
        }));
        events.push(Event::Text(shown.to_owned().into()));
        events.push(Event::End(TagEnd::Link));
    }
}

fn web_address(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    })
}

/// Highlighted HTML (`<span class="hl-…">`) for known languages, escaped text otherwise.
fn highlight(lang: &str, code: &str) -> String {
    let plain = || {
        let mut s = String::with_capacity(code.len());
        escape(&mut s, code);
        s
    };
    if lang.is_empty() || code.len() > MAX_HIGHLIGHT_BYTES {
        return plain();
    }
    let ss = &*SYNTAXES;
    let Some(syntax) = ss.find_syntax_by_token(lang) else {
        return plain();
    };
    let mut generator = ClassedHTMLGenerator::new_with_class_style(
        syntax,
        ss,
        ClassStyle::SpacedPrefixed { prefix: "hl-" },
    );
    for line in LinesWithEndings::from(code) {
        if generator
            .parse_html_for_line_which_includes_newline(line)
            .is_err()
        {
            return plain();
        }
    }
    generator.finalize()
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

/// `highlighted` is HTML from `highlight` (the code escaped, scopes as spans); the caller
/// sanitises the whole page after this.
fn code_block(lang: &str, highlighted: &str) -> String {
    let label = if lang.is_empty() { "text" } else { lang };
    format!(
        "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">{label}</span>\
         <button type=\"button\" class=\"copy-code\">Copy</button></div><pre><code>{highlighted}</code></pre></div>"
    )
}

fn escape(out: &mut String, text: &str) {
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
    use super::{plain, render, render_full};

    /// Every real tag in the output (text `<` is escaped, so each `<` opens one) must be on
    /// the allowlist and carry no handler and no script URL.
    fn assert_safe(input: &str) -> String {
        const ALLOWED: &[&str] = &[
            "p",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "strong",
            "em",
            "del",
            "a",
            "ul",
            "ol",
            "li",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
            "code",
            "pre",
            "div",
            "span",
            "button",
            "blockquote",
            "hr",
            "br",
        ];
        let html = render(input);
        let mut rest = html.as_str();
        while let Some(open) = rest.find('<') {
            let close = rest[open..]
                .find('>')
                .map(|c| open + c)
                .unwrap_or_else(|| panic!("unclosed tag in {html:?}"));
            let tag = rest[open + 1..close].to_ascii_lowercase();
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(
                ALLOWED.contains(&name.as_str()),
                "tag <{name}> survived in {html:?} (from {input:?})"
            );
            for bad in ["javascript:", "vbscript:", "data:", "style="] {
                assert!(!tag.contains(bad), "{bad} in <{tag}> (from {input:?})");
            }
            for attr in tag.split_whitespace().skip(1) {
                assert!(
                    !attr.starts_with("on"),
                    "handler {attr} in <{tag}> (from {input:?})"
                );
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
            "https://\u{E000}.example/\"onmouseover=\"alert(1) x@\u{E000}.example",
            "https://example.com/&#x22;onmouseover=&#x22;alert(1)",
            "https://example.com/%22%20onmouseover=%22alert(1)",
        ];
        for case in cases {
            assert_safe(case);
        }
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let html = assert_safe("<script>alert(1)</script>");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn ordinary_markdown_renders() {
        let html = assert_safe(
            "# Title\n\n**bold** and *it* and [site](https://example.com)\n\n- a\n- b\n\n| h |\n|---|\n| c |",
        );
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<a href=\"https://example.com\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">site</a>"), "{html}");
        assert!(html.contains("<li>a</li>"));
        assert!(html.contains("<table>"));
    }

    #[test]
    fn bare_web_and_email_addresses_become_links() {
        let link = |href: &str, text: &str| {
            format!(
                "<a href=\"{href}\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">{text}</a>"
            )
        };
        let cases = [
            (
                "see https://example.com/a_b_c/(x) now.",
                vec![link(
                    "https://example.com/a_b_c/(x)",
                    "https://example.com/a_b_c/(x)",
                )],
            ),
            (
                "HTTP://EXAMPLE.COM/Q?a=1&b=2, then",
                vec![link(
                    "HTTP://EXAMPLE.COM/Q?a=1&amp;b=2",
                    "HTTP://EXAMPLE.COM/Q?a=1&amp;b=2",
                )],
            ),
            (
                "write to help@example.com",
                vec![link("mailto:help@example.com", "help@example.com")],
            ),
            (
                "**https://example.com/bold** and _https://example.com/em_",
                vec![
                    link("https://example.com/bold", "https://example.com/bold"),
                    link("https://example.com/em", "https://example.com/em"),
                ],
            ),
        ];
        for (input, links) in cases {
            let html = assert_safe(input);
            for l in &links {
                assert!(html.contains(l.as_str()), "{l} missing from {html}");
            }
            assert_eq!(html.matches("<a ").count(), links.len(), "{html}");
        }
        // Text that is not a bare address in prose stays as it was.
        for (input, anchors) in [
            ("`https://example.com/in-code`", 0),
            ("```\nhttps://example.com/in-block\n```", 0),
            ("[named](https://example.com/x) https://example.com/y", 2),
            (
                "[https://example.com/inside](https://example.com/target)",
                1,
            ),
            ("<https://example.com/angle>", 1),
            ("javascript://example.com/%0Aalert(1)", 0),
            ("ftp://example.com/file", 0),
            ("data:text/html,<script>alert(1)</script>", 0),
            ("https://example.com/\"onmouseover=\"alert(1)", 1),
            ("https://example.com/&lt;script&gt;", 1),
        ] {
            let html = assert_safe(input);
            assert_eq!(html.matches("<a ").count(), anchors, "{input:?} -> {html}");
        }
        let html = assert_safe("[https://example.com/inside](https://example.com/target)");
        assert!(
            html.contains("href=\"https://example.com/target\""),
            "{html}"
        );
    }

    #[test]
    fn code_is_highlighted_and_stays_escaped() {
        let html = assert_safe(
            "```rust\nfn main() { let x = \"</code><script>\"; }\n```\n\n```python\n# c\n```",
        );
        assert!(html.contains("<span class=\"hl-"), "{html}");
        assert!(html.contains("&lt;/code&gt;&lt;script&gt;"), "{html}");
    }

    /// Private-use characters, typed or written as character references, are text like any
    /// other: they never turn into markup, never cut a message short, and never disturb the
    /// code blocks around them.
    #[test]
    fn private_use_characters_and_their_references_stay_text() {
        let fence = "\n\n```rust\nlet a = 1;\n```\n";
        let payloads = [
            "[x](https://ok.example/ \"&#xE000;\")&#xE000; \" onmouseover=\"alert(1)\" x=\"",
            "[x](javascript:alert(1) \"&#xE000;\")&#xE000; \" onmouseover=\"alert(1)\" x=\"",
            "[x](https://ok.example/ \"&#57344;\")&#57344;\" href=\"javascript:alert(1)\" x=\"",
            "[x](https://ok.example/ \"&#xe000;0&#xe000;\") tail",
            "\u{E000}0\u{E000} typed markers",
            "\u{E000}",
            "odd &#xE000; marker",
            "&#xE000;1&#xE000;&#xE000;0&#xE000;",
            "%EE%80%80 percent-encoded",
            "\u{F8FF}\u{FFFF}\u{10FFFD} other private and non-characters",
        ];
        for payload in payloads {
            for input in [
                payload.to_owned(),
                format!("{payload}{fence}"),
                format!("{fence}{payload}{fence}"),
            ] {
                let html = assert_safe(&input);
                let blocks = input.matches("```rust").count();
                assert_eq!(
                    html.matches("class=\"code-block\"").count(),
                    blocks,
                    "{html}"
                );
                assert_eq!(
                    html.matches("<span class=\"code-lang\">rust</span>")
                        .count(),
                    blocks,
                    "{html}"
                );
                // Outside tags the payload is just text (`assert_safe` checked every tag).
                for tag in html.split('<').skip(1).filter_map(|t| t.split('>').next()) {
                    assert!(!tag.contains("onmouseover"), "{tag} in {html}");
                }
            }
        }
        // Nothing is lost after an odd number of markers.
        let html = render("one \u{E000} two &#xE000; three\n\n```\nx\n```\n\nfour");
        for word in ["one", "two", "three", "four"] {
            assert!(html.contains(word), "{word} lost from {html}");
        }
        assert!(
            html.contains('\u{E000}'),
            "a typed private-use character is kept as text: {html}"
        );
    }

    #[test]
    fn only_renderer_classes_reach_a_span() {
        assert_eq!(
            super::span_class("hl-source hl-rust"),
            Some("hl-source hl-rust".into())
        );
        assert_eq!(super::span_class("code-lang"), Some("code-lang".into()));
        assert_eq!(super::span_class("hl- evil hl-x\"y"), None);
        assert_eq!(
            super::span_class("evil hl-keyword"),
            Some("hl-keyword".into())
        );
    }

    #[test]
    fn code_blocks_get_a_label_and_copy_button_and_stay_escaped() {
        let html = assert_safe("```rust\nfn main() { println!(\"<hi>\"); }\n```");
        assert!(
            html.contains("<span class=\"code-lang\">rust</span>"),
            "{html}"
        );
        assert!(
            html.contains("<button type=\"button\" class=\"copy-code\">Copy</button>"),
            "{html}"
        );
        assert!(html.contains("&lt;hi&gt;"), "{html}");
    }

    #[test]
    fn only_plain_prose_takes_the_shortcut() {
        for prose in [
            "Hello",
            "user12 turn3 abc",
            "Sure, I can help. Why not?",
            "It's done!",
        ] {
            assert!(plain(prose).is_some(), "{prose:?}");
        }
        for not in [
            "",
            "1. list",
            "- item",
            "a *b*",
            "a_b_",
            "two\nlines",
            "<b>x</b>",
            "a & b",
            "# head",
            "trailing ",
            " leading",
            "[link](x)",
            "a `code`",
            "x | y",
            "~~s~~",
            "caf\u{e9}",
            "a\\b",
            "> quote",
        ] {
            assert!(plain(not).is_none(), "{not:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2_000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]
        #[test]
        fn plain_prose_renders_as_the_full_pipeline_would(
            text in "[A-Za-z][A-Za-z0-9 ,.?!']{0,60}"
        ) {
            proptest::prop_assume!(!text.ends_with(' '));
            let fast = plain(&text);
            proptest::prop_assert!(fast.is_some());
            proptest::prop_assert_eq!(fast.unwrap(), render_full(&text));
        }
    }
}
