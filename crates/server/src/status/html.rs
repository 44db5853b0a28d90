//! Server-rendered pages. Each function takes the figures it shows and returns a whole HTML
//! document: no template engine, every dynamic string through [`Esc`], every link under the
//! base path. Pages work without JavaScript; `app.js` only turns UTC times into local ones.

use super::format::{Esc, availability_class, millis, percent};
use super::model::*;
use super::svg;
use super::urlenc::encode;
use std::fmt::Write;

/// What every page knows: where it is served and when it was made.
#[derive(Debug, Clone, Copy)]
pub struct PageContext<'a> {
    pub base: &'a str,
    pub now: UnixMs,
    pub title: &'a str,
}

impl PageContext<'_> {
    /// `path` (starting with `/`) under the base path.
    pub fn href(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn target_href(&self, id: &str) -> String {
        self.href(&format!("/targets/{}", encode(id)))
    }
}

/// `path?name=value&…`, leaving out empty values.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| format!("{n}={}", encode(v)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn document(ctx: &PageContext<'_>, title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"color-scheme\" content=\"light dark\">",
            "<title>{title} · {site}</title>",
            "<link rel=\"stylesheet\" href=\"{css}\">",
            "<script src=\"{js}\" defer></script></head>\n<body>",
            "<header><a class=\"brand\" href=\"{home}\">{site}</a><nav>",
            "<a href=\"{home}\">Overview</a><a href=\"{domains}\">Domains</a>",
            "<a href=\"{flappy}\">Flappy</a><a href=\"{incidents}\">Incidents</a></nav></header>\n",
            "<main>{body}</main>\n",
            "<footer>Generated <time datetime=\"{iso}\">{human}</time> · ",
            "<a href=\"{api}\">JSON API</a></footer></body></html>\n"
        ),
        title = Esc(title),
        site = Esc(ctx.title),
        css = Esc(&ctx.href("/static/style.css")),
        js = Esc(&ctx.href("/static/app.js")),
        home = Esc(&ctx.href("/")),
        domains = Esc(&ctx.href("/domains")),
        flappy = Esc(&ctx.href("/flappy")),
        incidents = Esc(&ctx.href("/incidents")),
        body = body,
        iso = ctx.now.rfc3339(),
        human = ctx.now.human(),
        api = Esc(&ctx.href("/api/v1/overview")),
    );
    out
}

fn verdict_chip(verdict: Verdict) -> String {
    format!(
        r#"<span class="verdict v-{}" data-verdict="{}" title="{}">{}</span>"#,
        verdict.as_str(),
        verdict.as_str(),
        Esc(verdict.description()),
        Esc(verdict.label())
    )
}

fn time_tag(at: Option<UnixMs>) -> String {
    match at {
        Some(at) => format!(r#"<time datetime="{}">{}</time>"#, at.rfc3339(), at.human()),
        None => "—".to_string(),
    }
}

fn availability_cell(ratio: Option<f64>, window: Window) -> String {
    format!(
        r#"<td class="num {}" data-window="{}">{}</td>"#,
        availability_class(ratio),
        window.as_str(),
        percent(ratio)
    )
}

/// A column header per availability window.
fn window_headers(out: &mut String) {
    for window in Window::ALL {
        let _ = write!(
            out,
            r#"<th scope="col" class="num">{}</th>"#,
            window.as_str()
        );
    }
}

fn headline(counts: &VerdictCounts) -> String {
    let worst = counts.worst();
    if counts.total() == 0 {
        return "No targets yet".to_string();
    }
    if worst == Verdict::Ok {
        return format!("All {} targets ok", counts.total());
    }
    let parts: Vec<String> = [
        Verdict::Down,
        Verdict::Partial,
        Verdict::Flappy,
        Verdict::Degraded,
    ]
    .into_iter()
    .filter(|v| counts.get(*v) > 0)
    .map(|v| format!("{} {}", counts.get(v), v.label()))
    .collect();
    format!(
        "{} of {} targets need attention: {}",
        counts.total() - counts.ok - counts.unknown,
        counts.total(),
        parts.join(", ")
    )
}

/// The filters of the overview's target list, as the query string gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilters {
    pub group: String,
    pub verdict: String,
    pub kind: String,
    pub domain: String,
    pub search: String,
    pub sort: String,
    /// The page size when one was asked for (empty: the default).
    pub per_page: String,
}

