//! The native extractor pool on real HTML (the toolchain's own docs) and on small fixtures
//! for the edge cases.

use riptide_adapters::corpus::{book_pages, file_url, html_files, rust_docs};
use riptide_adapters::native::{NativeExtractorPool, NativeExtractorType, NativePoolConfig};
use riptide_adapters::{ConfigError, ExtractError, ExtractionMode, Heading};
use std::time::Duration;

fn pool(max: usize) -> NativeExtractorPool {
    let mut c = NativePoolConfig::default();
    c.min_pool_size = 0;
    c.max_pool_size = max;
    NativeExtractorPool::new(c).unwrap()
}

/// The first segment of a book page's title ("What is Ownership? - The Rust Programming
/// Language" → "what is ownership?").
fn title_head(html: &str) -> String {
    let t = html
        .split("<title>")
        .nth(1)
        .unwrap()
        .split("</title>")
        .next()
        .unwrap();
    t.split(" - ").next().unwrap().trim().to_lowercase()
}

#[tokio::test]
async fn css_headings_of_real_book_pages_match_their_titles() {
    let pool = pool(2);
    let pages = book_pages(40);
    assert!(pages.len() >= 40, "the book has chapters");
    for (path, html) in &pages {
        let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
        let heads = css.extract(html, "main h1, main h2").unwrap();
        assert!(!heads.is_empty(), "{} has headings", path.display());
        let head = heads[0].to_lowercase().replace('’', "'");
        let title = title_head(html)
            .replace("&#x27;", "'")
            .replace("&amp;", "&");
        assert_eq!(head, title.replace('’', "'"), "{}", path.display());
    }
    let m = pool.metrics();
    assert_eq!(m.extractions, 40);
    assert_eq!(m.errors, 0);
    assert!(m.css_total <= 2 && m.css_in_use == 0);
}

#[tokio::test]
async fn regex_matches_agree_with_a_plain_substring_count() {
    let pool = pool(2);
    for (path, html) in book_pages(25) {
        let mut re = pool.checkout(NativeExtractorType::Regex).await.unwrap();
        let found = re.extract(&html, "Rust").unwrap();
        assert_eq!(
            found.len(),
            html.matches("Rust").count(),
            "{}",
            path.display()
        );
        let years = re.extract(&html, r"\b(19|20)\d{2}\b").unwrap();
        assert!(years
            .iter()
            .all(|y| y.len() == 4 && (y.starts_with("19") || y.starts_with("20"))));
    }
}

#[tokio::test]
async fn a_hot_query_is_compiled_once_and_reset_keeps_the_cache() {
    let pool = pool(1);
    let (_, html) = book_pages(1).pop().unwrap();
    {
        let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
        css.extract(&html, "p").unwrap();
        css.extract(&html, "p").unwrap();
        assert_eq!(css.extractions_this_checkout(), 2);
    }
    let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
    assert_eq!(
        css.extractions_this_checkout(),
        0,
        "reset clears per-use state"
    );
    assert_eq!(
        css.lifetime_extractions(),
        2,
        "the same extractor came back"
    );
    assert_eq!(css.cached_queries(), 1, "reset keeps the cache");
    css.extract(&html, "p").unwrap();
    let m = pool.metrics();
    assert_eq!((m.cache_misses, m.cache_hits), (1, 2));
    assert!((m.cache_hit_rate - 2.0 / 3.0).abs() < 1e-9);
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let mut c = NativePoolConfig::default();
    c.cache_capacity = 3;
    let pool = NativeExtractorPool::new(c).unwrap();
    let mut re = pool.checkout(NativeExtractorType::Regex).await.unwrap();
    for i in 0..10 {
        re.extract("a1 a2 a3", &format!("a{i}")).unwrap();
    }
    assert_eq!(re.cached_queries(), 3);
}

