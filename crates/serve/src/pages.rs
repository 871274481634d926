//! The analyst's pages: server-rendered HTML (minijinja, auto-escaped), the assets compiled
//! in. Forms post to handlers that call the same store functions as the API.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use opensoc_attack::{Catalog, Taxonomy, TechniqueId};
use opensoc_verdict::{Severity, Verdict};
use serde::{Deserialize, Serialize};

use crate::security::{same_secret, TOKEN_COOKIE};
use crate::store::{AlertFilter, Stats};
use crate::web::{blocking, ingest, source_name, store_review, ApiError, AppState, FeedbackBody};

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

/// The templates, compiled into the binary.
pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("queue.html", include_str!("../templates/queue.html")),
        ("alert.html", include_str!("../templates/alert.html")),
        ("overview.html", include_str!("../templates/overview.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("error.html", include_str!("../templates/error.html")),
    ] {
        // The sources are part of the binary: a syntax error fails the unit tests.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!("template {name}: {e}");
        }
    }
    env.add_filter("datetime", datetime);
    // Built from a parsed technique ID only (digits), so it needs no escaping.
    env.add_filter("attack_url", |id: &str| {
        minijinja::Value::from_safe_string(attack_url(id))
    });
    env
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn datetime(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The technique's page on attack.mitre.org (`T1059.004` -> `/techniques/T1059/004/`),
/// empty for anything that is not a technique ID.
pub fn attack_url(id: &str) -> String {
    match id.parse::<TechniqueId>() {
        Ok(t) => match t.sub() {
            Some(sub) => format!(
                "https://attack.mitre.org/techniques/T{:04}/{sub:03}/",
                t.base()
            ),
            None => format!("https://attack.mitre.org/techniques/T{:04}/", t.base()),
        },
        Err(_) => String::new(),
    }
}

fn render(state: &AppState, name: &str, ctx: minijinja::Value) -> Response {
    let page = state
        .0
        .templates
        .get_template(name)
        .and_then(|t| t.render(ctx));
    match page {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("rendering {name}: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

fn error_page(state: &AppState, err: ApiError) -> Response {
    let status = err.status;
    let mut res = render(
        state,
        "error.html",
        context! { status => status.as_u16(), message => err.message, authed => true },
    );
    *res.status_mut() = status;
    res
}

pub async fn not_found(State(state): State<AppState>) -> Response {
    error_page(&state, ApiError::new(StatusCode::NOT_FOUND, "no such page"))
}

pub async fn css() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        CSS,
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        JS,
    )
}

fn categories() -> Vec<String> {
    Taxonomy::builtin().categories().to_vec()
}

pub async fn queue(
    State(state): State<AppState>,
    query: Result<Query<AlertFilter>, QueryRejection>,
) -> Response {
    let filter = match query {
        Ok(Query(f)) => f,
        Err(e) => return error_page(&state, e.into()),
    };
    let store = state.0.store.clone();
    let f = filter.clone();
    let data = blocking(move || Ok((store.alerts(&f)?, store.sources()?, store.counts()?))).await;
    let (page, sources, stats) = match data {
        Ok(d) => d,
        Err(e) => return error_page(&state, e),
    };
    let next_offset = (i64::from(page.offset) + i64::from(page.limit) < page.total)
        .then(|| page.offset + page.limit);
    let prev_offset = (page.offset > 0).then(|| page.offset.saturating_sub(page.limit));
    render(
        &state,
        "queue.html",
        context! {
            page, filter => filter_view(&filter), sources, stats, next_offset, prev_offset,
            categories => categories(), severities => Severity::ALL.map(|s| s.as_str()),
            csrf => &state.0.csrf, authed => true, nav => "queue",
        },
    )
}

/// The filter as the form shows it (all strings, empty when unset).
#[derive(Serialize)]
struct FilterView {
    severity: String,
    category: String,
    technique: String,
    source: String,
    status: String,
    since: String,
    until: String,
    q: String,
    threats_only: bool,
    limit: u32,
    /// The query string without paging, for the next/previous links.
    query: String,
}

fn filter_view(f: &AlertFilter) -> FilterView {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("severity", &f.severity),
        ("category", &f.category),
        ("technique", &f.technique),
        ("source", &f.source),
        ("status", &f.status),
        ("since", &f.since),
        ("until", &f.until),
        ("q", &f.q),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            query.push((k, v.clone()));
        }
    }
    if f.threats_only == Some(true) {
        query.push(("threats_only", "true".into()));
    }
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    FilterView {
        severity: s(&f.severity),
        category: s(&f.category),
        technique: s(&f.technique),
        source: s(&f.source),
        status: s(&f.status),
        since: s(&f.since),
        until: s(&f.until),
        q: s(&f.q),
        threats_only: f.threats_only == Some(true),
        limit: f.limit.unwrap_or(crate::store::DEFAULT_PAGE),
        query,
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A piece of the entry text, marked when a detector pointed at it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Segment {
    pub text: String,
    /// The detector classes whose spans cover this piece (empty: plain text).
    pub hits: String,
}

/// Splits `input` at the signals' byte spans; spans off a character boundary or outside
/// the text are ignored (the verdict is input too).
pub fn segments(input: &str, verdict: Option<&Verdict>) -> Vec<Segment> {
    let spans: Vec<(usize, usize, &str)> = verdict
        .map(|v| v.signals.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|s| s.start < s.end && input.get(s.start..s.end).is_some())
        .map(|s| (s.start, s.end, s.class.as_str()))
        .collect();
    let mut cuts: Vec<usize> = vec![0, input.len()];
    for (a, b, _) in &spans {
        cuts.push(*a);
        cuts.push(*b);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Segment> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let Some(text) = input.get(a..b) else {
            continue;
        };
        let mut classes: Vec<&str> = spans
            .iter()
            .filter(|(s, e, _)| *s <= a && b <= *e)
            .map(|(_, _, c)| *c)
            .collect();
        classes.sort_unstable();
        classes.dedup();
        let hits = classes.join(", ");
        match out.last_mut() {
            Some(last) if last.hits == hits => last.text.push_str(text),
            _ => out.push(Segment {
                text: text.to_owned(),
                hits,
            }),
        }
    }
    out
}

pub async fn alert(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(e) => return error_page(&state, e.into()),
    };
    let store = state.0.store.clone();
    let found = blocking(move || {
        store
            .alert(id)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no alert {id}")))
    })
    .await;
    let alert = match found {
        Ok(a) => a,
        Err(e) => return error_page(&state, e),
    };
    let shown = alert
        .verdict
        .as_ref()
        .map(|v| v.input.as_str())
        .filter(|i| !i.is_empty())
        .unwrap_or(&alert.text);
    let segments = segments(shown, alert.verdict.as_ref());
    let types: Vec<&str> = Taxonomy::builtin()
        .fine_types()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    render(
        &state,
        "alert.html",
        context! {
            alert, segments, types, severities => Severity::ALL.map(|s| s.as_str()),
            csrf => &state.0.csrf, authed => true,
        },
    )
}

/// The review form: the API's feedback body plus the form token.
#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    action: String,
    #[serde(default)]
    threat_type: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

fn check_csrf(state: &AppState, given: &str) -> Result<(), ApiError> {
    if same_secret(given, &state.0.csrf) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the form is out of date or not from this page: reload and try again",
        ))
    }
}

