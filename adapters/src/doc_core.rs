//! Document extraction: title, visible text, headings, links, and a readability-style
//! main-content heuristic.
//!
//! Text and headings leave out what a reader does not see as the page's content, in the
//! spirit of readability.js: hidden elements, and the page's chrome (navigation, menus,
//! popups, sidebars; see [`skipped`]).
//!
//! This one file is compiled twice: into `riptide-adapters` (the native extractor and the WASM
//! adapter's fallback) and into the WebAssembly guest (`adapters/guest`, by `#[path]`). It
//! depends on nothing but `scraper` and `url` (and, natively, `stacker`: see [`deeper`]), so
//! that both builds run the same code and agree.

use scraper::node::Node;
use scraper::{ElementRef, Html, Selector};
use std::fmt;
use std::sync::OnceLock;
use url::Url;

/// Runs one level of a walk down the document tree. The walks recurse once per level of
/// nesting, and a page may nest as deep as it likes (the parser sets no limit): natively,
/// the stack grows onto the heap when little of it is left, so a page nested 200,000 deep
/// is walked on a 2 MiB thread instead of aborting the process. In the WebAssembly guest
/// the engine's stack limit applies: exhausting it is a trap, an error of that one call.
#[inline]
fn deeper<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(not(target_arch = "wasm32"))]
    {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
    }
    #[cfg(target_arch = "wasm32")]
    {
        f()
    }
}

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
    /// All visible text outside the page's chrome: without `script`, `style`, `noscript`,
    /// `template`, forms, hidden elements, navigation, menus, popups and sidebars.
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
    "script", "style", "noscript", "template", "head", "svg", "iframe", "object", "button",
    "select", "form", "dialog", "input", "textarea",
];

/// Elements that are page chrome wherever they are.
const CHROME_TAGS: &[&str] = &["nav", "aside", "footer", "menu"];

/// `role` values of landmarks and widgets that are not content (readability.js drops the
/// first six too).
const CHROME_ROLES: &[&str] = &[
    "navigation",
    "menu",
    "menubar",
    "complementary",
    "dialog",
    "alertdialog",
    "banner",
    "contentinfo",
    "search",
    "toolbar",
    "tooltip",
];

/// Class names that hide an element (CSS frameworks' and screen-reader-only conventions,
/// and print-only content).
const HIDDEN_CLASSES: &[&str] = &[
    "hidden",
    "hide",
    "invisible",
    "d-none",
    "sr-only",
    "visually-hidden",
    "visuallyhidden",
    "screen-reader-text",
    "print-only",
    "printonly",
    // rustdoc's "Expand description" toggle label, shown only while collapsed.
    "hideme",
];

/// Words in a class or id that mark chrome: popups, menus, sidebars, bars, breadcrumbs,
/// sharing and cookie banners, pagination, heading anchors, and what a page says not to
/// print. A word is a run of letters and digits (`mdbook-help-popup` has `popup`).
const CHROME_WORDS: &[&str] = &[
    "popup",
    "popover",
    "modal",
    "sidebar",
    "menu",
    "menubar",
    "navbar",
    "topbar",
    "toolbar",
    "breadcrumb",
    "breadcrumbs",
    "banner",
    "cookie",
    "cookies",
    "gdpr",
    "pagination",
    "pager",
    "share",
    "sharing",
    "social",
    "sponsor",
    "advert",
    "skip",
    "anchor",
    "headerlink",
    "permalink",
    "noprint",
];

/// Words that keep an element even if it also has a chrome word (`sidebar-content` is
/// kept, as readability.js's `okMaybeItsACandidate` does).
const CONTENT_WORDS: &[&str] = &["article", "main", "content", "body", "column"];

/// A list or container is link-dense, and left out of headings and article text, when it
/// has at least this many links and more than [`LINK_DENSE`] of its text is link text.
const LINK_DENSE_MIN_LINKS: usize = 3;
/// See [`LINK_DENSE_MIN_LINKS`].
const LINK_DENSE: f64 = 0.5;