/// A compiled regex is bounded in size (`max_regex_bytes`): a short pattern whose program
/// is huge is refused as the typed error, so a cache of user-supplied patterns cannot pin
/// gigabytes; the extractor stays usable, and a larger limit admits the pattern.
#[tokio::test]
async fn a_regex_past_its_size_limit_is_a_typed_error() {
    let pool = pool(1);
    let mut re = pool.checkout(NativeExtractorType::Regex).await.unwrap();
    match re.extract("hello world", r"\w{200}x") {
        Err(ExtractError::InvalidRegex { pattern, reason }) => {
            assert_eq!(pattern, r"\w{200}x");
            assert!(reason.contains("size limit"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(re.cached_queries(), 0);
    assert_eq!(
        re.extract("hello world", r"\w+").unwrap(),
        ["hello", "world"]
    );
    let mut c = NativePoolConfig::default();
    c.max_regex_bytes = 64 << 20;
    let big = NativeExtractorPool::new(c).unwrap();
    let mut re = big.checkout(NativeExtractorType::Regex).await.unwrap();
    assert!(re.extract("hello world", r"\w{200}x").unwrap().is_empty());
    let mut c = NativePoolConfig::default();
    c.max_regex_bytes = 10;
    assert!(matches!(
        NativeExtractorPool::new(c),
        Err(ConfigError::Invalid {
            field: "max_regex_bytes",
            ..
        })
    ));
}

#[tokio::test]
async fn bad_input_is_a_named_error_and_the_extractor_stays_healthy() {
    let pool = pool(1);
    let mut c = NativePoolConfig::default();
    c.max_document_bytes = 64;
    let small = NativeExtractorPool::new(c).unwrap();
    {
        let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
        match css.extract("<p>x</p>", "p[[") {
            Err(ExtractError::InvalidSelector { selector, .. }) => assert_eq!(selector, "p[["),
            other => panic!("{other:?}"),
        }
        assert_eq!(css.extract("<p>x</p>", "p").unwrap(), ["x"], "still usable");
        match css.extract_bytes(b"<p>\xff</p>", "p") {
            Err(ExtractError::NotUtf8 { valid_up_to: 3 }) => {}
            other => panic!("{other:?}"),
        }
        // Every call counts, the failed ones too, whichever of them failed.
        assert_eq!(css.extractions_this_checkout(), 3);
        assert_eq!(css.lifetime_extractions(), 3);
    }
    {
        let mut re = pool.checkout(NativeExtractorType::Regex).await.unwrap();
        let e = re.extract("x", "(unclosed").unwrap_err();
        assert!(matches!(&e, ExtractError::InvalidRegex { pattern, .. } if pattern == "(unclosed"));
        assert!(e.to_string().contains("(unclosed"), "{e}");
    }
    let mut big = small.checkout(NativeExtractorType::Css).await.unwrap();
    match big.extract(&"x".repeat(65), "p") {
        Err(ExtractError::TooLarge {
            size: 65,
            limit: 64,
        }) => {}
        other => panic!("{other:?}"),
    }
    drop(big);
    match pool.extract_doc("<title>t</title>", "not a url") {
        Err(ExtractError::InvalidUrl { url, .. }) => assert_eq!(url, "not a url"),
        other => panic!("{other:?}"),
    }
    // Nothing was destroyed: every extractor went back healthy.
    for p in [&pool, &small] {
        for kind in [NativeExtractorType::Css, NativeExtractorType::Regex] {
            let s = p.pool(kind).stats();
            assert_eq!((s.destroyed, s.in_use), (0, 0), "{kind:?}");
        }
    }
    let m = pool.metrics();
    assert_eq!((m.errors, m.doc_errors), (3, 1));
}

#[tokio::test]
async fn health_checks_retire_an_extractor_bloated_by_a_huge_match() {
    let huge = format!("<p>{}</p><p>small</p>", "x".repeat(2 << 20));
    for checks in [true, false] {
        let mut c = NativePoolConfig::default();
        c.min_pool_size = 0;
        c.health_checks = checks;
        let pool = NativeExtractorPool::new(c).unwrap();
        let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
        let got = css.extract(&huge, "p").unwrap();
        assert_eq!((got[0].len(), got[1].as_str()), (2 << 20, "small"));
        drop(css);
        let s = pool.pool(NativeExtractorType::Css).stats();
        // On: destroyed on return. Off: kept, with its buffer dropped by `reset`.
        assert_eq!(
            (s.destroyed, s.idle),
            if checks { (1, 0) } else { (0, 1) },
            "checks {checks}"
        );
        let css = pool.checkout(NativeExtractorType::Css).await.unwrap();
        assert_eq!(css.lifetime_extractions(), if checks { 0 } else { 1 });
    }
}

#[tokio::test]
async fn metrics_count_in_use_and_total_per_kind() {
    let pool = pool(4);
    let a = pool.checkout(NativeExtractorType::Css).await.unwrap();
    let b = pool.checkout(NativeExtractorType::Css).await.unwrap();
    let c = pool.checkout(NativeExtractorType::Regex).await.unwrap();
    let m = pool.metrics();
    assert_eq!(
        (m.css_in_use, m.css_total, m.regex_in_use, m.regex_total),
        (2, 2, 1, 1)
    );
    drop((a, b, c));
    let m = pool.metrics();
    assert_eq!((m.css_in_use, m.css_total, m.regex_in_use), (0, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_a_small_pool_and_get_the_sequential_answers() {
    let pool = pool(3);
    let pages = std::sync::Arc::new(book_pages(30));
    let mut expected = Vec::new();
    {
        let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
        for (_, html) in pages.iter() {
            expected.push(css.extract(html, "h2, h3").unwrap());
        }
    }
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (pool, pages) = (pool.clone(), pages.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (0..pages.len()).map(|i| (i + t) % pages.len()) {
                let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
                out.push((i, css.extract(&pages[i].1, "h2, h3").unwrap()));
            }
            out
        }));
    }
    for t in tasks {
        for (i, heads) in t.await.unwrap() {
            assert_eq!(heads, expected[i]);
        }
    }
    let s = pool.pool(NativeExtractorType::Css).stats();
    assert!(
        s.size <= 3 && s.in_use == 0 && s.pending_acquisitions == 0,
        "{s:?}"
    );
}

#[tokio::test]
async fn extract_doc_on_real_pages() {
    let pool = pool(1);
    // The first 40 chapters, and every chapter whose title has an entity in its source.
    let pages: Vec<_> = book_pages(usize::MAX)
        .into_iter()
        .enumerate()
        .filter(|(i, (_, html))| *i < 40 || title_has_entity(html))
        .map(|(_, p)| p)
        .collect();
    let mut decoded = 0;
    for (path, html) in &pages {
        let url = file_url(path);
        let full = pool
            .extract_doc_with(html, &url, ExtractionMode::Full)
            .unwrap();
        let article = pool.extract_doc(html, &url).unwrap();
        let title = full.title.clone().expect("every book page has a title");
        assert!(
            title.ends_with(" - The Rust Programming Language"),
            "{title}"
        );
        assert!(
            !title.contains("&amp;") && !title.contains("&#x27;"),
            "decoded: {title}"
        );
        if title_has_entity(html) {
            let raw = html
                .split("<title>")
                .nth(1)
                .unwrap()
                .split("</title>")
                .next()
                .unwrap();
            let by_hand = raw
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#x27;", "'")
                .replace("&quot;", "\"")
                .replace("&amp;", "&");
            assert_eq!(title, by_hand.trim());
            decoded += 1;
        }
        assert_eq!(article.title, full.title);
        // Script bodies and the navigation sidebar are not visible text.
        assert!(
            !full.text.contains("window.") && !full.text.contains("localStorage"),
            "{}",
            path.display()
        );
        // The article is the chapter: no longer than the full text (which has no chrome
        // either), and it holds the chapter's first heading.
        assert!(article.text.len() <= full.text.len(), "{}", path.display());
        let first_heading = pool
            .checkout(NativeExtractorType::Css)
            .await
            .unwrap()
            .extract(html, "main h1, main h2")
            .unwrap()
            .swap_remove(0);
        assert_eq!(
            article.text.lines().next(),
            Some(first_heading.as_str()),
            "{}: the article starts at the chapter heading",
            path.display()
        );
        // Links are absolute and resolved against the page.
        assert!(!full.links.is_empty());
        for l in &full.links {
            assert!(url::Url::parse(l).is_ok(), "{l}");
        }
        assert!(full
            .links
            .iter()
            .any(|l| l.starts_with("file:///") && l.contains("/book/")));
    }
    assert!(decoded > 0, "the sample includes titles with entities");
}

fn title_has_entity(html: &str) -> bool {
    let t = html
        .split("<title>")
        .nth(1)
        .unwrap()
        .split("</title>")
        .next()
        .unwrap();
    t.contains('&')
}

#[test]
fn extract_doc_edge_cases() {
    let pool = pool(1);
    let html = r#"<!doctype html><html><head>
        <title>  Fish &amp; Chips &lt;3  </title>
        <meta name="description" content="  A page  about food. ">
        <base href="https://example.com/docs/">
        <style>p { color: red }</style><script>var secret = 1;</script></head>
        <body><nav><a href="/home">Home</a> <a href="javascript:alert(1)">x</a></nav>
        <div class="sidebar"><a href="a.html">A</a> <a href="b.html">B</a> <a href="a.html">A again</a></div>
        <div class="intro">Fish <a href="fish.html">and</a> <i>chips</i></div>
        <article><h1>Frying</h1><p>First, heat the oil, then add the fish, slowly, carefully, one piece at a time.</p>
        <p>Second, <b>drain</b> the chips, season them, and serve them hot with salt and vinegar.</p>
        <p hidden>never shown</p><span aria-hidden="true">icon</span></article>
        <footer>© someone</footer><noscript>enable js</noscript></body></html>"#;
    let full = pool
        .extract_doc_with(html, "https://other.org/x", ExtractionMode::Full)
        .unwrap();
    assert_eq!(full.title.as_deref(), Some("Fish & Chips <3"));
    assert_eq!(
        full.links,
        [
            "https://example.com/home",
            "https://example.com/docs/a.html",
            "https://example.com/docs/b.html",
            "https://example.com/docs/fish.html"
        ],
        "every link, the sidebar's too: resolved against <base>, javascript: dropped, \
         deduplicated"
    );
    for gone in [
        "secret",
        "color",
        "Home",
        "©",
        "enable js",
        "never shown",
        "icon",
        "A again",
    ] {
        assert!(!full.text.contains(gone), "{gone:?} in {:?}", full.text);
    }
    assert!(
        full.text.contains("Second, drain the chips"),
        "inline elements join: {:?}",
        full.text
    );
    assert!(full.text.contains("Fish and chips"), "{:?}", full.text);
    let article = pool.extract_doc(html, "https://other.org/x").unwrap();
    assert!(
        article.text.starts_with("Frying\nFirst, heat the oil"),
        "{:?}",
        article.text
    );
    assert!(
        !article.text.contains("A again"),
        "the sidebar is not the article"
    );
    let meta = pool
        .extract_doc_with(html, "https://other.org/x", ExtractionMode::Metadata)
        .unwrap();
    assert_eq!(meta.text, "A page about food.");
    assert_eq!(meta.url, "https://other.org/x");
    let bare = pool
        .extract_doc("<p>no title</p>", "https://e.com")
        .unwrap();
    assert_eq!(bare.title, None);
    assert_eq!(bare.text, "no title");
    assert_eq!(bare.url, "https://e.com/");
    match pool.extract_doc_bytes(b"\xc3\x28", "https://e.com", ExtractionMode::Full) {
        Err(ExtractError::NotUtf8 { valid_up_to: 0 }) => {}
        other => panic!("{other:?}"),
    }
    // A `<base>` nothing can resolve against (data:, javascript:, mailto:) leaves links
    // resolved against the page, as browsers do.
    for base in ["data:text/html,x", "javascript:void(0)", "mailto:a@b.c"] {
        let html = format!("<base href='{base}'><a href='/a'>a</a><a href='b'>b</a>");
        let doc = pool.extract_doc(&html, "https://e.com/p/").unwrap();
        assert_eq!(
            doc.links,
            ["https://e.com/a", "https://e.com/p/b"],
            "{base}"
        );
    }
    // An inline SVG's `<title>` (a tooltip) is not the page's, alone or beside it.
    let svg = "<body><svg><title>Search icon</title></svg><p>x</p></body>";
    assert_eq!(pool.extract_doc(svg, "https://e.com").unwrap().title, None);
    let both = format!("<head><title>Page</title></head>{svg}");
    assert_eq!(
        pool.extract_doc(&both, "https://e.com")
            .unwrap()
            .title
            .as_deref(),
        Some("Page")
    );
}

/// The chrome every mdBook page carries: the keyboard-shortcuts popup, the theme menu, the
/// search bar (and the menu bar's book title, checked apart since the book names itself).
const MDBOOK_CHROME: &[&str] = &[
    "Keyboard shortcuts",
    "Press ← or → to navigate",
    "Navy",
    "Search this book",
];

#[tokio::test]
async fn headings_of_the_book_are_the_chapters_own() {
    let pool = pool(1);
    let mut css = pool.checkout(NativeExtractorType::Css).await.unwrap();
    let mut with_headings = 0;
    // The chapters: the first edition's redirect stubs (also `ch*.html`) have no <main>.
    let chapters = book_pages(usize::MAX)
        .into_iter()
        .filter(|(_, html)| html.contains("<main>"));
    for (path, html) in chapters {
        let got = pool.headings(&html).unwrap();
        // The chapter is what mdBook puts in <main>: exactly its headings, in order.
        let main = css
            .extract(
                &html,
                "main h1, main h2, main h3, main h4, main h5, main h6",
            )
            .unwrap();
        let texts: Vec<&str> = got.iter().map(|h| h.text.as_str()).collect();
        assert_eq!(texts, main, "{}", path.display());
        if !got.is_empty() {
            with_headings += 1;
        }
        for h in &got {
            assert!(
                !MDBOOK_CHROME.iter().any(|c| h.text.contains(c)),
                "{}: {h:?} is page chrome",
                path.display()
            );
        }
        // The article and the full text leave the chrome out too, and start at the
        // chapter, not at the menu bar's book title.
        let url = file_url(&path);
        for mode in [ExtractionMode::Article, ExtractionMode::Full] {
            let doc = pool.extract_doc_with(&html, &url, mode).unwrap();
            for c in MDBOOK_CHROME {
                assert!(
                    !doc.text.contains(c),
                    "{} ({mode:?}) has {c:?}",
                    path.display()
                );
            }
            if let Some(first) = got.first() {
                assert_eq!(
                    doc.text.lines().next(),
                    Some(first.text.as_str()),
                    "{} ({mode:?})",
                    path.display()
                );
            }
        }
    }
    assert!(
        with_headings >= 100,
        "{with_headings} chapters with headings"
    );
}

/// rustdoc pages of the standard library: `(path, html)` of the item pages in `dirs`.
fn std_pages(dirs: &[&str]) -> Vec<(std::path::PathBuf, String)> {
    let root = rust_docs().unwrap();
    let mut out = Vec::new();
    for d in dirs {
        for p in html_files(&root.join(d)).unwrap() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("struct.")
                || name.starts_with("enum.")
                || name.starts_with("trait.")
            {
                let html = std::fs::read_to_string(&p).unwrap();
                out.push((p, html));
            }
        }
    }
    out
}

#[test]
fn std_docs_lose_their_chrome() {
    let pool = pool(1);
    let pages = std_pages(&["std/vec", "std/collections", "std/sync"]);
    assert!(pages.len() >= 30, "{} pages", pages.len());
    for (path, html) in &pages {
        // "Vec in std::vec - Rust": the item's name.
        let name = html
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .unwrap();
        let kind = match path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .split('.')
            .next()
        {
            Some("struct") => "Struct",
            Some("enum") => "Enum",
            _ => "Trait",
        };
        let heads = pool.headings(html).unwrap();
        // Not the mobile top bar's bare name, nor the sidebar's sections.
        assert_eq!(
            heads.first(),
            Some(&Heading {
                level: 1,
                text: format!("{kind} {name}")
            }),
            "{}",
            path.display()
        );
        assert!(
            heads.iter().all(|h| !h.text.contains('§')),
            "heading anchors are chrome: {}",
            path.display()
        );
        let url = file_url(path);
        let article = pool.extract_doc(html, &url).unwrap();
        let full = pool
            .extract_doc_with(html, &url, ExtractionMode::Full)
            .unwrap();
        for chrome in [
            "Skip to main content",
            "Copy item path",
            "Expand description",
        ] {
            assert!(
                !article.text.contains(chrome) && !full.text.contains(chrome),
                "{}: {chrome:?}",
                path.display()
            );
        }
        assert_eq!(
            full.text.lines().next(),
            Some(format!("{kind} {name}").as_str()),
            "{}: the breadcrumbs and the sidebar are chrome",
            path.display()
        );
    }
}

#[test]
fn each_kind_of_chrome_is_skipped() {
    let pool = pool(1);
    let html = r##"<html class="sidebar-visible"><body>
        <div id="site-help-popup"><h2>Keyboard help</h2><p>Press ? for help.</p></div>
        <header><h1>Site name</h1></header>
        <div class="menu-bar"><h1 class="menu-title">Menu title</h1></div>
        <site-topbar><h2>Top bar</h2></site-topbar>
        <a class="skip-to-main-content" href="#main">Skip to main content</a>
        <div role="navigation"><h2>Role nav</h2></div>
        <div class="d-none"><h2>Hidden by class</h2></div>
        <div style="display: none"><h2>Hidden by style</h2></div>
        <div style="visibility:hidden"><h2>Invisible by style</h2></div>
        <div aria-hidden="TRUE"><h2>Aria hidden</h2></div>
        <div class="print-only"><h2>Print only</h2></div>
        <dialog><h2>A dialog</h2></dialog>
        <aside><h2>An aside</h2></aside>
        <main id="main">
          <article>
            <header><h1>The article</h1></header>
            <p>The first paragraph of the article, with enough words, commas, and clauses to count.</p>
            <h2>Section <a class="anchor" href="#s">¶</a></h2>
            <p>A second paragraph of the article, also long enough, with commas, to score well.</p>
            <ul><li><a href="/1">one</a></li><li><a href="/2">two</a></li><li><a href="/3">three</a></li></ul>
            <div class="sidebar-content"><h3>Kept: a content word wins</h3></div>
            <h3><a href="/linked">A linked heading</a></h3>
          </article>
        </main>
        <ul class="related"><li><h3><a href="/r1">Related one</a></h3></li><li><a href="/r2">Related two</a></li><li><a href="/r3">Related three</a></li></ul>
        <footer><h2>Footer</h2></footer>
        </body></html>"##;
    let heads: Vec<String> = pool
        .headings(html)
        .unwrap()
        .into_iter()
        .map(|h| format!("h{} {}", h.level, h.text))
        .collect();
    assert_eq!(
        heads,
        [
            "h1 The article",
            "h2 Section",
            "h3 Kept: a content word wins",
            "h3 A linked heading",
            "h3 Related one"
        ],
        "a list that holds a heading is a section, not a link block"
    );
    let article = pool.extract_doc(html, "https://e.com/").unwrap().text;
    assert!(
        article.starts_with("The article\nThe first paragraph"),
        "{article:?}"
    );
    assert!(
        !article.contains("one\ntwo"),
        "a link-dense list is not article text: {article:?}"
    );
    let full = pool
        .extract_doc_with(html, "https://e.com/", ExtractionMode::Full)
        .unwrap()
        .text;
    assert!(full.starts_with("The article\n"), "{full:?}");
    assert!(
        full.contains("one\ntwo\nthree"),
        "the full text keeps link lists"
    );
    for chrome in [
        "Keyboard",
        "Site name",
        "Menu",
        "Top bar",
        "Skip",
        "Role nav",
        "Hidden",
        "Invisible",
        "Aria",
        "Print",
        "dialog",
        "aside",
        "¶",
        "Footer",
    ] {
        assert!(!full.contains(chrome), "{chrome:?} in {full:?}");
    }
    // A page that is nothing but links keeps them as its article.
    let index = r#"<body><ul><li><a href="/a">Alpha</a></li><li><a href="/b">Beta</a></li>
        <li><a href="/c">Gamma</a></li></ul></body>"#;
    assert_eq!(
        pool.extract_doc(index, "https://e.com/").unwrap().text,
        "Alpha\nBeta\nGamma"
    );
    // A multi-byte character early in an href is not a panic.
    let doc = pool
        .extract_doc(r##"<a href="#footnote-†">†</a>"##, "https://e.com/")
        .unwrap();
    assert_eq!(doc.links, ["https://e.com/#footnote-%E2%80%A0"]);
}

#[test]
fn config_from_env_and_validation() {
    // The only test that touches these variables (tests in one binary share the process).
    let set = |k: &str, v: Option<&str>| match v {
        Some(v) => std::env::set_var(k, v),
        None => std::env::remove_var(k),
    };
    set("NATIVE_POOL_SIZE", Some("3"));
    set("NATIVE_MAX_INSTANCES", Some("5"));
    set("NATIVE_IDLE_TIMEOUT_MS", Some("1500"));
    let c = NativePoolConfig::from_env().unwrap();
    assert_eq!((c.min_pool_size, c.max_pool_size), (3, 5));
    assert_eq!(c.idle_timeout, Duration::from_millis(1500));
    let p = NativeExtractorPool::new(c).unwrap();
    assert_eq!(p.pool(NativeExtractorType::Css).stats().max_size, 5);

    set("NATIVE_MAX_INSTANCES", Some("lots"));
    match NativePoolConfig::from_env() {
        Err(ConfigError::Env {
            var: "NATIVE_MAX_INSTANCES",
            value,
            ..
        }) => assert_eq!(value, "lots"),
        other => panic!("{other:?}"),
    }
    set("NATIVE_MAX_INSTANCES", Some("0"));
    assert!(matches!(
        NativePoolConfig::from_env(),
        Err(ConfigError::Env {
            var: "NATIVE_MAX_INSTANCES",
            ..
        })
    ));
    set("NATIVE_MAX_INSTANCES", Some("2"));
    let e = NativePoolConfig::from_env().unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Invalid {
                field: "min_pool_size",
                ..
            }
        ),
        "{e}"
    );
    set("NATIVE_MAX_INSTANCES", None);
    set("NATIVE_POOL_SIZE", Some("-1"));
    assert!(matches!(
        NativePoolConfig::from_env(),
        Err(ConfigError::Env {
            var: "NATIVE_POOL_SIZE",
            ..
        })
    ));
    set("NATIVE_POOL_SIZE", None);
    set("NATIVE_IDLE_TIMEOUT_MS", Some("0"));
    assert!(matches!(
        NativePoolConfig::from_env(),
        Err(ConfigError::Env {
            var: "NATIVE_IDLE_TIMEOUT_MS",
            ..
        })
    ));
    set("NATIVE_IDLE_TIMEOUT_MS", None);
    assert_eq!(
        NativePoolConfig::from_env().unwrap(),
        NativePoolConfig::default()
    );

    let mut bad = NativePoolConfig::default();
    bad.cache_capacity = 0;
    assert!(matches!(
        NativeExtractorPool::new(bad),
        Err(ConfigError::Invalid {
            field: "cache_capacity",
            ..
        })
    ));
}

/// "`javascript:` links are dropped": also when the scheme is split by a tab or newline, or
/// led by a control character, which the URL parser strips (the HTML and URL standards do,
/// and so do browsers: the link runs its script when clicked).
#[test]
fn javascript_links_are_dropped_however_they_are_spelled() {
    let pool = pool(1);
    let html = "<html><body><p>text</p>\
        <a href=\"JavaScript:alert(1)\">a</a>\
        <a href=\"java&#x09;script:alert(2)\">b</a>\
        <a href=\"java\nscript:alert(3)\">c</a>\
        <a href=\"&#x01;javascript:alert(4)\">d</a>\
        <a href=\"/ok\">ok</a></body></html>";
    let doc = pool
        .extract_doc_with(html, "https://example.com/", ExtractionMode::Full)
        .unwrap();
    assert_eq!(doc.links, ["https://example.com/ok"], "{:?}", doc.links);
}

/// A page nested far deeper than any thread's stack allows a walk per level (the parser
/// sets no limit; 200,000 spans are 1.6 MB, a tenth of `max_document_bytes`): text,
/// article and headings come back on a 2 MiB thread, a tokio worker's stack, instead of
/// the process aborting on a stack overflow.
#[test]
fn a_page_nested_200_000_deep_is_extracted_on_a_small_stack() {
    let mut html = String::from("<html><body><h2>Top</h2>");
    for _ in 0..200_000 {
        html.push_str("<span>x ");
    }
    html.push_str("<h3>Bottom</h3></body></html>");
    let (full, article, headings) = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let p = pool(1);
            let url = "https://example.com/";
            let full = p.extract_doc_with(&html, url, ExtractionMode::Full);
            let article = p.extract_doc_with(&html, url, ExtractionMode::Article);
            (full, article, p.headings(&html))
        })
        .unwrap()
        .join()
        .unwrap();
    let full = full.unwrap().text;
    assert!(full.starts_with("Top\nx x x") && full.ends_with("x x\nBottom"));
    assert_eq!(full.matches('x').count(), 200_000);
    assert_eq!(article.unwrap().text.matches('x').count(), 200_000);
    let levels: Vec<u8> = headings.unwrap().iter().map(|h| h.level).collect();
    assert_eq!(levels, [2, 3]);
}

