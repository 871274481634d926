//! Every endpoint of the API and the pages, driven through the router (no socket), with
//! the stand-in pipeline: good requests, bad input, the token, CSRF and escaping.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use common::{console, wait_analysed};

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The JSON error message of a 4xx answer.
    fn error(&self) -> String {
        assert!(
            self.status.is_client_error(),
            "{} {}",
            self.status,
            self.body
        );
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {}", self.body))
            .to_owned()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.expect("router answers");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_logs(app: &Router, uri: &str, body: impl Into<Body>) -> Reply {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body.into())
        .unwrap();
    send(app, req).await
}

async fn post_json(app: &Router, uri: &str, body: &str) -> Reply {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(app, req).await
}

const WEB_LOG: &str = "\
10.0.0.5 - - [30/Nov/2026:10:00:01 +0000] \"GET /products?id=1%20UNION SELECT%20password%20FROM%20users HTTP/1.1\" 200 512 \"-\" \"curl/8\"
10.0.0.6 - - [30/Nov/2026:10:00:02 +0000] \"GET /index.html HTTP/1.1\" 200 1024 \"-\" \"Mozilla/5.0\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_become_alerts_that_can_be_listed_filtered_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |_| {});
    let app = console.router();

    let health = get(&app, "/api/v1/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["schema_version"], 2);

    let r = post_logs(&app, "/api/v1/logs?source=web", WEB_LOG).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let ack = r.json();
    assert_eq!(ack["entries"], 2);
    assert_eq!(ack["source"], "api:web");
    wait_analysed(&console);

    let list = get(&app, "/api/v1/alerts").await.json();
    assert_eq!(list["total"], 2);
    // Newest first.
    assert!(list["alerts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("index.html"));
    let sqli = get(&app, "/api/v1/alerts?severity=HIGH&source=api:web")
        .await
        .json();
    assert_eq!(sqli["total"], 1);
    let id = sqli["alerts"][0]["id"].as_i64().unwrap();
    assert_eq!(sqli["alerts"][0]["technique_id"], "T1190");
    assert_eq!(
        get(&app, "/api/v1/alerts?threats_only=true&limit=1")
            .await
            .json()["total"],
        1
    );
    assert_eq!(
        get(&app, "/api/v1/alerts?q=index.html").await.json()["total"],
        1
    );
    assert_eq!(
        get(&app, "/api/v1/alerts?category=xss").await.json()["total"],
        0
    );

    let one = get(&app, &format!("/api/v1/alerts/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    let one = one.json();
    assert_eq!(
        one["verdict"]["threat_type"],
        "SQL Injection — Union/Boolean SQLi"
    );
    assert_eq!(one["status"], "new");

    let stats = get(&app, "/api/v1/stats").await.json();
    assert_eq!(stats["analysed"], 2);
    assert_eq!(stats["threats"], 1);

    let types = get(&app, "/api/v1/threat-types").await.json();
    assert!(types.as_array().unwrap().len() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |c| c.max_body = 4096);
    let app = console.router();

    // Unknown ids, ids of the wrong type, unknown endpoints.
    assert_eq!(
        get(&app, "/api/v1/alerts/999").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(get(&app, "/api/v1/alerts/999")
        .await
        .error()
        .contains("999"));
    assert_eq!(
        get(&app, "/api/v1/alerts/abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(!get(&app, "/api/v1/alerts/abc").await.error().is_empty());
    assert_eq!(
        get(&app, "/api/v1/nothing").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(get(&app, "/api/v1/nothing")
        .await
        .error()
        .contains("/api/v1/nothing"));

    // Filters of the wrong type or value.
    for q in [
        "limit=abc",
        "severity=SEVERE",
        "status=done",
        "since=yesterday",
        "threats_only=maybe",
        "serverity=HIGH",
        "offset=-1",
    ] {
        let r = get(&app, &format!("/api/v1/alerts?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
        assert!(!r.error().is_empty());
    }

    // Bodies: empty, over the limit, nothing readable.
    assert_eq!(
        post_logs(&app, "/api/v1/logs", "").await.status,
        StatusCode::BAD_REQUEST
    );
    let huge = post_logs(&app, "/api/v1/logs", "GET / HTTP/1.1\n".repeat(1000)).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(huge.error().contains("size limit"));
    let blank = post_logs(&app, "/api/v1/logs", "\n\n\n").await;
    assert_eq!(
        blank.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        blank.body
    );
    assert!(!blank.error().is_empty());
    assert_eq!(console.store().stats().unwrap().entries, 0);

    // Feedback: wrong types, unknown actions and types, unknown ids, not yet analysed.
    let r = post_logs(&app, "/api/v1/logs", "FAIL this one\n").await;
    let failed_id = r.json()["first"].as_i64().unwrap();
    wait_analysed(&console);
    let r = post_logs(&app, "/api/v1/logs", "GET /?q=1 UNION SELECT 2\n").await;
    let id = r.json()["first"].as_i64().unwrap();
    wait_analysed(&console);
    let fb = |id: i64| format!("/api/v1/alerts/{id}/feedback");
    let cases: &[(&str, StatusCode)] = &[
        (r#"{"action": 5}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"action": "delete"}"#, StatusCode::BAD_REQUEST),
        (r#"{"action": "relabel"}"#, StatusCode::BAD_REQUEST),
        (
            r#"{"action": "relabel", "threat_type": "Made Up"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"action": "relabel", "threat_type": "OS Command Injection Attempt", "severity": "HUGE"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"action": "confirm", "severity": "HIGH"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"action": "confirm", "extra": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("not json", StatusCode::BAD_REQUEST),
    ];
    for (body, status) in cases {
        let r = post_json(&app, &fb(id), body).await;
        assert_eq!(r.status, *status, "{body}: {}", r.body);
        assert!(!r.error().is_empty());
    }
    let long_note = format!(r#"{{"action": "confirm", "note": "{}"}}"#, "x".repeat(2001));
    assert_eq!(
        post_json(&app, &fb(id), &long_note).await.status,
        StatusCode::BAD_REQUEST
    );
    let no_type = send(
        &app,
        Request::post(fb(id))
            .body(Body::from(r#"{"action":"confirm"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(!no_type.error().is_empty());
    let r = post_json(&app, &fb(id + 1000), r#"{"action": "confirm"}"#).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post_json(&app, &fb(failed_id), r#"{"action": "confirm"}"#).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // None of it changed the alert.
    assert_eq!(
        get(&app, &format!("/api/v1/alerts/{id}")).await.json()["status"],
        "new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_stored_and_filterable() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |_| {});
    let app = console.router();
    let r = post_logs(&app, "/api/v1/logs", WEB_LOG).await.json();
    let (first, last) = (r["first"].as_i64().unwrap(), r["last"].as_i64().unwrap());
    wait_analysed(&console);

    let r = post_json(
        &app,
        &format!("/api/v1/alerts/{first}/feedback"),
        r#"{"action": "false_positive", "note": "our own scanner"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "false_positive");
    assert_eq!(r.json()["note"], "our own scanner");
    let r = post_json(
        &app,
        &format!("/api/v1/alerts/{last}/feedback"),
        r#"{"action": "relabel", "threat_type": "OS Command Injection Attempt", "severity": "critical"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["label_type"], "OS Command Injection Attempt");
    assert_eq!(r.json()["label_severity"], "CRITICAL");
    let fps = get(&app, "/api/v1/alerts?status=false_positive")
        .await
        .json();
    assert_eq!(fps["total"], 1);
    assert_eq!(fps["alerts"][0]["id"], first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |_| {});
    let app = console.router();
    let req = || {
        Request::post("/api/v1/logs")
            .header("idempotency-key", "batch-1")
            .body(Body::from(WEB_LOG))
            .unwrap()
    };
    let a = send(&app, req()).await;
    let b = send(&app, req()).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(b.json()["replayed"], true);
    assert_eq!(a.json()["first"], b.json()["first"]);
    assert_eq!(console.store().stats().unwrap().entries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef-token";
    let console = console(dir.path(), |c| c.token = Some(token.into()));
    let app = console.router();

    let r = get(&app, "/api/v1/health").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.error().contains("token"));
    assert_eq!(
        post_logs(&app, "/api/v1/logs", WEB_LOG).await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = Request::get("/api/v1/health")
        .header(header::AUTHORIZATION, "Bearer 0123456789abcdef-tokem")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, wrong).await.status, StatusCode::UNAUTHORIZED);
    let right = Request::get("/api/v1/health")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, right).await.status, StatusCode::OK);

    // Pages send the browser to the login form; the right token sets the cookie.
    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/login");
    assert_eq!(get(&app, "/login").await.status, StatusCode::OK);
    let login = |t: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={t}")))
            .unwrap()
    };
    assert_eq!(
        send(&app, login("nope")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let ok = send(&app, login(token)).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let cookie = ok.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let with_cookie = Request::get("/")
        .header(header::COOKIE, cookie.split(';').next().unwrap())
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, with_cookie).await.status, StatusCode::OK);
    assert_eq!(console.store().stats().unwrap().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |_| {});
    let app = console.router();
    let req = |origin: &str| {
        Request::post("/api/v1/logs")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, origin)
            .body(Body::from(WEB_LOG))
            .unwrap()
    };
    let evil = send(&app, req("http://evil.example")).await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    assert!(evil.error().contains("cross-origin"));
    assert_eq!(send(&app, req("null")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(console.store().stats().unwrap().entries, 0);
    // Sec-Fetch-Site, where a browser sends it, decides.
    let fetch = |site: &str| {
        Request::post("/api/v1/logs")
            .header("sec-fetch-site", site)
            .header(header::ORIGIN, "null")
            .body(Body::from(WEB_LOG))
            .unwrap()
    };
    assert_eq!(
        send(&app, fetch("cross-site")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, fetch("same-site")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(console.store().stats().unwrap().entries, 0);
    assert_eq!(
        send(&app, req("http://127.0.0.1:8080")).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send(&app, fetch("same-origin")).await.status,
        StatusCode::ACCEPTED
    );
}

/// The form token embedded in a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a form token") + 20;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_log_text_and_forms_need_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |_| {});
    let app = console.router();
    let payload = "GET /search?q=<script>alert(document.cookie)</script><img src=x onerror=alert(1)> HTTP/1.1\n";
    let r = post_logs(&app, "/api/v1/logs?source=%3Cb%3Eevil%3C%2Fb%3E", payload).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.json()["first"].as_i64().unwrap();
    wait_analysed(&console);

    for uri in [
        "/".to_owned(),
        format!("/alerts/{id}"),
        "/overview".to_owned(),
    ] {
        let page = get(&app, &uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        let csp = page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            !page.body.contains("<script>alert"),
            "{uri} has a live script"
        );
        assert!(!page.body.contains("<img src=x"), "{uri} has a live tag");
        assert!(
            !page.body.contains("<b>evil"),
            "{uri} has a live source name"
        );
    }
    let detail = get(&app, &format!("/alerts/{id}")).await.body;
    // Highlighted (the stand-in's signal) and escaped.
    assert!(
        detail.contains("<mark title=\"xss\">&lt;script</mark>&gt;alert(document.cookie)"),
        "{detail}"
    );
    assert!(detail.contains("https://attack.mitre.org/techniques/T1059/007/"));
    let queue = get(&app, "/").await.body;
    assert!(
        queue.contains("&lt;b&gt;evil&lt;&#x2f;b&gt;") || queue.contains("&lt;b&gt;evil&lt;/b&gt;")
    );

    // A review without the form token is refused; with it, it is stored.
    let form = |body: String| {
        Request::post(format!("/alerts/{id}/review"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let forged = send(&app, form("_csrf=guess&action=false_positive".into())).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        console.store().alert(id).unwrap().unwrap().status.as_str(),
        "new"
    );
    let token = csrf_of(&detail);
    let ok = send(
        &app,
        form(format!(
            "_csrf={token}&action=false_positive&note=pentest&threat_type=XSS&severity="
        )),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let stored = console.store().alert(id).unwrap().unwrap();
    assert_eq!(stored.status.as_str(), "false_positive");
    assert_eq!(stored.note.as_deref(), Some("pentest"));
    assert!(get(&app, &format!("/alerts/{id}"))
        .await
        .body
        .contains("false positive"));
    assert_eq!(
        get(&app, "/alerts/99999").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&app, "/nowhere").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_through_the_form_is_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |_| {});
    let app = console.router();
    let token = csrf_of(&get(&app, "/").await.body);
    let multipart = |csrf: &str| {
        let boundary = "XBOUNDARYX";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{csrf}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"web.log\"\r\n\
             Content-Type: text/plain\r\n\r\n{WEB_LOG}\r\n--{boundary}--\r\n"
        );
        Request::post("/upload")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap()
    };
    assert_eq!(
        send(&app, multipart("wrong")).await.status,
        StatusCode::FORBIDDEN
    );
    let r = send(&app, multipart(&token)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/?source=upload%3Aweb.log");
    wait_analysed(&console);
    let page = get(&app, "/?source=upload:web.log").await.body;
    // The template escapes `/` too.
    assert!(
        page.contains("SQL Injection — Union&#x2f;Boolean SQLi"),
        "{page}"
    );
    assert!(page.contains("web.log:1"));
    assert!(!page.contains("badge queued"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_pipeline_fails_its_entries_not_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let console = console(dir.path(), |c| c.batch = 1);
    let app = console.router();
    post_logs(&app, "/api/v1/logs", "PANIC now\n").await;
    post_logs(&app, "/api/v1/logs", WEB_LOG).await;
    wait_analysed(&console);
    let stats = console.store().stats().unwrap();
    assert_eq!((stats.failed, stats.analysed), (1, 2));
    assert_eq!(get(&app, "/api/v1/health").await.status, StatusCode::OK);
}