impl ListFilters {
    fn pairs<'a>(&'a self, page: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("group", self.group.as_str()),
            ("verdict", self.verdict.as_str()),
            ("kind", self.kind.as_str()),
            ("domain", self.domain.as_str()),
            ("q", self.search.as_str()),
            ("sort", self.sort.as_str()),
            ("per_page", self.per_page.as_str()),
            ("page", page),
        ]
    }
}

/// Rows of a target table: name, verdict, availability 24 h – 365 d, sparkline, 90-day bar.
fn target_rows(
    ctx: &PageContext<'_>,
    out: &mut String,
    targets: &[TargetSummary],
    visuals: &[TargetVisuals],
    grouped: bool,
) {
    let mut current_group: Option<&str> = None;
    for target in targets {
        if grouped && current_group != Some(target.group.as_str()) {
            current_group = Some(target.group.as_str());
            let name = if target.group.is_empty() {
                "(no group)"
            } else {
                &target.group
            };
            let _ = write!(
                out,
                r#"<tr class="group"><th colspan="8" scope="rowgroup"><a href="{}">{}</a></th></tr>"#,
                Esc(&with_query(&ctx.href("/"), &[("group", &target.group)])),
                Esc(name)
            );
        }
        let visual = visuals.iter().find(|v| v.id == target.id);
        let detail = match (&target.domain, &target.reason) {
            (Some(domain), Some(reason)) => {
                format!("{} · {domain} · {reason}", target.kind.as_str())
            }
            (Some(domain), None) => format!("{} · {domain}", target.kind.as_str()),
            (None, Some(reason)) => format!("{} · {reason}", target.kind.as_str()),
            (None, None) => target.kind.as_str().to_string(),
        };
        let _ = write!(
            out,
            r#"<tr class="target" data-id="{}" data-verdict="{}"><td class="name"><a href="{}">{}</a><small>{}</small></td><td>{}</td>"#,
            Esc(&target.id),
            target.verdict.as_str(),
            Esc(&ctx.target_href(&target.id)),
            Esc(&target.name),
            Esc(&detail),
            verdict_chip(target.verdict)
        );
        for window in [Window::Day, Window::Week, Window::Month, Window::Year] {
            out.push_str(&availability_cell(target.availability.get(window), window));
        }
        match visual {
            Some(visual) => {
                let _ = write!(
                    out,
                    r#"<td class="spark-cell">{}</td><td class="bar-cell">{}</td>"#,
                    svg::sparkline(&visual.latency),
                    svg::day_bars(&visual.days)
                );
            }
            None => out.push_str("<td></td><td></td>"),
        }
        out.push_str("</tr>");
    }
}

const TARGET_TABLE_HEAD: &str = concat!(
    "<thead><tr><th scope=\"col\">Target</th><th scope=\"col\">Verdict</th>",
    "<th scope=\"col\" class=\"num\">24 h</th><th scope=\"col\" class=\"num\">7 d</th>",
    "<th scope=\"col\" class=\"num\">30 d</th><th scope=\"col\" class=\"num\">365 d</th>",
    "<th scope=\"col\">Latency, 24 h</th><th scope=\"col\">Last 90 days</th></tr></thead>"
);

