//! The status page (issue 13): server-rendered HTML, SVG badges and the `/api/v1` JSON API,
//! read from any [`StatusSource`].
//!
//! Paths (all under the server's base path):
//! - `/` the overview (grouped, paginated, filterable: `group`, `verdict`, `kind`, `domain`,
//!   `q`, `sort`, `page`, `per_page`; the connection log's newest scans and blocks when
//!   unfiltered), `/domains`, `/flappy`, `/incidents` (`range` or
//!   `from`/`to`, `page`), `/targets/{id}` (`range` or `from`/`to`, `tier`);
//! - `/badge/{id}/status.svg` and `/badge/{id}/availability/{1h|24h|7d|30d|365d}.svg`;
//! - `/api/v1/…` as `docs/openapi.yaml` describes, errors as `application/problem+json`;
//! - `/static/style.css`, `/static/app.js`.
//!
//! [`mount`] hands the app, its `/metrics` figures and its `/readyz` check to a
//! [`ServerBuilder`].

mod api;
pub mod cache;
pub mod format;
pub mod html;
pub mod memory;
pub mod model;
pub mod params;
pub mod svg;
#[cfg(test)]
mod tests;
pub mod urlenc;

pub use memory::{MemorySource, MemoryTarget};
pub use model::*;

use crate::handler::{Handler, MetricsCollector, ReadinessCheck, Request, Response, respond};
use crate::server::ServerBuilder;
use cache::{PageCache, PageKey, Rendered};
use futures::future::BoxFuture;
use html::{ListFilters, PageContext};
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use netvantage_core::clock::Clock;
use params::{ParamError, Params};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.yaml");

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// Scripts and styles from this origin only, no inline script, no framing.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The default page size of the overview's target list.
pub const DEFAULT_PER_PAGE: u32 = 50;
/// How many of the targets that need attention the overview lists above the rest.
pub const PROBLEMS_SHOWN: u32 = 10;
/// How many scans and how many blocks the overview lists (the newest), and over what window.
pub const CONNS_SHOWN: u32 = 20;
pub const CONNS_WINDOW_MS: i64 = UnixMs::DAY;

/// Adds the status page, its `/metrics` figures and its `/readyz` check to `builder`.
pub fn mount<S: StatusSource>(
    builder: ServerBuilder,
    source: Arc<S>,
    clock: Arc<dyn Clock>,
) -> ServerBuilder {
    builder
        .app(Arc::new(StatusApp::new(source.clone(), clock.clone())))
        .metrics_collector(Arc::new(StatusMetrics {
            source: source.clone(),
            clock,
        }))
        .readiness(Arc::new(StatusReadiness(source)))
}

/// The status page application.
pub struct StatusApp<S> {
    source: Arc<S>,
    clock: Arc<dyn Clock>,
    title: String,
    /// Rendered answers, while what they were read from is unchanged ([`cache`]).
    pages: PageCache,
}

impl<S: StatusSource> StatusApp<S> {
    pub fn new(source: Arc<S>, clock: Arc<dyn Clock>) -> StatusApp<S> {
        StatusApp {
            source,
            clock,
            title: "netvantage".to_string(),
            pages: PageCache::default(),
        }
    }

    /// The site name in every page's header and title.
    pub fn with_title(mut self, title: impl Into<String>) -> StatusApp<S> {
        self.title = title.into();
        self
    }

    fn now(&self) -> UnixMs {
        UnixMs(self.clock.now_unix_ms())
    }

    /// An answer kept from an earlier request while it still answers ([`cache`]), else one
    /// made now — and kept when its source can tell what it was read from. (The server has
    /// checked authorization before this: a kept answer is one any reader may have.)
    async fn route(&self, request: Request<'_>) -> Option<Response> {
        let now = self.now();
        let key = PageKey::of(&request);
        let if_none_match = request.header(header::IF_NONE_MATCH);
        // A kept answer carries its gzipped body too (made once): the server's own gzip would
        // spend a millisecond a request on a 230 KB page.
        let gzip = crate::server::accepts_gzip(request.header(header::ACCEPT_ENCODING));
        if let Some(kept) = self.pages.get(&key, now) {
            return Some(kept.response(if_none_match, gzip));
        }
        let (answer, provenance) = self.source.tracked(self.answer(request, now)).await;
        let answer = answer?;
        match provenance {
            // Only whole answers: an error page renders anew, so a failure clears at once.
            Some(provenance) if answer.status() == StatusCode::OK => {
                let rendered = Rendered::of(answer).await;
                let kept = self.pages.put(key, now, rendered, provenance);
                Some(kept.response(if_none_match, gzip))
            }
            _ => Some(answer),
        }
    }

