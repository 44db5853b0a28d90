//! Inline SVG: the latency sparkline, the 90-day bar, a history chart, and shields-style badges.
//!
//! Colours in inline SVG come from CSS classes (so light and dark themes apply); badges are
//! standalone images and carry their colours.

use super::format::{Esc, Fixed, Millis, Percent, availability_class, millis};
use super::model::{DayBar, History, HumanTime, LatencyPoint, Tier, Verdict};
use std::fmt::Write;

/// A latency line: one polyline per run of points with data (a gap where nothing answered).
pub fn sparkline(points: &[LatencyPoint]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let values: Vec<f64> = points.iter().filter_map(|p| p.p50_ms).collect();
    let max = values.iter().cloned().fold(0.0_f64, f64::max).max(1.0);
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let step = if points.len() > 1 {
        W / (points.len() - 1) as f64
    } else {
        0.0
    };
    let mut out = format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="latency">"#
    );
    let title = if values.is_empty() {
        "no latency data".to_string()
    } else {
        format!(
            "median latency over 24 h: {} to {}",
            millis(Some(min)),
            millis(Some(max))
        )
    };
    let _ = write!(out, "<title>{}</title>", Esc(&title));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if !run.is_empty() {
            let _ = write!(out, r#"<polyline points="{}"/>"#, run.trim_end());
            run.clear();
        }
    };
    for (i, point) in points.iter().enumerate() {
        match point.p50_ms {
            Some(ms) => {
                let x = i as f64 * step;
                let y = H - 2.0 - (ms / max) * (H - 4.0);
                let _ = write!(run, "{},{} ", Fixed(x, 1), Fixed(y, 1));
            }
            None => flush(&mut run, &mut out),
        }
    }
    flush(&mut run, &mut out);
    out.push_str("</svg>");
    out
}

/// One bar a day, coloured by availability, with the day's figures as its tooltip. A row of
/// the overview holds 90 of these, so each is kept short: the bar's size comes from the
/// stylesheet (`svg.days rect`), only its place and colour are written.
pub fn day_bars(days: &[DayBar]) -> String {
    const STEP: usize = 4;
    let width = days.len() * STEP;
    let mut out = format!(
        r#"<svg class="days" viewBox="0 0 {width} 20" preserveAspectRatio="none" role="img" aria-label="availability per day, last {} days">"#,
        days.len()
    );
    for (i, day) in days.iter().enumerate() {
        let _ = write!(
            out,
            r#"<rect class="d {}" x="{}" width="3" height="20"><title>{}"#,
            availability_class(day.availability),
            i * STEP,
            Esc(&day.day)
        );
        if day.checks == 0 {
            out.push_str(" no checks");
        } else {
            let _ = write!(
                out,
                " {} · {}/{} up",
                Percent(day.availability),
                day.up,
                day.checks
            );
            if day.degraded > 0 {
                let _ = write!(out, ", {} degraded", day.degraded);
            }
            if day.down > 0 {
                let _ = write!(out, ", {} down", day.down);
            }
        }
        out.push_str("</title></rect>");
    }
    out.push_str("</svg>");
    out
}

/// A target's history: a bar a bucket coloured by availability, the median latency line and
/// the p95 line above it.
pub fn history_chart(history: &History) -> String {
    const W: f64 = 720.0;
    const H: f64 = 160.0;
    const STRIP: f64 = 14.0;
    let points = &history.points;
    let max = points
        .iter()
        .filter_map(|p| p.latency_p95_ms.or(p.latency_p50_ms))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let n = points.len().max(1) as f64;
    let step = W / n;
    // About 200 bytes a bucket: written once, not grown by copying.
    let mut out = String::with_capacity(256 + points.len() * 220);
    let _ = write!(
        out,
        r#"<svg class="history" viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img" aria-label="history, {} buckets of one {}">"#,
        points.len(),
        history.tier.as_str()
    );
    let lane = H - STRIP - 4.0;
    for (i, point) in points.iter().enumerate() {
        // Written in place, no `String` a bucket: a day of minutes is 1,440 of them. The
        // label is digits, dashes, colons and "UTC": nothing to escape.
        let _ = write!(
            out,
            r#"<rect class="bucket {}" x="{}" y="{}" width="{}" height="{STRIP}"><title>"#,
            availability_class(point.availability),
            Fixed(i as f64 * step, 2),
            Fixed(H - STRIP, 1),
            Fixed((step - 0.3).max(0.3), 2),
        );
        let _ = match history.tier {
            Tier::Day => write!(out, "{}", Esc(&point.start.day())),
            _ => write!(out, "{}", HumanTime(point.start)),
        };
        let _ = write!(
            out,
            ": {}, median {}, p95 {}</title></rect>",
            Percent(point.availability),
            Millis(point.latency_p50_ms),
            Millis(point.latency_p95_ms)
        );
    }
    for (class, pick) in [
        (
            "p95",
            (|p: &super::model::HistoryPoint| p.latency_p95_ms) as fn(&_) -> _,
        ),
        ("p50", |p: &super::model::HistoryPoint| p.latency_p50_ms),
    ] {
        let mut line = String::new();
        let mut lines = Vec::new();
        for (i, point) in points.iter().enumerate() {
            match pick(point) {
                Some(ms) => {
                    let x = (i as f64 + 0.5) * step;
                    let y = lane - (ms / max) * (lane - 4.0);
                    let _ = write!(line, "{},{} ", Fixed(x, 1), Fixed(y, 1));
                }
                None if !line.is_empty() => lines.push(std::mem::take(&mut line)),
                None => {}
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        for line in lines {
            let _ = write!(
                out,
                r#"<polyline class="{class}" points="{}"/>"#,
                line.trim_end()
            );
        }
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="2" y="12">{}</text>"#,
        Esc(&millis(Some(max)))
    );
    out.push_str("</svg>");
    out
}

/// The badge colour of a verdict.
pub fn verdict_colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "#2e8540",
        Verdict::Degraded => "#b58900",
        Verdict::Flappy => "#d97706",
        Verdict::Partial => "#c2410c",
        Verdict::Down => "#c62828",
        Verdict::Unknown => "#6b7280",
    }
}