pub async fn review(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<ReviewForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let result = async {
        let Path(id) = id?;
        let Form(form) = form.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        check_csrf(&state, &form.csrf)?;
        // The relabel fields are sent with every form; they count for relabel only.
        let relabel = form.action == "relabel";
        let body = FeedbackBody {
            action: form.action,
            threat_type: form.threat_type.filter(|_| relabel),
            severity: form.severity.filter(|_| relabel),
            note: form.note,
        };
        store_review(&state, id, body.validate()?).await?;
        Ok::<_, ApiError>(id)
    }
    .await;
    match result {
        Ok(id) => Redirect::to(&format!("/alerts/{id}")).into_response(),
        Err(e) => error_page(&state, e),
    }
}

pub async fn upload(State(state): State<AppState>, mut multipart: Multipart) -> Response {
    let result = async {
        let mut csrf = None;
        let mut file: Option<(String, Vec<u8>)> = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?
        {
            match field.name() {
                Some("_csrf") => {
                    csrf = Some(
                        field
                            .text()
                            .await
                            .map_err(|e| ApiError::new(e.status(), e.body_text()))?,
                    )
                }
                Some("file") => {
                    let name = source_name(field.file_name().unwrap_or("upload"));
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
                    file = Some((name, bytes.to_vec()));
                }
                _ => {}
            }
        }
        check_csrf(&state, csrf.as_deref().unwrap_or(""))?;
        let (name, bytes) = file.ok_or_else(|| ApiError::bad_request("no file in the form"))?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("the file is empty"));
        }
        let source = format!("upload:{name}");
        let st = state.clone();
        blocking(move || ingest(&st, &source, &name, &bytes, None)).await
    }
    .await;
    match result {
        Ok(reply) => {
            Redirect::to(&format!("/?source={}", url_encode(&reply.source))).into_response()
        }
        Err(e) => error_page(&state, e),
    }
}

/// One tactic's column of the ATT&CK heat map.
#[derive(Serialize)]
struct TacticColumn {
    name: &'static str,
    techniques: Vec<HeatCell>,
}

#[derive(Serialize)]
struct HeatCell {
    id: String,
    name: String,
    count: i64,
    /// 1 (few) to 4 (most seen).
    heat: i64,
}

