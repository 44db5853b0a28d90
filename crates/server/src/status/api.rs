//! `/api/v1`: the status page's figures as JSON (described by `docs/openapi.yaml`), with
//! errors as RFC 9457 `application/problem+json` that name the bad parameter.

use super::model::*;
use super::params::Params;
use super::{
    DEFAULT_PER_PAGE, Failure, OPENAPI, StatusApp, flappy_query, history_tier, set, target_query,
    urlenc,
};
use crate::handler::{self, Response, respond};
use hyper::StatusCode;
use hyper::header;
use serde::Serialize;
use serde_json::json;

/// The longest list of raw checks one answer holds.
pub const MAX_CHECKS: u32 = 100;

pub(super) async fn route<S: StatusSource>(
    app: &StatusApp<S>,
    rest: &[&str],
    query: Option<&str>,
    now: UnixMs,
) -> Response {
    let answer = match rest {
        ["openapi.yaml"] => {
            let mut response = respond(StatusCode::OK, "application/yaml", OPENAPI);
            set(&mut response, header::CACHE_CONTROL, "no-cache");
            return response;
        }
        ["overview"] => overview(app, query, now).await,
        ["targets"] => targets(app, query, now).await,
        ["targets", id, tail @ ..] => match urlenc::decode(id, false) {
            Some(id) => match tail {
                [] => target(app, &id, query, now).await,
                ["history"] => history(app, &id, query, now).await,
                ["checks"] => checks(app, &id, query, now).await,
                _ => Err(not_found()),
            },
            None => Err(Failure::unknown_target(id)),
        },
        ["domains"] => domains(app, query, now).await,
        ["flappy"] => flappy(app, query, now).await,
        ["incidents"] => incidents(app, query, now).await,
        ["findings"] => findings(app, query, now).await,
        ["scans"] => scans(app, query, now).await,
        ["blocks"] => blocks(app, query, now).await,
        _ => Err(not_found()),
    };
    match answer {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(failure) => problem(&failure),
    }
}

fn not_found() -> Failure {
    Failure::NotFound("no such API path; see /api/v1/openapi.yaml".to_string())
}

type Answer = Result<serde_json::Value, Failure>;

fn to_value(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

async fn overview<S: StatusSource>(app: &StatusApp<S>, query: Option<&str>, now: UnixMs) -> Answer {
    Params::parse(query, &[], false)?;
    let overview = app.source.overview(now).await?;
    Ok(json!({
        "generated_at": now,
        "overall": overview.counts.worst(),
        "counts": overview.counts,
        "groups": overview.groups,
        "vantage_points": overview.vantage_points,
    }))
}

fn boolean(params: &Params, name: &str) -> Result<bool, Failure> {
    match params.get(name)? {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Failure::BadParameter(super::params::ParamError::new(
            name,
            format!("expected true or false, got {other:?}"),
        ))),
    }
}

/// A page of targets, with each one's sparkline and 90-day bar when `visuals=true`.
async fn target_page<S: StatusSource>(
    app: &StatusApp<S>,
    query: &TargetQuery,
    visuals: bool,
    now: UnixMs,
) -> Answer {
    let page = app.source.targets(query, now).await?;
    let mut value = to_value(&page);
    if visuals {
        let ids: Vec<String> = page.items.iter().map(|t| t.id.clone()).collect();
        let pictures = app.source.visuals(&ids, now).await?;
        if let Some(items) = value.get_mut("items").and_then(|v| v.as_array_mut()) {
            for item in items {
                let id = item.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                if let Some(picture) = pictures.iter().find(|p| p.id == id) {
                    item["visuals"] = json!({"latency": picture.latency, "days": picture.days});
                }
            }
        }
    }
    Ok(value)
}

async fn targets<S: StatusSource>(app: &StatusApp<S>, query: Option<&str>, now: UnixMs) -> Answer {
    let params = Params::parse(
        query,
        &[
            "group", "verdict", "kind", "domain", "q", "sort", "page", "per_page", "visuals",
        ],
        false,
    )?;
    let list = target_query(&params)?;
    let visuals = boolean(&params, "visuals")?;
    target_page(app, &list, visuals, now).await
}