/// Elements tested for link density: lists, where menus and "related pages" blocks live.
/// Other containers are not, since a block of prose or grammar with many cross-references
/// is content.
const LINK_DENSE_TAGS: &[&str] = &["ul", "ol", "dl", "menu"];

/// Elements whose text scores their container in [`main_content`].
const PARAGRAPHS: &[&str] = &["p", "pre", "li", "td", "blockquote", "h2", "h3"];

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

/// Whether `el` is part of a `<template>`'s content: inert, not the page's until a
/// script clones it in.
fn in_template(el: ElementRef<'_>) -> bool {
    el.ancestors()
        .filter_map(ElementRef::wrap)
        .any(|a| a.value().name() == "template")
}

/// [`extract_doc`] on an already parsed document.
#[must_use]
pub fn extract_parsed(doc: &Html, page: Url, mode: ExtractionMode) -> ExtractedDoc {
    let s = selectors();
    // The page's own `<title>`: an inline SVG's or MathML's `<title>` is a tooltip, and a
    // `<template>`'s content is inert (not part of the page until a script uses it).
    let title = doc
        .select(&s.title)
        .find(|t| {
            !t.ancestors()
                .filter_map(ElementRef::wrap)
                .any(|a| matches!(a.value().name(), "svg" | "math" | "template"))
        })
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    // As the HTML standard has it, a `<base>` that cannot serve as one (a `data:` or
    // `javascript:` URL, or one such as `mailto:` that nothing resolves against) leaves
    // links resolved against the page.
    let base = doc
        .select(&s.base)
        .find(|b| !in_template(*b))
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| page.join(h).ok())
        .filter(|b| !matches!(b.scheme(), "data" | "javascript") && !b.cannot_be_a_base())
        .unwrap_or_else(|| page.clone());
    let mut links: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for a in doc.select(&s.links).filter(|a| !in_template(*a)) {
        let href = a.value().attr("href").unwrap_or("").trim();
        if href.is_empty() {
            continue;
        }
        if let Ok(u) = base.join(href) {
            // The scheme of the parsed URL, not the text's first bytes: the URL parser
            // strips tabs, newlines and leading control characters (`java&#9;script:`), as
            // browsers do, and lower-cases the scheme.
            if u.scheme() == "javascript" {
                continue;
            }
            let u = String::from(u);
            if seen.insert(u.clone()) {
                links.push(u);
            }
        }
    }
    let root = body(doc);
    let text = match mode {
        ExtractionMode::Full => visible_text(root),
        ExtractionMode::Article => {
            // One memo for both walks: the article's elements are measured once.
            let m = Measures::default();
            article_text(main_content(root, &m), &m)
        }
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
#[must_use]
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

/// Not rendered: an invisible element, the `hidden` attribute, `aria-hidden="true"`, an
/// inline `display: none` or `visibility: hidden`, or a hiding class ([`HIDDEN_CLASSES`]).
fn is_hidden(e: ElementRef<'_>) -> bool {
    let v = e.value();
    if INVISIBLE.contains(&v.name())
        || v.attr("hidden").is_some()
        || v.attr("aria-hidden")
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("true"))
    {
        return true;
    }
    if let Some(style) = v.attr("style") {
        let style: String = style
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if style.contains("display:none") || style.contains("visibility:hidden") {
            return true;
        }
    }
    v.classes()
        .any(|c| HIDDEN_CLASSES.iter().any(|h| c.eq_ignore_ascii_case(h)))
}

