//! Rendered answers kept for as long as what they were read from is unchanged (issue 13's page
//! goal: a 230 KB target page costs ~1.5 ms of CPU to render, and 32 readers would render it
//! anew on every request from the same cached figures).
//!
//! An answer is kept per (base path, path, query) — never per anything else a request carries,
//! which is why it is looked up only after the server has checked authorization: every reader
//! who gets this far may see every page. It answers again while
//! - the source says every value it was read from is still the one it would read
//!   ([`Provenance::is_current`]: a replaced or expired value renders anew, and a value due
//!   for a refresh makes the next request read it, which starts the refresh, as without this
//!   cache), and
//! - the page time is within [`PAGE_TIME_SLACK_MS`] of the one it was rendered for (a page
//!   shows when it was generated and places its chart by the page's "now").
//!
//! Bounded in entries and bytes; the least recently used go first. A weak `ETag` (the body's
//! hash: it may go gzipped, so it names the content, not the bytes sent) lets a browser
//! revalidate with `If-None-Match` and get a bodiless 304. A reader that takes gzip gets the
//! body gzipped once for every reader, not once a request.

use super::model::{Provenance, UnixMs};
use crate::handler::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// How far the page time may have moved since an answer was rendered for it to answer again.
pub const PAGE_TIME_SLACK_MS: i64 = 1_000;
/// The default bounds: about 140 target pages or 60 overview pages of a 10,000-series fleet.
pub const MAX_ENTRIES: usize = 1_000;
pub const MAX_BYTES: usize = 32 << 20;

/// Which answer: everything of a request the application's answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    base_path: String,
    path: String,
    query: Option<String>,
}

impl PageKey {
    pub fn of(request: &Request<'_>) -> PageKey {
        PageKey {
            base_path: request.base_path.to_string(),
            path: request.path.to_string(),
            query: request.query().map(str::to_string),
        }
    }

    pub fn new(base_path: &str, path: &str, query: Option<&str>) -> PageKey {
        PageKey {
            base_path: base_path.to_string(),
            path: path.to_string(),
            query: query.map(str::to_string),
        }
    }
}

/// One rendered answer: status, headers and body as the application made them, plus its tag.
#[derive(Debug)]
pub struct Rendered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    etag: HeaderValue,
    /// The body gzipped, when first asked (`None`: not text, or too short to bother).
    gzipped: OnceLock<Option<Bytes>>,
}

impl Rendered {
    /// Takes the answer apart (its body is already whole: nothing waits).
    pub async fn of(response: Response) -> Rendered {
        let (parts, body) = response.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        Rendered::new(parts.status, parts.headers, body)
    }