async fn flappy<S: StatusSource>(app: &StatusApp<S>, query: Option<&str>, now: UnixMs) -> Answer {
    let params = Params::parse(query, &["page", "per_page", "visuals"], false)?;
    let list = flappy_query(params.page(DEFAULT_PER_PAGE)?);
    let visuals = boolean(&params, "visuals")?;
    target_page(app, &list, visuals, now).await
}

async fn target<S: StatusSource>(
    app: &StatusApp<S>,
    id: &str,
    query: Option<&str>,
    now: UnixMs,
) -> Answer {
    Params::parse(query, &[], false)?;
    let detail = app
        .source
        .target(id, now)
        .await?
        .ok_or_else(|| Failure::unknown_target(id))?;
    Ok(to_value(&detail))
}

async fn history<S: StatusSource>(
    app: &StatusApp<S>,
    id: &str,
    query: Option<&str>,
    now: UnixMs,
) -> Answer {
    let params = Params::parse(query, &["range", "from", "to", "tier"], false)?;
    let range = params.range(now, UnixMs::DAY)?;
    let tier = history_tier(&params, range)?;
    let history = app
        .source
        .history(id, range, tier)
        .await?
        .ok_or_else(|| Failure::unknown_target(id))?;
    Ok(to_value(&history))
}

async fn checks<S: StatusSource>(
    app: &StatusApp<S>,
    id: &str,
    query: Option<&str>,
    now: UnixMs,
) -> Answer {
    let params = Params::parse(query, &["limit"], false)?;
    let limit = params.number("limit", 1, MAX_CHECKS)?.unwrap_or(20);
    let checks = app
        .source
        .recent_checks(id, limit as usize, now)
        .await?
        .ok_or_else(|| Failure::unknown_target(id))?;
    Ok(json!({"target_id": id, "checks": checks}))
}

async fn domains<S: StatusSource>(app: &StatusApp<S>, query: Option<&str>, now: UnixMs) -> Answer {
    Params::parse(query, &[], false)?;
    Ok(json!({"domains": app.source.domains(now).await?}))
}

async fn incidents<S: StatusSource>(
    app: &StatusApp<S>,
    query: Option<&str>,
    now: UnixMs,
) -> Answer {
    let params = Params::parse(
        query,
        &["range", "from", "to", "target", "page", "per_page"],
        false,
    )?;
    let range = params.range(UnixMs(now.0 + 1), 7 * UnixMs::DAY)?;
    let page = app
        .source
        .state_changes(&ChangeQuery {
            target: params.text("target")?,
            range,
            page: params.page(DEFAULT_PER_PAGE)?,
        })
        .await?;
    Ok(to_value(&page))
}

async fn findings<S: StatusSource>(app: &StatusApp<S>, query: Option<&str>, now: UnixMs) -> Answer {
    Params::parse(query, &[], false)?;
    Ok(json!({"findings": app.source.findings(now).await?}))
}

/// `range` or `from`/`to` (the last 24 h, up to and including now, by default), `host`,
/// `page` and `per_page`.
fn event_query(query: Option<&str>, now: UnixMs) -> Result<EventQuery, Failure> {
    let params = Params::parse(
        query,
        &["range", "from", "to", "host", "page", "per_page"],
        false,
    )?;
    Ok(EventQuery {
        range: params.range(UnixMs(now.0 + 1), UnixMs::DAY)?,
        host: params.text("host")?,
        page: params.page(DEFAULT_PER_PAGE)?,
    })
}

async fn scans<S: StatusSource>(app: &StatusApp<S>, query: Option<&str>, now: UnixMs) -> Answer {
    let query = event_query(query, now)?;
    Ok(to_value(&app.source.scans(&query).await?))
}

async fn blocks<S: StatusSource>(app: &StatusApp<S>, query: Option<&str>, now: UnixMs) -> Answer {
    let query = event_query(query, now)?;
    Ok(to_value(&app.source.blocks(&query).await?))
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = respond(status, "application/json", body);
    set(&mut response, header::CACHE_CONTROL, "no-cache");
    response
}

/// The problem document of a failure.
pub(super) fn problem(failure: &Failure) -> Response {
    let parameter = match failure {
        Failure::BadParameter(err) => Some(err.parameter.as_str()),
        _ => None,
    };
    handler::problem(failure.status(), &failure.detail(), parameter)
}