fn pagination<T>(
    ctx: &PageContext<'_>,
    out: &mut String,
    page: &Page<T>,
    path: &str,
    pairs: &dyn Fn(&str) -> Vec<(String, String)>,
    noun: &str,
) {
    let link = |number: u64| {
        let number = number.to_string();
        let mut owned = pairs(&number);
        let sized = owned.iter().any(|(n, v)| n == "per_page" && !v.is_empty());
        if !sized && page.per_page != super::DEFAULT_PER_PAGE {
            owned.push(("per_page".to_string(), page.per_page.to_string()));
        }
        let borrowed: Vec<(&str, &str)> = owned
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        with_query(&ctx.href(path), &borrowed)
    };
    let current = u64::from(page.page);
    out.push_str(r#"<nav class="pages" aria-label="pages">"#);
    if current > 1 {
        let _ = write!(
            out,
            r#"<a rel="prev" href="{}">← Previous</a>"#,
            Esc(&link(current - 1))
        );
    }
    let _ = write!(
        out,
        r#"<span>Page {} of {} · {} {noun}</span>"#,
        current,
        page.pages(),
        page.total
    );
    if current < page.pages() {
        let _ = write!(
            out,
            r#"<a rel="next" href="{}">Next →</a>"#,
            Esc(&link(current + 1))
        );
    }
    out.push_str("</nav>");
}

fn findings_section(out: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    out.push_str(r#"<section id="findings"><h2>Findings</h2><ul class="findings">"#);
    for finding in findings {
        let _ = write!(
            out,
            r#"<li data-kind="{}"><strong>{}</strong> <span class="scope">{}</span><p>{}</p><small>{} of {} affected · {} – {}</small></li>"#,
            Esc(&finding.kind),
            Esc(&finding.kind.replace('_', " ")),
            Esc(&finding.scope),
            Esc(&finding.message),
            finding.affected,
            finding.total,
            time_tag(Some(finding.from)),
            time_tag(Some(finding.to))
        );
    }
    out.push_str("</ul></section>");
}

/// The connection log's part of the overview: the newest scans and blocks of a window and how
/// many new connections it held.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnsSection {
    pub range: TimeRange,
    /// What the window is called (`24 h`).
    pub label: String,
    pub scans: Page<ScanEvent>,
    pub blocks: Page<BlockEvent>,
    pub connections: ConnectionCounts,
}

impl ConnsSection {
    /// Whether the window holds anything to show.
    pub fn is_empty(&self) -> bool {
        self.scans.total == 0 && self.blocks.total == 0 && self.connections.total() == 0
    }
}

/// At most `shown` items of a list, comma-separated, then how many more.
fn some_of<T: std::fmt::Display>(items: &[T], shown: usize) -> String {
    let mut text: Vec<String> = items.iter().take(shown).map(ToString::to_string).collect();
    if items.len() > shown {
        text.push(format!("… {} more", items.len() - shown));
    }
    text.join(", ")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "Recent scans and blocks": two bounded tables, each linking to its full list in the API.
fn conns_section(ctx: &PageContext<'_>, out: &mut String, conns: &ConnsSection) {
    if conns.is_empty() {
        return;
    }
    let _ = write!(
        out,
        r#"<section id="conns"><h2>Recent scans and blocks</h2><p class="meta">Last {}: <span data-count-scans="{}">{}</span> · <span data-count-blocks="{}">{}</span> · <span data-count-inbound="{}">{} inbound</span>, <span data-count-outbound="{}">{} outbound</span></p>"#,
        Esc(&conns.label),
        conns.scans.total,
        plural(conns.scans.total, "scan", "scans"),
        conns.blocks.total,
        plural(conns.blocks.total, "block", "blocks"),
        conns.connections.inbound,
        plural(
            conns.connections.inbound,
            "new connection",
            "new connections"
        ),
        conns.connections.outbound,
        conns.connections.outbound,
    );
    let more = |out: &mut String, page_total: u64, shown: usize, path: &str, noun: &str| {
        if page_total > shown as u64 {
            let _ = write!(
                out,
                r#"<p>The newest {shown} of {page_total} {noun}; <a href="{}">the whole list as JSON</a> (paginated).</p>"#,
                Esc(&ctx.href(path))
            );
        }
    };
    if conns.scans.items.is_empty() {
        out.push_str("<p>No scans.</p>");
    } else {
        out.push_str(r#"<div class="scroll"><table id="scans"><thead><tr><th scope="col">Seen</th><th scope="col">Host</th><th scope="col">Scanner</th><th scope="col">Ports</th><th scope="col" class="num">Closed</th><th scope="col">Addresses</th></tr></thead><tbody>"#);
        for scan in &conns.scans.items {
            let _ = write!(
                out,
                r#"<tr class="scan" data-id="{}"><td>{}</td><td>{}</td><td>{}</td><td title="{} ports">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                Esc(&scan.id),
                time_tag(Some(scan.at)),
                Esc(&scan.host),
                Esc(&scan.source),
                scan.ports.len(),
                Esc(&some_of(&scan.ports, 12)),
                scan.closed_ports
                    .map_or_else(|| "—".to_string(), |n| n.to_string()),
                Esc(&some_of(&scan.destinations, 4)),
            );
        }
        out.push_str("</tbody></table></div>");
        more(
            out,
            conns.scans.total,
            conns.scans.items.len(),
            "/api/v1/scans",
            "scans",
        );
    }
    if conns.blocks.items.is_empty() {
        out.push_str("<p>No blocks.</p>");
    } else {
        out.push_str(r#"<div class="scroll"><table id="blocks"><thead><tr><th scope="col">Blocked</th><th scope="col">Host</th><th scope="col">Network</th><th scope="col">Until</th><th scope="col" class="num">Offense</th></tr></thead><tbody>"#);
        for block in &conns.blocks.items {
            let _ = write!(
                out,
                r#"<tr class="block" data-id="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td></tr>"#,
                Esc(&block.id),
                time_tag(Some(block.at)),
                Esc(&block.host),
                Esc(&block.target),
                time_tag(Some(block.until)),
                block.offenses,
            );
        }
        out.push_str("</tbody></table></div>");
        more(
            out,
            conns.blocks.total,
            conns.blocks.items.len(),
            "/api/v1/blocks",
            "blocks",
        );
    }
    out.push_str("</section>");
}

/// Everything the overview shows.
pub struct OverviewPage<'a> {
    pub overview: &'a Overview,
    pub problems: &'a Page<TargetSummary>,
    pub targets: &'a Page<TargetSummary>,
    pub visuals: &'a [TargetVisuals],
    pub findings: &'a [Finding],
    pub filters: &'a ListFilters,
    /// The connection log's section (`None` on a filtered list).
    pub conns: Option<&'a ConnsSection>,
}

/// The overview: the overall state, what needs attention, the vantage points, and every
/// target grouped and paginated.
pub fn overview(ctx: &PageContext<'_>, page: &OverviewPage<'_>) -> String {
    let counts = &page.overview.counts;
    let worst = counts.worst();
    let mut body = String::with_capacity(64 * 1024);
    let _ = write!(
        body,
        r#"<section id="overall" class="state v-{}" data-verdict="{}"><h1>{}</h1><p class="counts">"#,
        worst.as_str(),
        worst.as_str(),
        Esc(&headline(counts))
    );
    for verdict in Verdict::ALL {
        let n = counts.get(verdict);
        if n == 0 {
            continue;
        }
        let _ = write!(
            body,
            r#"<a class="count v-{}" data-verdict="{}" data-count="{n}" href="{}">{n} {}</a> "#,
            verdict.as_str(),
            verdict.as_str(),
            Esc(&with_query(
                &ctx.href("/"),
                &[("verdict", verdict.as_str())]
            )),
            Esc(verdict.label())
        );
    }
    body.push_str("</p></section>");

    findings_section(&mut body, page.findings);

    if !page.problems.items.is_empty() {
        body.push_str(
            r#"<section><h2>Needs attention</h2><div class="scroll"><table id="problems">"#,
        );
        body.push_str(TARGET_TABLE_HEAD);
        body.push_str("<tbody>");
        target_rows(ctx, &mut body, &page.problems.items, page.visuals, false);
        body.push_str("</tbody></table></div>");
        if page.problems.total > page.problems.items.len() as u64 {
            let _ = write!(
                body,
                r#"<p><a href="{}">All {} targets that need attention</a></p>"#,
                Esc(&with_query(
                    &ctx.href("/"),
                    &[
                        ("verdict", "down,partial,flappy,degraded"),
                        ("sort", "worst")
                    ]
                )),
                page.problems.total
            );
        }
        body.push_str("</section>");
    }

    if page.overview.vantage_points.len() > 1 {
        body.push_str(r#"<section><h2>Vantage points</h2><div class="scroll"><table id="vantage-points"><thead><tr><th scope="col">Vantage point</th><th scope="col">Last seen</th>"#);
        for verdict in Verdict::ALL {
            let _ = write!(
                body,
                r#"<th scope="col" class="num">{}</th>"#,
                Esc(verdict.label())
            );
        }
        body.push_str("</tr></thead><tbody>");
        for vantage in &page.overview.vantage_points {
            let _ = write!(
                body,
                r#"<tr data-vantage="{}"><td>{}</td><td>{}</td>"#,
                Esc(&vantage.name),
                Esc(&vantage.name),
                time_tag(vantage.last_seen)
            );
            for verdict in Verdict::ALL {
                let _ = write!(
                    body,
                    r#"<td class="num">{}</td>"#,
                    vantage.counts.get(verdict)
                );
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table></div></section>");
    }

    if let Some(conns) = page.conns {
        conns_section(ctx, &mut body, conns);
    }

    // The filter form: a plain GET form, so it works without JavaScript.
    let filters = page.filters;
    let _ = write!(
        body,
        r#"<section><h2>Targets</h2><form class="filters" method="get" action="{}"><label>Group <select name="group"><option value="">any</option>"#,
        Esc(&ctx.href("/"))
    );
    for group in &page.overview.groups {
        let _ = write!(
            body,
            r#"<option value="{}"{}>{} ({})</option>"#,
            Esc(&group.name),
            if group.name == filters.group {
                " selected"
            } else {
                ""
            },
            Esc(if group.name.is_empty() {
                "(no group)"
            } else {
                &group.name
            }),
            group.counts.total()
        );
    }
    body.push_str(
        r#"</select></label><label>Verdict <select name="verdict"><option value="">any</option>"#,
    );
    for verdict in Verdict::ALL {
        let _ = write!(
            body,
            r#"<option value="{}"{}>{}</option>"#,
            verdict.as_str(),
            if filters.verdict == verdict.as_str() {
                " selected"
            } else {
                ""
            },
            Esc(verdict.label())
        );
    }
    body.push_str(
        r#"</select></label><label>Kind <select name="kind"><option value="">any</option>"#,
    );
    for kind in ["tcp", "http"] {
        let _ = write!(
            body,
            r#"<option value="{kind}"{}>{kind}</option>"#,
            if filters.kind == kind {
                " selected"
            } else {
                ""
            }
        );
    }
    let _ = write!(
        body,
        r#"</select></label><label>Name <input type="search" name="q" value="{}" placeholder="part of a name"></label>"#,
        Esc(&filters.search)
    );
    if !filters.domain.is_empty() {
        let _ = write!(
            body,
            r#"<input type="hidden" name="domain" value="{}">"#,
            Esc(&filters.domain)
        );
    }
    body.push_str(r#"<button type="submit">Show</button></form>"#);
    body.push_str(r#"<div class="scroll"><table id="targets">"#);
    body.push_str(TARGET_TABLE_HEAD);
    body.push_str("<tbody>");
    let grouped = filters.sort.is_empty() || filters.sort == "group";
    target_rows(ctx, &mut body, &page.targets.items, page.visuals, grouped);
    if page.targets.items.is_empty() {
        body.push_str(r#"<tr><td colspan="8">No target matches.</td></tr>"#);
    }
    body.push_str("</tbody></table></div>");
    let pairs = |number: &str| -> Vec<(String, String)> {
        filters
            .pairs(number)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    pagination(ctx, &mut body, page.targets, "/", &pairs, "targets");
    body.push_str("</section>");
    document(ctx, "Overview", &body)
}

/// Everything a target page shows.
pub struct TargetPage<'a> {
    pub detail: &'a TargetDetail,
    pub history: &'a History,
    /// The range as asked (`24h`, or empty when from/to were given).
    pub range_label: &'a str,
    pub changes: &'a Page<StateChange>,
    pub checks: &'a [RawCheck],
}

/// A target: its verdict, availability per window, 90 days, history at the asked range, the
/// vantage points' views, findings, state changes and the latest raw checks.
pub fn target(ctx: &PageContext<'_>, page: &TargetPage<'_>) -> String {
    let summary = &page.detail.summary;
    let mut body = String::with_capacity(32 * 1024);
    let _ = write!(
        body,
        r#"<section id="target" class="state v-{}" data-id="{}" data-verdict="{}"><h1>{}</h1><p>{} "#,
        summary.verdict.as_str(),
        Esc(&summary.id),
        summary.verdict.as_str(),
        Esc(&summary.name),
        verdict_chip(summary.verdict)
    );
    if let Some(reason) = &summary.reason {
        let _ = write!(body, r#"<span class="reason">{}</span> "#, Esc(reason));
    }
    let _ = write!(
        body,
        "since {}</p><p class=\"meta\">{}",
        time_tag(summary.since),
        summary.kind.as_str()
    );
    if !summary.group.is_empty() {
        let _ = write!(
            body,
            r#" · group <a href="{}">{}</a>"#,
            Esc(&with_query(&ctx.href("/"), &[("group", &summary.group)])),
            Esc(&summary.group)
        );
    }
    if let Some(domain) = &summary.domain {
        let _ = write!(
            body,
            r#" · domain <a href="{}">{}</a>"#,
            Esc(&with_query(&ctx.href("/"), &[("domain", domain)])),
            Esc(domain)
        );
    }
    let _ = write!(
        body,
        " · last check {} · {} state changes in 24 h</p>",
        time_tag(summary.last_check),
        summary.state_changes_24h
    );
    let badge = ctx.href(&format!(
        "/badge/{}/availability/30d.svg",
        encode(&summary.id)
    ));
    let status_badge = ctx.href(&format!("/badge/{}/status.svg", encode(&summary.id)));
    let _ = write!(
        body,
        r#"<p class="badges"><img src="{}" alt="status badge"> <img src="{}" alt="30-day availability badge"></p></section>"#,
        Esc(&status_badge),
        Esc(&badge)
    );

    body.push_str(
        r#"<section><h2>Availability</h2><div class="scroll"><table id="availability"><thead><tr>"#,
    );
    window_headers(&mut body);
    body.push_str("</tr></thead><tbody><tr>");
    for window in Window::ALL {
        body.push_str(&availability_cell(summary.availability.get(window), window));
    }
    let _ = write!(
        body,
        r#"</tr></tbody></table></div><h3>Last 90 days</h3><div class="bar-wide">{}</div></section>"#,
        svg::day_bars(&page.detail.visuals.days)
    );

    // History at the asked range.
    let history = page.history;
    let _ = write!(
        body,
        r#"<section id="history"><h2>History</h2><p class="ranges">"#
    );
    for span in ["1h", "24h", "7d", "30d", "90d", "365d"] {
        let href = with_query(&ctx.target_href(&summary.id), &[("range", span)]);
        if page.range_label == span {
            let _ = write!(body, r#"<strong>{span}</strong> "#);
        } else {
            let _ = write!(body, r#"<a href="{}">{span}</a> "#, Esc(&href));
        }
    }
    let _ = write!(
        body,
        r#"</p><form class="filters" method="get" action="{}"><label>From <input name="from" value="{}" placeholder="2025-03-01T00:00:00Z"></label><label>To <input name="to" value="{}"></label><button type="submit">Show</button></form>"#,
        Esc(&ctx.target_href(&summary.id)),
        history.range.from.rfc3339(),
        history.range.to.rfc3339()
    );
    let (checks, up, down) = history.points.iter().fold((0, 0, 0), |acc, p| {
        (acc.0 + p.checks, acc.1 + p.up, acc.2 + p.down)
    });
    let overall = (checks > 0).then(|| up as f64 / checks as f64);
    let _ = write!(
        body,
        r#"<p data-tier="{}">{} to {}: <strong class="{}">{}</strong> available, {} checks, {} down (one bar per {}).</p><div class="chart">{}</div></section>"#,
        history.tier.as_str(),
        time_tag(Some(history.range.from)),
        time_tag(Some(history.range.to)),
        availability_class(overall),
        percent(overall),
        checks,
        down,
        history.tier.as_str(),
        svg::history_chart(history)
    );

    if !page.detail.vantage_points.is_empty() {
        body.push_str(r#"<section><h2>Vantage points</h2><div class="scroll"><table id="vantage-points"><thead><tr><th scope="col">Vantage point</th><th scope="col">Verdict</th><th scope="col">Reason</th><th scope="col" class="num">24 h</th><th scope="col" class="num">30 d</th><th scope="col" class="num">Median</th><th scope="col">Last check</th></tr></thead><tbody>"#);
        for vantage in &page.detail.vantage_points {
            let _ = write!(
                body,
                r#"<tr data-vantage="{}" data-verdict="{}"><td>{}</td><td>{}</td><td>{}</td>{}{}<td class="num">{}</td><td>{}</td></tr>"#,
                Esc(&vantage.vantage),
                vantage.verdict.as_str(),
                Esc(&vantage.vantage),
                verdict_chip(vantage.verdict),
                Esc(vantage.reason.as_deref().unwrap_or("")),
                availability_cell(vantage.availability.day, Window::Day),
                availability_cell(vantage.availability.month, Window::Month),
                millis(vantage.latency_p50_ms),
                time_tag(vantage.last_check)
            );
        }
        body.push_str("</tbody></table></div></section>");
    }

    findings_section(&mut body, &page.detail.findings);

    body.push_str(r#"<section><h2>State changes</h2>"#);
    changes_table(ctx, &mut body, &page.changes.items, false);
    body.push_str("</section>");

    body.push_str(r#"<section><h2>Latest checks</h2><div class="scroll"><table id="checks"><thead><tr><th scope="col">Time</th><th scope="col">Vantage</th><th scope="col">Address</th><th scope="col">Outcome</th><th scope="col">Reason</th><th scope="col">Error</th><th scope="col" class="num">Latency</th><th scope="col" class="num">Status</th><th scope="col">Phases (DNS · connect · TLS · first byte · total)</th></tr></thead><tbody>"#);
    for check in page.checks {
        let phases = check
            .phases
            .as_ref()
            .map(|p| {
                [
                    p.dns_ms,
                    p.connect_ms,
                    p.tls_ms,
                    p.first_byte_ms,
                    p.total_ms,
                ]
                .map(millis)
                .join(" · ")
            })
            .unwrap_or_default();
        let _ = write!(
            body,
            r#"<tr data-outcome="{}"><td>{}</td><td>{}</td><td>{}</td><td><span class="outcome o-{}">{}</span></td><td>{}</td><td class="error">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            check.outcome.as_str(),
            time_tag(Some(check.at)),
            Esc(&check.vantage),
            Esc(check.address.as_deref().unwrap_or("")),
            check.outcome.as_str(),
            check.outcome.as_str(),
            check.reason.map(Reason::as_str).unwrap_or(""),
            Esc(check.error.as_deref().unwrap_or("")),
            millis(check.latency_ms),
            check.status_code.map(|c| c.to_string()).unwrap_or_default(),
            Esc(&phases)
        );
    }
    if page.checks.is_empty() {
        body.push_str(r#"<tr><td colspan="9">No check in the last hour.</td></tr>"#);
    }
    body.push_str("</tbody></table></div></section>");
    document(ctx, &summary.name, &body)
}

fn changes_table(
    ctx: &PageContext<'_>,
    out: &mut String,
    changes: &[StateChange],
    with_target: bool,
) {
    out.push_str(r#"<div class="scroll"><table id="changes"><thead><tr><th scope="col">Time</th>"#);
    if with_target {
        out.push_str(r#"<th scope="col">Target</th>"#);
    }
    out.push_str(r#"<th scope="col">Change</th><th scope="col">Reason</th><th scope="col">Vantage</th></tr></thead><tbody>"#);
    for change in changes {
        let _ = write!(
            out,
            r#"<tr data-to="{}"><td>{}</td>"#,
            change.to.as_str(),
            time_tag(Some(change.at))
        );
        if with_target {
            let _ = write!(
                out,
                r#"<td><a href="{}">{}</a></td>"#,
                Esc(&ctx.target_href(&change.target_id)),
                Esc(&change.target_name)
            );
        }
        let _ = write!(
            out,
            r#"<td>{} → {}</td><td>{}</td><td>{}</td></tr>"#,
            verdict_chip(change.from),
            verdict_chip(change.to),
            Esc(change.reason.as_deref().unwrap_or("")),
            Esc(change.vantage.as_deref().unwrap_or("all"))
        );
    }
    if changes.is_empty() {
        let span = if with_target { 5 } else { 4 };
        let _ = write!(
            out,
            r#"<tr><td colspan="{span}">No state change in this range.</td></tr>"#
        );
    }
    out.push_str("</tbody></table></div>");
}

/// Availability per HTTP domain.
pub fn domains(ctx: &PageContext<'_>, domains: &[DomainAvailability]) -> String {
    let mut body = String::from(
        r#"<h1>Availability per domain</h1><div class="scroll"><table id="domains"><thead><tr><th scope="col">Domain</th><th scope="col" class="num">Targets</th><th scope="col">State</th>"#,
    );
    window_headers(&mut body);
    body.push_str("</tr></thead><tbody>");
    for domain in domains {
        let worst = domain.counts.worst();
        let _ = write!(
            body,
            r#"<tr data-domain="{}"><td><a href="{}">{}</a></td><td class="num">{}</td><td>{}</td>"#,
            Esc(&domain.domain),
            Esc(&with_query(&ctx.href("/"), &[("domain", &domain.domain)])),
            Esc(&domain.domain),
            domain.targets,
            verdict_chip(worst)
        );
        for window in Window::ALL {
            body.push_str(&availability_cell(domain.availability.get(window), window));
        }
        body.push_str("</tr>");
    }
    if domains.is_empty() {
        body.push_str(r#"<tr><td colspan="8">No HTTP targets.</td></tr>"#);
    }
    body.push_str("</tbody></table></div>");
    document(ctx, "Domains", &body)
}

/// The flappy targets, most state changes first.
pub fn flappy(
    ctx: &PageContext<'_>,
    page: &Page<TargetSummary>,
    visuals: &[TargetVisuals],
) -> String {
    let mut body = String::from(
        r#"<h1>Flappy targets</h1><p>Targets that keep changing between up and down, most changes in the last 24 hours first.</p><div class="scroll"><table id="flappy"><thead><tr><th scope="col">Target</th><th scope="col" class="num">Changes, 24 h</th><th scope="col">Flappy since</th><th scope="col">Reason</th><th scope="col" class="num">24 h</th><th scope="col">Latency, 24 h</th></tr></thead><tbody>"#,
    );
    for target in &page.items {
        let spark = visuals
            .iter()
            .find(|v| v.id == target.id)
            .map(|v| svg::sparkline(&v.latency))
            .unwrap_or_default();
        let _ = write!(
            body,
            r#"<tr class="target" data-id="{}" data-verdict="{}"><td><a href="{}">{}</a></td><td class="num">{}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>"#,
            Esc(&target.id),
            target.verdict.as_str(),
            Esc(&ctx.target_href(&target.id)),
            Esc(&target.name),
            target.state_changes_24h,
            time_tag(target.since),
            Esc(target.reason.as_deref().unwrap_or("")),
            availability_cell(target.availability.day, Window::Day),
            spark
        );
    }
    if page.items.is_empty() {
        body.push_str(r#"<tr><td colspan="6">Nothing is flapping.</td></tr>"#);
    }
    body.push_str("</tbody></table></div>");
    let pairs = |number: &str| vec![("page".to_string(), number.to_string())];
    pagination(ctx, &mut body, page, "/flappy", &pairs, "flappy targets");
    document(ctx, "Flappy", &body)
}

/// State changes over a range, newest first.
pub fn incidents(
    ctx: &PageContext<'_>,
    page: &Page<StateChange>,
    range: TimeRange,
    range_label: &str,
) -> String {
    let mut body = String::from(r#"<h1>Incidents</h1><p class="ranges">"#);
    for span in ["24h", "7d", "30d", "90d", "365d"] {
        if span == range_label {
            let _ = write!(body, "<strong>{span}</strong> ");
        } else {
            let _ = write!(
                body,
                r#"<a href="{}">{span}</a> "#,
                Esc(&with_query(&ctx.href("/incidents"), &[("range", span)]))
            );
        }
    }
    let _ = write!(
        body,
        "</p><p>State changes from {} to {}.</p>",
        time_tag(Some(range.from)),
        time_tag(Some(range.to))
    );
    changes_table(ctx, &mut body, &page.items, true);
    let from = range.from.rfc3339();
    let to = range.to.rfc3339();
    let pairs = |number: &str| {
        if range_label.is_empty() {
            vec![
                ("from".to_string(), from.clone()),
                ("to".to_string(), to.clone()),
                ("page".to_string(), number.to_string()),
            ]
        } else {
            vec![
                ("range".to_string(), range_label.to_string()),
                ("page".to_string(), number.to_string()),
            ]
        }
    };
    pagination(ctx, &mut body, page, "/incidents", &pairs, "state changes");
    document(ctx, "Incidents", &body)
}

/// An error page: what went wrong, in a sentence.
pub fn error(ctx: &PageContext<'_>, title: &str, detail: &str) -> String {
    let body = format!(
        r#"<section id="error" class="state v-down"><h1>{}</h1><p>{}</p><p><a href="{}">Back to the overview</a></p></section>"#,
        Esc(title),
        Esc(detail),
        Esc(&ctx.href("/"))
    );
    document(ctx, title, &body)
}
