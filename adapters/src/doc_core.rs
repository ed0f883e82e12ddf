//! Document extraction: title, visible text, links, and a readability-style main-content
//! heuristic.
//!
//! This one file is compiled twice: into `riptide-adapters` (the native extractor and the WASM
//! adapter's fallback) and into the WebAssembly guest (`adapters/guest`, by `#[path]`). It
//! depends on nothing but `scraper` and `url`, so that both builds run the same code and agree.

use scraper::node::Node;
use scraper::{ElementRef, Html, Selector};
use std::fmt;
use std::sync::OnceLock;
use url::Url;

/// What [`extract_doc`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtractedDoc {
    /// The page's URL, as given (normalised by the URL parser).
    pub url: String,
    /// The `<title>` text, entities decoded and whitespace collapsed; `None` if absent or empty.
    pub title: Option<String>,
    /// Visible text, one block (paragraph, heading, list item, ...) per line. `Full`: the whole
    /// body; `Article`: the main content only; `Metadata`: the `<meta name="description">`.
    pub text: String,
    /// Every `<a href>` resolved against the page URL (and `<base href>`), in document order,
    /// without duplicates; `javascript:` links are dropped.
    pub links: Vec<String>,
}

/// How much of a page [`extract_doc`] extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExtractionMode {
    /// The main content: the best-scoring container by a readability-style heuristic.
    #[default]
    Article,
    /// All visible text (without `script`, `style`, `nav`, `footer`, `noscript`, `template`,
    /// and elements marked `hidden` or `aria-hidden="true"`).
    Full,
    /// Title, links and the meta description; no body text.
    Metadata,
}

/// Why [`extract_doc`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// The page URL does not parse as an absolute URL.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What the parser said.
        reason: String,
    },
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocError::InvalidUrl { url, reason } => write!(f, "invalid page URL {url:?}: {reason}"),
        }
    }
}

impl std::error::Error for DocError {}

/// Elements whose content is never visible text.
const INVISIBLE: &[&str] = &[
    "script", "style", "noscript", "template", "head", "nav", "footer", "svg", "iframe", "object",
    "button", "select", "form",
];

/// Elements that start a new line of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "aside",
    "header",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "pre",
    "blockquote",
    "table",
    "tr",
    "td",
    "th",
    "br",
    "hr",
    "figure",
    "figcaption",
    "details",
    "summary",
    "body",
];

struct Selectors {
    title: Selector,
    body: Selector,
    base: Selector,
    links: Selector,
    description: Selector,
    paragraphs: Selector,
}

fn selectors() -> &'static Selectors {
    static S: OnceLock<Selectors> = OnceLock::new();
    S.get_or_init(|| {
        // The selectors are constants; parsing them cannot fail.
        let p = |s: &str| Selector::parse(s).expect("constant selector");
        Selectors {
            title: p("title"),
            body: p("body"),
            base: p("base[href]"),
            links: p("a[href]"),
            description: p(r#"meta[name="description" i], meta[property="og:description"]"#),
            paragraphs: p("p, pre, li, td, blockquote, h2, h3"),
        }
    })
}

/// Extracts title, text and links from `html`, a page at `url`.
pub fn extract_doc(html: &str, url: &str, mode: ExtractionMode) -> Result<ExtractedDoc, DocError> {
    let page = Url::parse(url).map_err(|e| DocError::InvalidUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let doc = Html::parse_document(html);
    Ok(extract_parsed(&doc, page, mode))
}

/// [`extract_doc`] on an already parsed document.
pub fn extract_parsed(doc: &Html, page: Url, mode: ExtractionMode) -> ExtractedDoc {
    let s = selectors();
    let title = doc
        .select(&s.title)
        .next()
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let base = doc
        .select(&s.base)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| page.join(h).ok())
        .unwrap_or_else(|| page.clone());
    let mut links: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for a in doc.select(&s.links) {
        let href = a.value().attr("href").unwrap_or("").trim();
        if href.is_empty() || href.len() >= 11 && href[..11].eq_ignore_ascii_case("javascript:") {
            continue;
        }
        if let Ok(u) = base.join(href) {
            let u = String::from(u);
            if seen.insert(u.clone()) {
                links.push(u);
            }
        }
    }
    let root = doc
        .select(&s.body)
        .next()
        .unwrap_or_else(|| doc.root_element());
    let text = match mode {
        ExtractionMode::Full => visible_text(root),
        ExtractionMode::Article => visible_text(main_content(doc, root)),
        ExtractionMode::Metadata => doc
            .select(&s.description)
            .filter_map(|m| m.value().attr("content"))
            .map(collapse)
            .find(|d| !d.is_empty())
            .unwrap_or_default(),
    };
    ExtractedDoc {
        url: page.into(),
        title,
        text,
        links,
    }
}

/// Collapses runs of whitespace into one space and trims.
pub fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    collapse_into(s, &mut out);
    out
}

/// Appends `s` to `out` with whitespace runs collapsed and ends trimmed.
pub fn collapse_into(s: &str, out: &mut String) {
    let start = out.len();
    let mut space = false;
    for ch in s.chars() {
        if ch.is_whitespace() {
            space = out.len() > start;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(ch);
        }
    }
}

fn is_hidden(e: ElementRef<'_>) -> bool {
    let v = e.value();
    INVISIBLE.contains(&v.name())
        || v.attr("hidden").is_some()
        || v.attr("aria-hidden") == Some("true")
}