/// `<template>` content is inert (not the page's until a script clones it in): its
/// `<title>` is not the page's title, its links are not the page's links, and a CSS
/// match's text (its `textContent`) leaves it out.
#[tokio::test]
async fn template_content_is_not_part_of_the_page() {
    let p = pool(1);
    let html = "<html><head><template><title>Fake</title><base href='https://evil.example/'>\
                </template><title>Real</title></head><body><template><a href='/tpl'>t</a>\
                </template><a href='/real'>r</a></body></html>";
    let d = p.extract_doc(html, "https://e.com/").unwrap();
    assert_eq!(d.title.as_deref(), Some("Real"));
    assert_eq!(d.links, ["https://e.com/real"]);
    let mut css = p.checkout(NativeExtractorType::Css).await.unwrap();
    let got = css
        .extract(
            "<div>Hello <template><b>TEMPLATE</b></template>world</div>",
            "div",
        )
        .unwrap();
    assert_eq!(got, ["Hello world"]);
}

/// `skip` marks a skip link, dropped even beside a content word
/// (`skip-to-main-content`), but never the content it jumps to: a `main` element, or the
/// link's target.
#[test]
fn a_skip_link_goes_but_not_the_content_it_jumps_to() {
    let p = pool(1);
    let body = "The article body is here, long enough to count, yes, indeed.";
    for html in [
        format!("<main class='skip-content'><p>{body}</p></main>"),
        format!("<div class='main skip-target'><p>{body}</p></div>"),
        format!("<a class='skip-to-main-content' href='#m'>Skip to content</a><p>{body}</p>"),
    ] {
        let full = p
            .extract_doc_with(&html, "https://e.com/", ExtractionMode::Full)
            .unwrap();
        assert_eq!(full.text, body, "{html}");
    }
}

