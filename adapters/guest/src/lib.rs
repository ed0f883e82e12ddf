//! The RipTide extractor guest: `adapters/src/doc_core.rs` (the same file the native
//! extractor compiles) behind the `riptide:extractor` WIT world, plus diagnostic exports the
//! host's tests use to prove isolation, deadlines and memory limits.

#[allow(dead_code)]
#[path = "../../src/doc_core.rs"]
mod doc_core;

use std::sync::atomic::{AtomicU64, Ordering};

wit_bindgen::generate!({
    world: "extractor",
    path: "../wit",
});

use exports::riptide::extractor::diagnostics;

/// The guest never accepts more than this, whatever the host allows.
const GUEST_MAX_BYTES: usize = 64 << 20;

/// State kept in a guest global: a fresh store starts it at 0.
static CALLS: AtomicU64 = AtomicU64::new(0);

struct Component;

impl Guest for Component {
    fn extract(
        html: String,
        url: String,
        mode: ExtractionMode,
    ) -> Result<ExtractedDoc, ExtractionError> {
        CALLS.fetch_add(1, Ordering::Relaxed);
        if html.len() > GUEST_MAX_BYTES {
            return Err(ExtractionError::TooLarge(html.len() as u64));
        }
        let mode = match mode {
            ExtractionMode::Article => doc_core::ExtractionMode::Article,
            ExtractionMode::Full => doc_core::ExtractionMode::Full,
            ExtractionMode::Metadata => doc_core::ExtractionMode::Metadata,
        };
        match doc_core::extract_doc(&html, &url, mode) {
            Ok(d) => Ok(ExtractedDoc {
                url: d.url,
                title: d.title,
                text: d.text,
                links: d.links,
            }),
            Err(doc_core::DocError::InvalidUrl { reason, .. }) => {
                Err(ExtractionError::InvalidUrl(reason))
            }
        }
    }
}

impl diagnostics::Guest for Component {
    fn bump() -> u64 {
        CALLS.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn spin(rounds: u64) -> u64 {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut i = 0u64;
        while rounds == u64::MAX || i < rounds {
            // xorshift: cheap, and opaque enough that the loop is not folded away.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            i = i.wrapping_add(1);
            if x == 0 {
                break;
            }
        }
        x
    }

    fn allocate(bytes: u64) -> u64 {
        // A count past the guest's 32-bit address space cannot be allocated (a plain cast
        // would truncate it to a small one and report success).
        let Ok(bytes) = usize::try_from(bytes) else {
            return 0;
        };
        let mut v: Vec<u8> = Vec::new();
        if v.try_reserve_exact(bytes).is_err() {
            return 0;
        }
        v.resize(bytes, 1);
        let touched = v.iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
        std::hint::black_box(&v);
        touched.max(v.len() as u64 / 4096)
    }
}

export!(Component);