/// The ATT&CK matrix columns (every tactic) with the techniques seen under each.
fn heat_map(stats: &Stats) -> Vec<TacticColumn> {
    let catalog = Catalog::enterprise();
    let max = stats
        .by_technique
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(1)
        .max(1);
    catalog
        .tactics()
        .iter()
        .map(|tactic| {
            let techniques = stats
                .by_technique
                .iter()
                .filter_map(|(id, count)| {
                    let t = catalog.resolve(&id.parse().ok()?)?;
                    t.tactics
                        .iter()
                        .any(|x| x.id == tactic.id)
                        .then(|| HeatCell {
                            id: id.clone(),
                            name: t.name.to_owned(),
                            count: *count,
                            heat: ((count * 4 + max - 1) / max).clamp(1, 4),
                        })
                })
                .collect();
            TacticColumn {
                name: tactic.name,
                techniques,
            }
        })
        .collect()
}

/// A bar of the alerts-over-time chart (SVG coordinates; no inline style under the CSP).
#[derive(Serialize)]
struct Bar {
    label: String,
    count: i64,
    x: i64,
    y: i64,
    height: i64,
}

const CHART_HEIGHT: i64 = 120;
const BAR_STEP: i64 = 14;

fn time_bars(stats: &Stats) -> Vec<Bar> {
    let max = stats
        .by_hour
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(1)
        .max(1);
    stats
        .by_hour
        .iter()
        .enumerate()
        .map(|(i, (label, count))| {
            let height = (count * CHART_HEIGHT / max).max(1);
            Bar {
                label: label.clone(),
                count: *count,
                x: i as i64 * BAR_STEP,
                y: CHART_HEIGHT - height,
                height,
            }
        })
        .collect()
}

pub async fn overview(State(state): State<AppState>) -> Response {
    let store = state.0.store.clone();
    let stats = match blocking(move || Ok(store.stats()?)).await {
        Ok(s) => s,
        Err(e) => return error_page(&state, e),
    };
    let bars = time_bars(&stats);
    let chart_width = (bars.len() as i64 * BAR_STEP).max(BAR_STEP);
    let matrix = heat_map(&stats);
    let max_category = stats.by_category.iter().map(|(_, n)| *n).max().unwrap_or(1);
    let max_severity = stats.by_severity.iter().map(|(_, n)| *n).max().unwrap_or(1);
    render(
        &state,
        "overview.html",
        context! {
            stats, bars, chart_width, chart_height => CHART_HEIGHT, matrix, max_category,
            max_severity, authed => true, nav => "overview",
        },
    )
}

pub async fn login_form(State(state): State<AppState>) -> Response {
    if state.token().is_none() {
        return Redirect::to("/").into_response();
    }
    render(
        &state,
        "login.html",
        context! { failed => false, authed => false },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(
    State(state): State<AppState>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(token) = state.token() else {
        return Redirect::to("/").into_response();
    };
    match form {
        Ok(Form(f)) if same_secret(f.token.trim(), token) => {
            let mut res = Redirect::to("/").into_response();
            let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        _ => {
            let mut res = render(
                &state,
                "login.html",
                context! { failed => true, authed => false },
            );
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opensoc_verdict::DetectorHit;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(datetime(0), "1970-01-01 00:00:00");
        assert_eq!(datetime(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(datetime(1_796_061_845), "2026-11-30 18:04:05");
    }

    #[test]
    fn technique_links_point_at_attack_pages() {
        assert_eq!(
            attack_url("T1190"),
            "https://attack.mitre.org/techniques/T1190/"
        );
        assert_eq!(
            attack_url("T1059.004"),
            "https://attack.mitre.org/techniques/T1059/004/"
        );
        assert_eq!(attack_url("javascript:alert(1)"), "");
    }

    fn hit(class: &str, start: usize, end: usize) -> DetectorHit {
        DetectorHit {
            class: class.into(),
            rule: "r".into(),
            start,
            end,
            text: String::new(),
            decoded: false,
        }
    }

    #[test]
    fn signal_spans_split_the_text_and_bad_spans_are_ignored() {
        let input = "GET /?q=<script>é</script> HTTP/1.1";
        let mut v = Verdict::from_answer(
            "a".into(),
            input.into(),
            String::new(),
            opensoc_verdict::Answer::default(),
        );
        let start = input.find('<').unwrap();
        let end = input.find(" HTTP").unwrap();
        v.signals = vec![
            hit("xss", start, end),
            hit("sqli", start, start + 8),
            // Inside the two-byte é, and past the end: both ignored.
            hit("bad", input.find('é').unwrap() + 1, end),
            hit("bad", 0, 1000),
        ];
        let segs = segments(input, Some(&v));
        let joined: String = segs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, input);
        assert_eq!(segs[0].hits, "");
        assert_eq!(segs[1].text, "<script>");
        assert_eq!(segs[1].hits, "sqli, xss");
        assert_eq!(segs[2].hits, "xss");
        assert!(segs.iter().all(|s| !s.hits.contains("bad")));
    }

    #[test]
    fn the_templates_parse() {
        let env = templates();
        for name in [
            "queue.html",
            "alert.html",
            "overview.html",
            "login.html",
            "error.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}