/// The visible text under `root`, one block per line.
pub fn visible_text(root: ElementRef<'_>) -> String {
    let mut lines = Lines::default();
    walk(root, &mut lines);
    lines.finish()
}

#[derive(Default)]
struct Lines {
    out: String,
    line: String,
}

impl Lines {
    fn text(&mut self, t: &str) {
        let space = |line: &mut String| {
            if !line.is_empty() && !line.ends_with(' ') {
                line.push(' ');
            }
        };
        if t.starts_with(char::is_whitespace) {
            space(&mut self.line);
        }
        collapse_into(t, &mut self.line);
        if t.ends_with(char::is_whitespace) {
            space(&mut self.line);
        }
    }

    fn break_line(&mut self) {
        let l = self.line.trim();
        if !l.is_empty() {
            if !self.out.is_empty() {
                self.out.push('\n');
            }
            self.out.push_str(l);
        }
        self.line.clear();
    }

    fn finish(mut self) -> String {
        self.break_line();
        self.out
    }
}

fn walk(e: ElementRef<'_>, lines: &mut Lines) {
    let block = BLOCKS.contains(&e.value().name());
    if block {
        lines.break_line();
    }
    for child in e.children() {
        match child.value() {
            Node::Text(t) => lines.text(t),
            Node::Element(_) => {
                if let Some(el) = ElementRef::wrap(child) {
                    if !is_hidden(el) {
                        walk(el, lines);
                    }
                }
            }
            _ => {}
        }
    }
    if block {
        lines.break_line();
    }
}

/// Class / id words that make a container likelier (positive) or unlikelier (negative) to be
/// the main content, in the spirit of readability.js.
fn hint_weight(e: ElementRef<'_>) -> i64 {
    const GOOD: &[&str] = &[
        "article", "content", "main", "post", "entry", "text", "body", "story",
    ];
    const BAD: &[&str] = &[
        "comment",
        "sidebar",
        "side",
        "nav",
        "menu",
        "footer",
        "header",
        "banner",
        "ad-",
        "promo",
        "related",
        "share",
        "social",
        "toc",
        "breadcrumb",
    ];
    let v = e.value();
    let hints = format!(
        "{} {}",
        v.attr("class").unwrap_or(""),
        v.attr("id").unwrap_or("")
    )
    .to_ascii_lowercase();
    let mut w = 0;
    if GOOD.iter().any(|g| hints.contains(g)) {
        w += 25;
    }
    if BAD.iter().any(|b| hints.contains(b)) {
        w -= 25;
    }
    match v.name() {
        "article" | "main" => w += 30,
        "section" | "div" => w += 5,
        "aside" | "header" | "ul" | "ol" | "table" => w -= 10,
        _ => {}
    }
    w
}

/// Length of the visible text under `e`, and the part of it inside links.
fn text_and_link_len(e: ElementRef<'_>) -> (usize, usize) {
    fn go(e: ElementRef<'_>, in_link: bool, acc: &mut (usize, usize)) {
        let in_link = in_link || e.value().name() == "a";
        for child in e.children() {
            match child.value() {
                Node::Text(t) => {
                    let n = t.split_whitespace().map(str::len).sum::<usize>();
                    acc.0 += n;
                    if in_link {
                        acc.1 += n;
                    }
                }
                Node::Element(_) => {
                    if let Some(el) = ElementRef::wrap(child) {
                        if !is_hidden(el) {
                            go(el, in_link, acc);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut acc = (0, 0);
    go(e, false, &mut acc);
    acc
}

/// The readability-style heuristic: every text block of 25+ characters scores its parent
/// (fully) and grandparent (half) by its length and commas; each candidate's score is then
/// weighted by its class/id hints and discounted by its link density. The best candidate wins;
/// with no candidate, the body.
pub fn main_content<'a>(doc: &'a Html, body: ElementRef<'a>) -> ElementRef<'a> {
    let s = selectors();
    // Keyed by node id, which the parser hands out in document order: ties go to the
    // earlier element, so the native and the WASM build always pick the same one.
    let mut scores = std::collections::BTreeMap::new();
    for p in doc.select(&s.paragraphs) {
        if p.ancestors().filter_map(ElementRef::wrap).any(is_hidden) {
            continue;
        }
        let text: String = p.text().collect();
        let len = text.split_whitespace().map(str::len).sum::<usize>();
        if len < 25 {
            continue;
        }
        let score = 1.0 + text.matches(',').count() as f64 + (len / 100).min(3) as f64;
        let mut ancestors = p.ancestors().filter_map(ElementRef::wrap);
        for share in [1.0, 0.5] {
            let Some(a) = ancestors.next() else { break };
            if a.value().name() == "html" {
                break;
            }
            let entry = scores
                .entry(a.id())
                .or_insert_with(|| (a, hint_weight(a) as f64));
            entry.1 += score * share;
        }
    }
    let mut best: Option<(ElementRef<'a>, f64)> = None;
    for (_, (e, score)) in scores {
        let (e, score): (ElementRef<'a>, f64) = (e, score);
        let (total, in_links) = text_and_link_len(e);
        let density = if total == 0 {
            1.0
        } else {
            in_links as f64 / total as f64
        };
        let score = score * (1.0 - density);
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((e, score));
        }
    }
    match best {
        Some((e, score)) if score > 0.0 => e,
        _ => body,
    }
}