/// Page chrome: a [`CHROME_TAGS`] element, a page-level `header` (one outside any
/// `article` or `main`), a [`CHROME_ROLES`] role, or a class, id (of a `div`, `span`, `ul` or
/// `ol`) or custom element name with a [`CHROME_WORDS`] word and no [`CONTENT_WORDS`] word (a
/// skip link's `skip` counts even next to `main-content`).
fn is_chrome(e: ElementRef<'_>) -> bool {
    let v = e.value();
    let name = v.name();
    // The page itself: mdBook marks `<html class="sidebar-visible">`.
    if matches!(name, "html" | "body") {
        return false;
    }
    if CHROME_TAGS.contains(&name) {
        return true;
    }
    if name == "header"
        && !e
            .ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| matches!(a.value().name(), "article" | "main"))
    {
        return true;
    }
    if v.attr("role").is_some_and(|r| {
        r.split_ascii_whitespace()
            .any(|r| CHROME_ROLES.iter().any(|c| r.eq_ignore_ascii_case(c)))
    }) {
        return true;
    }
    let (mut chrome, mut content, mut skip, mut target) = (false, false, false, false);
    // A custom element's own name counts too (rustdoc's `<rustdoc-topbar>`).
    let custom = Some(name).filter(|n| n.contains('-'));
    // Ids count only on plain containers: a heading's, section's or anchor's id is often a
    // slug of its text ("sharing-data", rustdoc's "method.skip"), not a name for chrome.
    let id = v
        .attr("id")
        .filter(|_| matches!(name, "div" | "span" | "ul" | "ol") || custom.is_some());
    let names = v.attr("class").into_iter().chain(id).chain(custom);
    for word in names.flat_map(|n| n.split(|c: char| !c.is_alphanumeric())) {
        let has = |list: &[&str]| list.iter().any(|w| word.eq_ignore_ascii_case(w));
        chrome |= has(CHROME_WORDS);
        content |= has(CONTENT_WORDS);
        skip |= word.eq_ignore_ascii_case("skip");
        target |= word.eq_ignore_ascii_case("target");
    }
    // A skip link ("skip-to-main-content") names the content it jumps to, so `skip` drops
    // it beside a content word; but not the content itself: a `main`, `article` or `body`
    // element, or the link's target ("skip-target").
    let skip_link = skip && !target && !matches!(name, "main" | "article" | "body");
    skip_link || chrome && !content
}

/// A list or container ([`LINK_DENSE_TAGS`]) that is mostly links: a menu, a link farm, a
/// "related pages" list. One that holds a heading is a section of the page, not a link
/// block, and is never link-dense.
fn is_link_dense(e: ElementRef<'_>, m: &Measures) -> bool {
    if !LINK_DENSE_TAGS.contains(&e.value().name()) {
        return false;
    }
    let t = m.of(e);
    !t.has_heading
        && t.links >= LINK_DENSE_MIN_LINKS
        && t.in_links as f64 > LINK_DENSE * t.total as f64
}

/// Whether text, headings and scoring leave `e` and everything under it out: it is hidden
/// (the `hidden` attribute, `aria-hidden="true"`, an inline `display: none` or
/// `visibility: hidden`, a hiding class such as `d-none` or `sr-only`, or an element that is
/// never text, like `script` or `dialog`), or it is page chrome (`nav`, `aside`, `footer`,
/// `menu`, a `header` outside any `article` or `main`, a landmark role such as `navigation`
/// or `banner`, or a class, container id or custom element name with a word such as `popup`,
/// `sidebar`, `menu`, `toolbar` or `breadcrumbs` and none such as `content` or `main`).
/// With `link_dense`, a list (`ul`, `ol`, `dl`, `menu`) of 3 or more links whose link text
/// is over half its text, and which holds no heading, is left out too: headings and article
/// text ask for that, the full text and the scoring of candidates do not.
#[must_use]
pub fn skipped(e: ElementRef<'_>, link_dense: bool) -> bool {
    skipped_in(e, link_dense, &Measures::default())
}

/// [`skipped`], measuring link density with `m`.
fn skipped_in(e: ElementRef<'_>, link_dense: bool, m: &Measures) -> bool {
    is_hidden(e) || is_chrome(e) || link_dense && is_link_dense(e, m)
}

/// The visible text under `root`, one block per line, without hidden elements and page
/// chrome ([`skipped`]).
#[must_use]
pub fn visible_text(root: ElementRef<'_>) -> String {
    let mut lines = Lines::default();
    walk(root, &mut lines, None, &Measures::default());
    lines.finish()
}