    async fn answer(&self, request: Request<'_>, now: UnixMs) -> Option<Response> {
        let segments: Vec<&str> = request.path.split('/').skip(1).collect();
        let ctx = PageContext {
            base: request.base_path,
            now,
            title: &self.title,
        };
        let query = request.query();
        let page = match segments.as_slice() {
            ["api", "v1", rest @ ..] => return Some(api::route(self, rest, query, ctx.now).await),
            [""] => self.overview_page(&ctx, query).await,
            ["targets", id] => match urlenc::decode(id, false) {
                Some(id) => self.target_page(&ctx, &id, query).await,
                None => Err(Failure::NotFound(format!("no target with id {id:?}"))),
            },
            ["domains"] => self.domains_page(&ctx, query).await,
            ["flappy"] => self.flappy_page(&ctx, query).await,
            ["incidents"] => self.incidents_page(&ctx, query).await,
            ["static", "style.css"] => return Some(asset("text/css; charset=utf-8", STYLE)),
            ["static", "app.js"] => return Some(asset("text/javascript; charset=utf-8", SCRIPT)),
            ["badge", id, rest @ ..] => return self.badge(id, rest, ctx.now).await,
            _ => return None,
        };
        Some(match page {
            Ok(body) => html_response(StatusCode::OK, body),
            Err(failure) => failure.into_page(&ctx),
        })
    }

    async fn overview_page(
        &self,
        ctx: &PageContext<'_>,
        query: Option<&str>,
    ) -> Result<String, Failure> {
        let params = Params::parse(
            query,
            &[
                "group", "verdict", "kind", "domain", "q", "sort", "page", "per_page",
            ],
            true,
        )?;
        let list = target_query(&params)?;
        let filters = ListFilters {
            group: list.group.clone().unwrap_or_default(),
            verdict: params.get("verdict")?.unwrap_or_default().to_string(),
            kind: params.get("kind")?.unwrap_or_default().to_string(),
            domain: list.domain.clone().unwrap_or_default(),
            search: list.search.clone().unwrap_or_default(),
            sort: params.get("sort")?.unwrap_or_default().to_string(),
            per_page: params.get("per_page")?.unwrap_or_default().to_string(),
        };
        let filtered = ListFilters {
            per_page: String::new(),
            ..filters.clone()
        } != ListFilters::default()
            || list.page.page > 1;
        let overview = self.source.overview(ctx.now).await?;
        let problems = if filtered {
            Page {
                items: Vec::new(),
                page: 1,
                per_page: PROBLEMS_SHOWN,
                total: 0,
            }
        } else {
            self.source
                .targets(
                    &TargetQuery {
                        verdicts: vec![
                            Verdict::Down,
                            Verdict::Partial,
                            Verdict::Flappy,
                            Verdict::Degraded,
                        ],
                        sort: TargetSort::Worst,
                        page: PageRequest {
                            page: 1,
                            per_page: PROBLEMS_SHOWN,
                        },
                        ..TargetQuery::default()
                    },
                    ctx.now,
                )
                .await?
        };
        let targets = self.source.targets(&list, ctx.now).await?;
        let mut ids: Vec<String> = problems.items.iter().map(|t| t.id.clone()).collect();
        ids.extend(targets.items.iter().map(|t| t.id.clone()));
        ids.sort();
        ids.dedup();
        let visuals = self.source.visuals(&ids, ctx.now).await?;
        let findings = self.source.findings(ctx.now).await?;
        let conns = if filtered {
            None
        } else {
            Some(self.conns_section(ctx.now).await?)
        };
        Ok(html::overview(
            ctx,
            &html::OverviewPage {
                overview: &overview,
                problems: &problems,
                targets: &targets,
                visuals: &visuals,
                findings: &findings,
                filters: &filters,
                conns: conns.as_ref(),
            },
        ))
    }