/// A selector the parser refuses is the caller's error, and its reason says so (not
/// "please report this to the developer").
#[tokio::test]
async fn an_invalid_selector_reason_names_the_selectors_fault() {
    let p = pool(1);
    let mut css = p.checkout(NativeExtractorType::Css).await.unwrap();
    for q in ["", "li,", "::before", ":hover", "p[", "a >> b"] {
        match css.extract("<p>x</p>", q) {
            Err(ExtractError::InvalidSelector { reason, .. }) => assert!(
                !reason.contains("report this to the developer"),
                "{q:?}: {reason:?}"
            ),
            other => panic!("{q:?}: {other:?}"),
        }
    }
}

/// The document cap comes first: a document over `max_document_bytes` is `TooLarge`
/// whichever entry point gets it, also one that is not UTF-8 (the cap bounds the work,
/// the UTF-8 check's included).
#[tokio::test]
async fn an_oversized_document_is_too_large_even_as_bytes() {
    let mut c = NativePoolConfig::default();
    c.max_document_bytes = 64;
    let p = NativeExtractorPool::new(c).unwrap();
    let mut doc = vec![b'x'; 100];
    doc[99] = 0xff;
    let mut css = p.checkout(NativeExtractorType::Css).await.unwrap();
    let r = css.extract_bytes(&doc, "p");
    assert!(
        matches!(
            r,
            Err(ExtractError::TooLarge {
                size: 100,
                limit: 64
            })
        ),
        "{r:?}"
    );
    let r = p.extract_doc_bytes(&doc, "https://e.com/", ExtractionMode::Full);
    assert!(matches!(r, Err(ExtractError::TooLarge { .. })), "{r:?}");
}

/// A `:has` selector on a deeply nested page (20,000 `<span>`s, about 120 KB, on a 2 MiB
/// stack, a tokio worker's default) is matched, not a stack overflow that aborts the
/// process; a page nested deeper than a `:has` selector is matched on is
/// `ExtractError::TooDeep`. Run in a child process, since the failure is an abort.
#[test]
fn a_has_selector_on_a_deep_page_does_not_abort_the_process() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "deep_has_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by a_has_selector_on_a_deep_page_does_not_abort_the_process in a child process"]
fn deep_has_child() {
    let r = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let p = pool(1);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let mut css = rt.block_on(p.checkout(NativeExtractorType::Css)).unwrap();
            let deep = format!("<body>{}<code>x</code></body>", "<span>".repeat(20_000));
            let found = css.extract(&deep, "body:has(code)").map(|v| v.len());
            let deeper = format!("<body>{}<code>x</code></body>", "<i>".repeat(120_000));
            let refused = css.extract(&deeper, "body:HAS(code)");
            (found, refused)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r.0.unwrap(), 1);
    assert!(
        matches!(r.1, Err(ExtractError::TooDeep { limit: 100_000, .. })),
        "{:?}",
        r.1
    );
}