    pub fn new(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> Rendered {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        let etag = HeaderValue::from_str(&format!("W/\"{:016x}\"", hasher.finish()))
            .unwrap_or_else(|_| HeaderValue::from_static("W/\"0\""));
        headers.insert(header::ETAG, etag.clone());
        Rendered {
            status,
            headers,
            body,
            etag,
            gzipped: OnceLock::new(),
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// The answer again (gzipped when the reader takes `gzip` and it is worth it), or a
    /// bodiless 304 when `if_none_match` names its tag.
    pub fn response(&self, if_none_match: Option<&str>, gzip: bool) -> Response {
        let not_modified = self.status == StatusCode::OK
            && if_none_match.is_some_and(|tags| matches_tag(tags, &self.etag));
        let mut headers = self.headers.clone();
        let body = if not_modified {
            headers.remove(header::CONTENT_TYPE);
            Bytes::new()
        } else if gzip {
            // As the server's own gzip does: `Vary` whenever it could have, the encoding
            // named when it did (the server then leaves the body as it is).
            let textual = crate::server::is_textual(&self.headers);
            if textual {
                headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            }
            match self.gzipped.get_or_init(|| {
                textual
                    .then(|| crate::server::gzipped(&self.body))
                    .flatten()
            }) {
                Some(gzipped) => {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    gzipped.clone()
                }
                None => self.body.clone(),
            }
        } else {
            self.body.clone()
        };
        let mut response = Response::new(Full::new(body));
        *response.headers_mut() = headers;
        *response.status_mut() = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            self.status
        };
        response
    }

    /// What it takes against the budget: the body, an eighth more for the gzipped copy it
    /// may get later (pages compress about twentyfold), and the headers.
    fn size(&self) -> usize {
        self.body.len() + self.body.len() / 8 + 256
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as RFC 9110 asks for it).
fn matches_tag(tags: &str, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    let ours = ours.strip_prefix("W/").unwrap_or(ours);
    tags.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

struct Entry {
    rendered: Arc<Rendered>,
    at: UnixMs,
    provenance: Arc<dyn Provenance>,
    used: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<PageKey, Entry>,
    bytes: usize,
    clock: u64,
}

/// The cache (see the module's description).
pub struct PageCache {
    entries: Mutex<Entries>,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for PageCache {
    fn default() -> PageCache {
        PageCache::new(MAX_ENTRIES, MAX_BYTES)
    }
}

impl PageCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> PageCache {
        PageCache {
            entries: Mutex::new(Entries::default()),
            max_entries,
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Every update leaves the map and its byte count consistent between statements that
        // can't panic.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer kept for `key`, if it still answers at page time `at`; one that doesn't is
    /// dropped.
    pub fn get(&self, key: &PageKey, at: UnixMs) -> Option<Arc<Rendered>> {
        let (rendered, provenance) = {
            let mut entries = self.lock();
            entries.clock += 1;
            let clock = entries.clock;
            let entry = entries.map.get_mut(key)?;
            if (at.0 - entry.at.0).abs() >= PAGE_TIME_SLACK_MS {
                if let Some(entry) = entries.map.remove(key) {
                    entries.bytes -= entry.rendered.size();
                }
                return None;
            }
            entry.used = clock;
            (entry.rendered.clone(), entry.provenance.clone())
        };
        // Asked outside the lock: a source's check takes its own locks, one per value read.
        if provenance.is_current(at) {
            Some(rendered)
        } else {
            self.remove(key, &rendered);
            None
        }
    }

    /// Removes `key`'s entry if it still holds `rendered` (a newer one put meanwhile stays).
    fn remove(&self, key: &PageKey, rendered: &Arc<Rendered>) {
        let mut entries = self.lock();
        let same = entries
            .map
            .get(key)
            .is_some_and(|entry| Arc::ptr_eq(&entry.rendered, rendered));
        if same && let Some(entry) = entries.map.remove(key) {
            entries.bytes -= entry.rendered.size();
        }
    }

    /// Keeps `rendered` for `key`, rendered at page time `at` from what `provenance` names,
    /// and hands it back. The least recently used answers make room; one larger than the
    /// whole budget isn't kept.
    pub fn put(
        &self,
        key: PageKey,
        at: UnixMs,
        rendered: Rendered,
        provenance: Arc<dyn Provenance>,
    ) -> Arc<Rendered> {
        let rendered = Arc::new(rendered);
        let size = rendered.size();
        if size > self.max_bytes || self.max_entries == 0 {
            return rendered;
        }
        let mut entries = self.lock();
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes -= old.rendered.size();
        }
        while entries.map.len() >= self.max_entries || entries.bytes + size > self.max_bytes {
            let Some(oldest) = entries
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(entry) = entries.map.remove(&oldest) {
                entries.bytes -= entry.rendered.size();
            }
        }
        entries.clock += 1;
        let used = entries.clock;
        entries.bytes += size;
        entries.map.insert(
            key,
            Entry {
                rendered: rendered.clone(),
                at,
                provenance,
                used,
            },
        );
        rendered
    }

    /// How many answers are kept, and their bytes (bodies, an eighth more for gzip, and headers).
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.map.len(), entries.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The source's side, as a flag the test turns: a unit below the cache.
    struct Flag(AtomicBool);

    impl Provenance for Flag {
        fn is_current(&self, _at: UnixMs) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn flag() -> Arc<Flag> {
        Arc::new(Flag(AtomicBool::new(true)))
    }

    fn page(text: &str) -> Rendered {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        Rendered::new(StatusCode::OK, headers, Bytes::from(text.to_string()))
    }

    fn body(rendered: &Option<Arc<Rendered>>) -> Option<&str> {
        rendered
            .as_ref()
            .map(|r| std::str::from_utf8(r.body()).unwrap())
    }

    #[test]
    fn an_answer_answers_again_until_its_source_changes() {
        let cache = PageCache::default();
        let key = PageKey::new("", "/targets/a", None);
        let source = flag();
        cache.put(key.clone(), UnixMs(0), page("one"), source.clone());
        assert_eq!(body(&cache.get(&key, UnixMs(0))), Some("one"));
        assert_eq!(body(&cache.get(&key, UnixMs(999))), Some("one"));
        source.0.store(false, Ordering::SeqCst);
        assert_eq!(body(&cache.get(&key, UnixMs(0))), None);
        assert_eq!(
            cache.usage(),
            (0, 0),
            "a changed source's answer is dropped"
        );
        // Rendered again from the new values: that one answers.
        cache.put(key.clone(), UnixMs(0), page("two"), flag());
        assert_eq!(body(&cache.get(&key, UnixMs(0))), Some("two"));
    }

    #[test]
    fn another_page_time_renders_anew() {
        let cache = PageCache::default();
        let key = PageKey::new("", "/", None);
        cache.put(key.clone(), UnixMs(10_000), page("one"), flag());
        assert!(
            cache
                .get(&key, UnixMs(10_000 + PAGE_TIME_SLACK_MS))
                .is_none()
        );
        cache.put(key.clone(), UnixMs(10_000), page("one"), flag());
        assert!(
            cache
                .get(&key, UnixMs(10_000 - PAGE_TIME_SLACK_MS))
                .is_none()
        );
    }

    #[test]
    fn query_path_and_base_path_each_name_another_answer() {
        let cache = PageCache::default();
        let key = PageKey::new("", "/", Some("page=2"));
        cache.put(key.clone(), UnixMs(0), page("page two"), flag());
        for other in [
            PageKey::new("", "/", Some("page=3")),
            PageKey::new("", "/", None),
            PageKey::new("/status", "/", Some("page=2")),
            PageKey::new("", "/flappy", Some("page=2")),
        ] {
            assert!(cache.get(&other, UnixMs(0)).is_none(), "{other:?}");
        }
        assert_eq!(body(&cache.get(&key, UnixMs(0))), Some("page two"));
    }

    #[test]
    fn bounded_in_entries_the_least_recently_used_going_first() {
        let cache = PageCache::new(3, MAX_BYTES);
        let keys: Vec<PageKey> = (0..4)
            .map(|i| PageKey::new("", &format!("/targets/{i}"), None))
            .collect();
        for key in &keys[..3] {
            cache.put(key.clone(), UnixMs(0), page("x"), flag());
        }
        // 0 read last: 1 is the least recently used when 3 comes.
        assert!(cache.get(&keys[0], UnixMs(0)).is_some());
        cache.put(keys[3].clone(), UnixMs(0), page("x"), flag());
        assert_eq!(cache.usage().0, 3);
        assert!(cache.get(&keys[1], UnixMs(0)).is_none());
        for i in [0, 2, 3] {
            assert!(cache.get(&keys[i], UnixMs(0)).is_some(), "{i}");
        }
    }

    #[test]
    fn bounded_in_bytes_and_an_answer_over_the_budget_is_not_kept() {
        let size = page(&"x".repeat(1000)).size();
        let cache = PageCache::new(MAX_ENTRIES, 2 * size + 10);
        for i in 0..5 {
            let key = PageKey::new("", &format!("/targets/{i}"), None);
            cache.put(key, UnixMs(0), page(&"x".repeat(1000)), flag());
            assert!(cache.usage().1 <= 2 * size + 10, "{:?}", cache.usage());
        }
        assert_eq!(cache.usage(), (2, 2 * size));
        let huge = PageKey::new("", "/huge", None);
        let kept = cache.put(huge.clone(), UnixMs(0), page(&"y".repeat(3000)), flag());
        assert_eq!(kept.body().len(), 3000, "still answered");
        assert!(cache.get(&huge, UnixMs(0)).is_none());
        assert_eq!(cache.usage(), (2, 2 * size), "and nothing evicted for it");
    }

    #[tokio::test]
    async fn a_reader_that_takes_gzip_gets_the_body_gzipped_once() {
        use http_body_util::BodyExt;
        use std::io::Read;
        let text = "<p>a status page</p>".repeat(200);
        let one = page(&text);
        let plain = one.response(None, false);
        assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
        let first = one.response(None, true);
        let second = one.response(None, true);
        assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(first.headers()[header::VARY], "accept-encoding");
        assert_eq!(first.headers()[header::ETAG], one.etag().to_str().unwrap());
        let (a, b) = (
            first.into_body().collect().await.unwrap().to_bytes(),
            second.into_body().collect().await.unwrap().to_bytes(),
        );
        assert_eq!(a.as_ptr(), b.as_ptr(), "one gzipped copy for every reader");
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);
        // Too short to bother: as is, but `Vary` still says it could have been gzipped.
        let short = page("tiny").response(None, true);
        assert!(!short.headers().contains_key(header::CONTENT_ENCODING));
        assert_eq!(short.headers()[header::VARY], "accept-encoding");
    }

    #[test]
    fn the_same_content_has_the_same_tag_and_if_none_match_gets_a_304() {
        let one = page("same");
        assert_eq!(one.etag(), page("same").etag());
        assert_ne!(one.etag(), page("other").etag());
        let tag = one.etag().to_str().unwrap().to_string();
        assert!(tag.starts_with("W/\""), "{tag}");

        let full = one.response(None, false);
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(full.headers()[header::ETAG], tag.as_str());

        let strong = tag.trim_start_matches("W/");
        for asked in [tag.as_str(), strong, "*"] {
            let answer = one.response(Some(&format!("\"a\", {asked}")), false);
            assert_eq!(answer.status(), StatusCode::NOT_MODIFIED, "{asked}");
            assert_eq!(answer.headers()[header::ETAG], tag.as_str());
            assert!(!answer.headers().contains_key(header::CONTENT_TYPE));
            assert_eq!(answer.body().size_hint().exact(), Some(0), "no body");
        }
        assert_eq!(
            one.response(Some("\"other\""), false).status(),
            StatusCode::OK,
            "another tag gets the page"
        );
    }
}