    /// The newest [`CONNS_SHOWN`] scans and blocks of the last [`CONNS_WINDOW_MS`] (up to and
    /// including `now`), and the window's new connections: four bounded queries.
    async fn conns_section(&self, now: UnixMs) -> Result<html::ConnsSection, Failure> {
        let range = TimeRange {
            from: UnixMs(now.0 - CONNS_WINDOW_MS),
            to: UnixMs(now.0 + 1),
        };
        let query = EventQuery {
            range,
            host: None,
            page: PageRequest {
                page: 1,
                per_page: CONNS_SHOWN,
            },
        };
        Ok(html::ConnsSection {
            range,
            label: "24 h".to_string(),
            scans: self.source.scans(&query).await?,
            blocks: self.source.blocks(&query).await?,
            connections: self.source.connection_counts(range).await?,
        })
    }

    async fn target_page(
        &self,
        ctx: &PageContext<'_>,
        id: &str,
        query: Option<&str>,
    ) -> Result<String, Failure> {
        let params = Params::parse(query, &["range", "from", "to", "tier"], true)?;
        let range = params.range(ctx.now, UnixMs::DAY)?;
        let range_label = match (params.get("range")?, params.get("from")?, params.get("to")?) {
            (Some(label), _, _) => label.to_string(),
            (None, None, None) => "24h".to_string(),
            _ => String::new(),
        };
        let tier = history_tier(&params, range)?;
        let detail = self
            .source
            .target(id, ctx.now)
            .await?
            .ok_or_else(|| Failure::unknown_target(id))?;
        let history = self
            .source
            .history(id, range, tier)
            .await?
            .ok_or_else(|| Failure::unknown_target(id))?;
        let changes = self
            .source
            .state_changes(&ChangeQuery {
                target: Some(id.to_string()),
                range: TimeRange {
                    from: UnixMs(ctx.now.0 - 90 * UnixMs::DAY),
                    to: UnixMs(ctx.now.0 + 1),
                },
                page: PageRequest {
                    page: 1,
                    per_page: 20,
                },
            })
            .await?;
        let checks = self
            .source
            .recent_checks(id, 20, ctx.now)
            .await?
            .unwrap_or_default();
        Ok(html::target(
            ctx,
            &html::TargetPage {
                detail: &detail,
                history: &history,
                range_label: &range_label,
                changes: &changes,
                checks: &checks,
            },
        ))
    }

    async fn domains_page(
        &self,
        ctx: &PageContext<'_>,
        query: Option<&str>,
    ) -> Result<String, Failure> {
        Params::parse(query, &[], true)?;
        let domains = self.source.domains(ctx.now).await?;
        Ok(html::domains(ctx, &domains))
    }

    async fn flappy_page(
        &self,
        ctx: &PageContext<'_>,
        query: Option<&str>,
    ) -> Result<String, Failure> {
        let params = Params::parse(query, &["page", "per_page"], true)?;
        let page = self
            .source
            .targets(&flappy_query(params.page(DEFAULT_PER_PAGE)?), ctx.now)
            .await?;
        let ids: Vec<String> = page.items.iter().map(|t| t.id.clone()).collect();
        let visuals = self.source.visuals(&ids, ctx.now).await?;
        Ok(html::flappy(ctx, &page, &visuals))
    }

    async fn incidents_page(
        &self,
        ctx: &PageContext<'_>,
        query: Option<&str>,
    ) -> Result<String, Failure> {
        let params = Params::parse(query, &["range", "from", "to", "page", "per_page"], true)?;
        let range = params.range(UnixMs(ctx.now.0 + 1), 7 * UnixMs::DAY)?;
        let label = match (params.get("range")?, params.get("from")?, params.get("to")?) {
            (Some(label), _, _) => label.to_string(),
            (None, None, None) => "7d".to_string(),
            _ => String::new(),
        };
        let page = self
            .source
            .state_changes(&ChangeQuery {
                target: None,
                range,
                page: params.page(DEFAULT_PER_PAGE)?,
            })
            .await?;
        Ok(html::incidents(ctx, &page, range, &label))
    }