/// The badge colour of an availability figure.
pub fn availability_colour(ratio: Option<f64>) -> &'static str {
    match availability_class(ratio) {
        "a-good" => "#2e8540",
        "a-fair" => "#7c9a1a",
        "a-poor" => "#d97706",
        "a-bad" => "#c62828",
        _ => "#6b7280",
    }
}

/// A shields-style badge: `label` on grey, `message` on `colour`. Widths are estimated from
/// the character count (Verdana 11 px averages about 7 px a character).
pub fn badge(label: &str, message: &str, colour: &str) -> String {
    let width = |text: &str| 10 + text.chars().count() * 7;
    let (lw, mw) = (width(label), width(message));
    let total = lw + mw;
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {message}">"##,
            r##"<title>{label}: {message}</title>"##,
            r##"<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##,
            r##"<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>"##,
            r##"<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{colour}"/><rect width="{total}" height="20" fill="url(#s)"/></g>"##,
            r##"<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">"##,
            r##"<text x="{lx}" y="14">{label}</text><text x="{mx}" y="14">{message}</text></g></svg>"##
        ),
        total = total,
        lw = lw,
        mw = mw,
        colour = colour,
        label = Esc(label),
        message = Esc(message),
        lx = lw / 2,
        mx = lw + mw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::model::UnixMs;

    fn day(n: u64, up: u64, checks: u64) -> DayBar {
        DayBar {
            day: format!("2025-01-{n:02}"),
            checks,
            up,
            degraded: 0,
            down: checks - up,
            availability: (checks > 0).then(|| up as f64 / checks as f64),
        }
    }

    #[test]
    fn ninety_days_make_ninety_bars_with_their_figures() {
        let days: Vec<DayBar> = (0..90)
            .map(|i| {
                if i == 5 {
                    day(6, 1438, 1440)
                } else {
                    day(1 + i % 28, 1440, 1440)
                }
            })
            .collect();
        let svg = day_bars(&days);
        assert_eq!(svg.matches("<rect class=\"d ").count(), 90);
        assert!(
            svg.contains("<title>2025-01-06 99.86% · 1438/1440 up, 2 down</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>2025-01-01 100% · 1440/1440 up</title>"),
            "{svg}"
        );
        assert!(svg.contains(r#"class="d a-fair""#));
    }

    #[test]
    fn a_day_without_checks_is_a_grey_bar() {
        let svg = day_bars(&[day(1, 0, 0)]);
        assert!(svg.contains(r#"class="d a-none""#));
        assert!(svg.contains("2025-01-01 no checks"));
    }

    #[test]
    fn sparkline_breaks_where_nothing_answered() {
        let points: Vec<LatencyPoint> = [Some(10.0), Some(20.0), None, Some(15.0), Some(12.0)]
            .into_iter()
            .enumerate()
            .map(|(i, p50_ms)| LatencyPoint {
                at: UnixMs(i as i64 * UnixMs::HOUR),
                p50_ms,
            })
            .collect();
        let svg = sparkline(&points);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("10 ms to 20 ms"), "{svg}");
        assert_eq!(sparkline(&[]).matches("<polyline").count(), 0);
    }

    #[test]
    fn badges_escape_their_text_and_size_to_it() {
        let svg = badge("db<1>", "99.95%", "#2e8540");
        assert!(svg.contains("db&lt;1&gt;: 99.95%"));
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width="#));
        let short = badge("a", "b", "#000");
        let long = badge("availability 30d", "99.95%", "#000");
        let width = |svg: &str| -> usize {
            svg.split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(width(&long) > width(&short));
    }
}