/// [`visible_text`] that also leaves out link-dense lists: the text of an article. When
/// that would leave less than half of the text, the lists are the content (an index, a list
/// of translations) and are kept.
fn article_text(root: ElementRef<'_>, m: &Measures) -> String {
    let (mut all, mut lean) = (Lines::default(), Lines::default());
    walk(root, &mut all, Some(&mut lean), m);
    let (all, lean) = (all.finish(), lean.finish());
    if lean.len() * 2 < all.len() {
        all
    } else {
        lean
    }
}

/// One heading of a page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Heading {
    /// 1 for `h1` … 6 for `h6`.
    pub level: u8,
    /// Its visible text, whitespace collapsed.
    pub text: String,
}

/// The headings (`h1`–`h6`) under `root` in document order, with their visible text, without
/// those in hidden elements, page chrome or link-dense blocks ([`skipped`]): on an mdBook
/// page, the chapter's headings and not the help popup's or the menu bar's. Headings with
/// no visible text are left out.
#[must_use]
pub fn headings(root: ElementRef<'_>) -> Vec<Heading> {
    fn go(e: ElementRef<'_>, out: &mut Vec<Heading>, m: &Measures) {
        for child in e.children().filter_map(ElementRef::wrap) {
            if skipped_in(child, true, m) {
                continue;
            }
            match heading_level(child.value().name()) {
                Some(level) => {
                    let mut lines = Lines::default();
                    walk(child, &mut lines, None, m);
                    let text = lines.finish().replace('\n', " ");
                    if !text.is_empty() {
                        out.push(Heading { level, text });
                    }
                }
                None => deeper(|| go(child, out, m)),
            }
        }
    }
    let mut out = Vec::new();
    let m = Measures::default();
    if !skipped_in(root, true, &m) {
        go(root, &mut out, &m);
    }
    out
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// [`headings`] of a whole document (its `body`).
#[must_use]
pub fn document_headings(doc: &Html) -> Vec<Heading> {
    headings(body(doc))
}

fn body(doc: &Html) -> ElementRef<'_> {
    doc.select(&selectors().body)
        .next()
        .unwrap_or_else(|| doc.root_element())
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

/// Writes the visible text under `e` to `all`, and to `lean` too outside link-dense lists
/// (one walk serves both, for [`article_text`]).
fn walk(e: ElementRef<'_>, all: &mut Lines, mut lean: Option<&mut Lines>, m: &Measures) {
    let block = BLOCKS.contains(&e.value().name());
    if block {
        all.break_line();
        if let Some(l) = lean.as_deref_mut() {
            l.break_line();
        }
    }
    for child in e.children() {
        match child.value() {
            Node::Text(t) => {
                all.text(t);
                if let Some(l) = lean.as_deref_mut() {
                    l.text(t);
                }
            }
            Node::Element(_) => {
                if let Some(el) = ElementRef::wrap(child) {
                    if !skipped(el, false) {
                        let lean = lean.as_deref_mut().filter(|_| !is_link_dense(el, m));
                        deeper(|| walk(el, all, lean, m));
                    }
                }
            }
            _ => {}
        }
    }
    if block {
        all.break_line();
        if let Some(l) = lean {
            l.break_line();
        }
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

/// How much visible text there is under an element, and how much of it is in links.
#[derive(Default, Clone, Copy)]
struct LinkText {
    /// Bytes of visible text, whitespace excluded.
    total: usize,
    /// The part of `total` inside `<a>` elements.
    in_links: usize,
    /// `<a href>` elements with visible text.
    links: usize,
    /// A visible `h1`–`h6` is among them.
    has_heading: bool,
}

/// [`LinkText`] of the elements of one document, each measured once: the walks ask for
/// the figures of nested containers (every list in a list, every candidate around a
/// paragraph), and measuring each from scratch would cost the square of the nesting.
#[derive(Default)]
struct Measures {
    /// By the address of the element's node, stable while the document is borrowed. A
    /// `BTreeMap`: a `HashMap`'s random seed would make the guest import WASI's random
    /// interface, which the host does not link.
    known: std::cell::RefCell<std::collections::BTreeMap<usize, LinkText>>,
}

impl Measures {
    /// The visible text under `e` and its link share (hidden elements and chrome left
    /// out), from its children's figures.
    fn of(&self, e: ElementRef<'_>) -> LinkText {
        let key = std::ptr::from_ref(e.value()).addr();
        if let Some(t) = self.known.borrow().get(&key) {
            return *t;
        }
        #[cfg(test)]
        tests::MEASURED.with(|n| n.set(n.get() + 1));
        let mut acc = LinkText::default();
        for child in e.children() {
            match child.value() {
                Node::Text(t) => acc.total += t.split_whitespace().map(str::len).sum::<usize>(),
                Node::Element(_) => {
                    let Some(el) = ElementRef::wrap(child) else {
                        continue;
                    };
                    if skipped(el, false) {
                        continue;
                    }
                    let t = deeper(|| self.of(el));
                    acc.has_heading |= t.has_heading || heading_level(el.value().name()).is_some();
                    acc.total += t.total;
                    if el.value().name() == "a" && el.value().attr("href").is_some() {
                        // All of a link's text is link text; links inside it are not
                        // counted apart.
                        acc.in_links += t.total;
                        acc.links += usize::from(t.total > 0);
                    } else {
                        acc.in_links += t.in_links;
                        acc.links += t.links;
                    }
                }
                _ => {}
            }
        }
        self.known.borrow_mut().insert(key, acc);
        acc
    }
}

/// The readability-style heuristic: every text block of 25+ characters scores its parent
/// (fully) and grandparent (half) by its length and commas; each candidate's score is then
/// weighted by its class/id hints and discounted by its link density. The best candidate wins;
/// with no candidate, the body.
/// Candidates are measured with `m`.
fn main_content<'a>(body: ElementRef<'a>, m: &Measures) -> ElementRef<'a> {
    fn visible_paragraphs<'a>(e: ElementRef<'a>, out: &mut Vec<ElementRef<'a>>) {
        for child in e.children().filter_map(ElementRef::wrap) {
            if !skipped(child, false) {
                if PARAGRAPHS.contains(&child.value().name()) {
                    out.push(child);
                }
                deeper(|| visible_paragraphs(child, out));
            }
        }
    }
    let mut paragraphs = Vec::new();
    visible_paragraphs(body, &mut paragraphs);
    // Keyed by node id, which the parser hands out in document order: ties go to the
    // earlier element, so the native and the WASM build always pick the same one.
    let mut scores = std::collections::BTreeMap::new();
    for p in paragraphs {
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
        let t = m.of(e);
        let density = if t.total == 0 {
            1.0
        } else {
            t.in_links as f64 / t.total as f64
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

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Elements measured from their children ([`Measures::of`] past its memo).
        pub(super) static MEASURED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Nested candidates (a paragraph in each of `depth` nested `div`s) and nested link
    /// lists: each element is measured once per walk that asks (the article, whose main
    /// content and text share one memo; the headings), never once per container around
    /// it, so the cost follows the document, not the square of its nesting.
    #[test]
    fn each_element_is_measured_once_per_walk_however_deep_the_nesting() {
        for depth in [10, 100, 1000] {
            let mut html = "<div><p>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, b</p>".repeat(depth);
            html +=
                &"<ul><li><a href='/x'>x</a> <a href='/y'>y</a> <a href='/z'>z</a>".repeat(depth);
            let doc = Html::parse_document(&html);
            let elements = doc.tree.nodes().filter(|n| n.value().is_element()).count();
            MEASURED.with(|n| n.set(0));
            let page = Url::parse("https://e.com/").unwrap();
            let article = extract_parsed(&doc, page, ExtractionMode::Article);
            assert!(article.text.contains("aaaa"), "{}", article.text);
            let _ = headings(body(&doc));
            let measured = MEASURED.with(std::cell::Cell::get);
            // One walk for the article (main content and its text share the memo), one
            // for the headings.
            assert!(
                measured <= 2 * elements,
                "depth {depth}: {measured} measures for {elements} elements"
            );
        }
    }
}