    async fn badge(&self, id: &str, rest: &[&str], now: UnixMs) -> Option<Response> {
        let id = urlenc::decode(id, false)?;
        let window = match rest {
            ["status.svg"] => None,
            ["availability", file] => Some(Window::parse(file.strip_suffix(".svg")?)?),
            _ => return None,
        };
        let found = self.source.target(&id, now).await;
        let (status, label, message, colour) = match (&found, window) {
            (Ok(Some(detail)), None) => (
                StatusCode::OK,
                "status".to_string(),
                detail.summary.verdict.label().to_string(),
                svg::verdict_colour(detail.summary.verdict),
            ),
            (Ok(Some(detail)), Some(window)) => {
                let ratio = detail.summary.availability.get(window);
                (
                    StatusCode::OK,
                    format!("availability {}", window.as_str()),
                    format::percent(ratio),
                    svg::availability_colour(ratio),
                )
            }
            (Ok(None), _) => (
                StatusCode::NOT_FOUND,
                "status".to_string(),
                "unknown target".to_string(),
                svg::verdict_colour(Verdict::Unknown),
            ),
            (Err(_), _) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "status".to_string(),
                "store unavailable".to_string(),
                svg::verdict_colour(Verdict::Unknown),
            ),
        };
        let mut response = respond(
            status,
            "image/svg+xml; charset=utf-8",
            svg::badge(&label, &message, colour),
        );
        set(&mut response, header::CACHE_CONTROL, "max-age=60");
        set(
            &mut response,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        );
        Some(response)
    }
}

impl<S: StatusSource> Handler for StatusApp<S> {
    fn handle<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Option<Response>> {
        Box::pin(self.route(request))
    }
}

/// The query of a target list from `group`, `kind`, `domain`, `verdict`, `q`, `sort`, `page`
/// and `per_page`.
fn target_query(params: &Params) -> Result<TargetQuery, ParamError> {
    let sort = match params.get("sort")? {
        None => TargetSort::Group,
        Some(text) => TargetSort::parse(text).ok_or_else(|| {
            ParamError::new(
                "sort",
                format!("expected one of group, worst, changes, got {text:?}"),
            )
        })?,
    };
    Ok(TargetQuery {
        group: params.text("group")?,
        kind: params.kind()?,
        domain: params.text("domain")?,
        verdicts: params.verdicts()?,
        search: params.text("q")?,
        sort,
        page: params.page(DEFAULT_PER_PAGE)?,
    })
}

/// `tier` as asked (refused when it would give more than [`MAX_HISTORY_POINTS`] buckets), or
/// the finest tier that fits the range.
fn history_tier(params: &Params, range: TimeRange) -> Result<Tier, ParamError> {
    let Some(tier) = params.tier()? else {
        return Ok(Tier::for_span(range.span_ms()));
    };
    let buckets = range.span_ms() / tier.millis();
    if buckets > MAX_HISTORY_POINTS as i64 {
        return Err(ParamError::new(
            "tier",
            format!(
                "{buckets} buckets of one {} exceed the limit of {MAX_HISTORY_POINTS}; use a coarser tier or a shorter range",
                tier.as_str()
            ),
        ));
    }
    Ok(tier)
}

fn flappy_query(page: PageRequest) -> TargetQuery {
    TargetQuery {
        verdicts: vec![Verdict::Flappy],
        sort: TargetSort::Changes,
        page,
        ..TargetQuery::default()
    }
}

/// Why a page or an API answer could not be made.
#[derive(Debug)]
enum Failure {
    BadParameter(ParamError),
    NotFound(String),
    Source(SourceError),
}

impl Failure {
    fn unknown_target(id: &str) -> Failure {
        Failure::NotFound(format!("no target with id {id:?}"))
    }

    fn status(&self) -> StatusCode {
        match self {
            Failure::BadParameter(_) => StatusCode::BAD_REQUEST,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::Source(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn detail(&self) -> String {
        match self {
            Failure::BadParameter(err) => err.to_string(),
            Failure::NotFound(detail) => detail.clone(),
            Failure::Source(err) => format!("the store could not answer: {err}"),
        }
    }

    fn into_page(self, ctx: &PageContext<'_>) -> Response {
        let status = self.status();
        let title = match &self {
            Failure::BadParameter(err) => format!("Bad parameter: {}", err.parameter),
            Failure::NotFound(_) => "Not found".to_string(),
            Failure::Source(_) => "Store unavailable".to_string(),
        };
        html_response(status, html::error(ctx, &title, &self.detail()))
    }
}

impl From<ParamError> for Failure {
    fn from(err: ParamError) -> Failure {
        Failure::BadParameter(err)
    }
}

impl From<SourceError> for Failure {
    fn from(err: SourceError) -> Failure {
        Failure::Source(err)
    }
}

fn set(response: &mut Response, name: header::HeaderName, value: &'static str) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = respond(status, "text/html; charset=utf-8", body);
    set(&mut response, header::CONTENT_SECURITY_POLICY, PAGE_CSP);
    set(&mut response, header::CACHE_CONTROL, "no-cache");
    set(&mut response, header::REFERRER_POLICY, "same-origin");
    response
}

fn asset(content_type: &str, body: &'static str) -> Response {
    let mut response = respond(StatusCode::OK, content_type, body);
    set(&mut response, header::CACHE_CONTROL, "max-age=3600");
    response
}

/// `/readyz`: the store answers.
struct StatusReadiness<S>(Arc<S>);

impl<S: StatusSource> ReadinessCheck for StatusReadiness<S> {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ready().await.map_err(|e| e.to_string()) })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AvailabilityLabels {
    target: String,
    group: String,
    window: &'static str,
}

/// `/metrics`: targets by verdict and availability per target and window, read from the
/// source at each scrape.
struct StatusMetrics<S> {
    source: Arc<S>,
    clock: Arc<dyn Clock>,
}

impl<S: StatusSource> StatusMetrics<S> {
    async fn fill(&self, registry: &mut Registry) -> Result<(), SourceError> {
        let now = UnixMs(self.clock.now_unix_ms());
        let overview = self.source.overview(now).await?;
        let by_verdict = Family::<VerdictLabel, Gauge>::default();
        for verdict in Verdict::ALL {
            by_verdict
                .get_or_create(&VerdictLabel {
                    verdict: verdict.as_str(),
                })
                .set(overview.counts.get(verdict) as i64);
        }
        let availability = Family::<AvailabilityLabels, Gauge<f64, AtomicU64>>::default();
        let mut page = PageRequest {
            page: 1,
            per_page: params::MAX_PER_PAGE,
        };
        loop {
            let targets = self
                .source
                .targets(
                    &TargetQuery {
                        page,
                        ..TargetQuery::default()
                    },
                    now,
                )
                .await?;
            for target in &targets.items {
                for window in Window::ALL {
                    if let Some(ratio) = target.availability.get(window) {
                        availability
                            .get_or_create(&AvailabilityLabels {
                                target: target.name.clone(),
                                group: target.group.clone(),
                                window: window.as_str(),
                            })
                            .set(ratio);
                    }
                }
            }
            if u64::from(page.page) >= targets.pages() {
                break;
            }
            page.page += 1;
        }
        registry.register(
            "netvantage_status_targets",
            "Targets by their current verdict",
            by_verdict,
        );
        registry.register(
            "netvantage_status_availability_ratio",
            "Availability of each target over each window (0 to 1), from the store's roll-ups",
            availability,
        );
        Ok(())
    }
}

impl<S: StatusSource> MetricsCollector for StatusMetrics<S> {
    fn collect(&self) -> BoxFuture<'_, Registry> {
        Box::pin(async move {
            let mut registry = Registry::default();
            let up = Gauge::<i64>::default();
            match self.fill(&mut registry).await {
                Ok(()) => {
                    up.set(1);
                }
                Err(err) => tracing::warn!(%err, "status metrics: the store could not answer"),
            }
            registry.register(
                "netvantage_status_source_up",
                "1 when the last scrape could read the store, else 0",
                up,
            );
            registry
        })
    }
}
