//! The OpenAPI document and the docs page, over real HTTP against a server
//! started as `serve` starts it (SQLite: the document does not depend on the
//! database).
//!
//! The router and the document are built from one table (`app::api`), and
//! these tests hold them to each other from both sides: every documented
//! operation is answered by a handler (not the fallback, not 405) and every
//! other method on a documented path is 405; every `/api/v1` path written in
//! the server's source is documented.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use server::serve::Started;
use store::testing::TestDatabase;

struct TestServer {
    base: String,
    started: Started,
    server: tokio::task::JoinHandle<()>,
    db: TestDatabase,
}

async fn start() -> TestServer {
    let db = TestDatabase::create("sqlite", "openapi").await;
    let env = [
        ("TRADECORE_DATABASE__URL", db.url.as_str()),
        ("TRADECORE_SERVER__LISTEN", "127.0.0.1:0"),
        ("TRADECORE_PAPER__SEED", "7"),
        // The route walk sends a few hundred requests from one IP.
        ("TRADECORE_RATE_LIMIT__PER_IP_PER_MINUTE", "100000"),
    ];
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
    let (base, started, server) = common::listen(server::config::load(None, &env).unwrap()).await;
    TestServer { base, started, server, db }
}

impl TestServer {
    async fn stop(self) {
        self.server.abort();
        self.started.stop().await;
        self.db.remove().await;
    }

    async fn document(&self) -> Value {
        let response = reqwest::get(format!("{}/api/v1/openapi.json", self.base)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        response.json().await.unwrap()
    }
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `(path, method)` of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                out.push((path.clone(), method.to_string()));
            }
        }
    }
    out
}

/// Every `$ref` in the document, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref"
                    && let Some(target) = v.as_str()
                {
                    out.push((at.to_string(), target.to_string()));
                }
                refs(v, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1() {
    let s = start().await;
    let doc = s.document().await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi: {version}");
    // What is served is what the code builds.
    assert_eq!(doc, serde_json::to_value(server::app::openapi()).unwrap());

    let schema: Value = serde_json::from_str(include_str!("fixtures/openapi-3.1-schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the OpenAPI 3.1 schema compiles");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "the document breaks the OpenAPI 3.1 schema:\n{}", errors.join("\n"));

    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(found.len() > 50, "the schemas are referenced, not inlined everywhere: {}", found.len());
    for (at, target) in &found {
        let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{at}: non-local $ref {target}"));
        assert!(doc.pointer(pointer).is_some(), "{at}: $ref {target} resolves to nothing");
    }

    let mut ids = BTreeSet::new();
    for (path, method) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let name = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{name}: no operationId"));
        assert!(ids.insert(id.to_string()), "{name}: operationId {id} is used twice");
        assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{name}: no tag");
        assert!(op["summary"].as_str().is_some_and(|t| !t.is_empty()), "{name}: no summary");
        // Every path parameter is declared.
        for segment in path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
            let declared = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == segment && p["in"] == "path"));
            assert!(declared, "{name}: path parameter {segment} is not declared");
        }
        // Errors are problem documents (the WebSocket handshake's 400 is axum's plain text).
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("500") && responses.contains_key("429"), "{name}: shared problems missing");
        for (status, response) in responses {
            if status.starts_with(['4', '5']) && !(path == "/api/v1/ws" && status == "400") {
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                    "{name} {status}"
                );
            }
        }
        // Cookie writes need the CSRF header too; token operations name their scopes.
        let security = op["security"].as_array().cloned().unwrap_or_default();
        for requirement in &security {
            if requirement.get("session").is_some() && method != "get" {
                assert!(requirement.get("csrf").is_some(), "{name}: a cookie write without csrf");
            }
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(status), "{name}: a body but no {status}");
            }
        }
    }

    // Exact numbers are decimal strings, with the pattern the parser takes.
    for name in ["Price", "Quantity", "Money"] {
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["type"], "string", "{name}");
        assert!(schema["pattern"].is_string(), "{name}");
        assert!(schema["examples"][0].is_string(), "{name}");
    }
    assert_eq!(doc["components"]["schemas"]["Timestamp"]["format"], "date-time");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(
        schemes["session"],
        json!({"type": "apiKey", "in": "cookie", "name": "tc_session", "description": schemes["session"]["description"]})
    );
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    assert_eq!(schemes["token"]["scheme"], "bearer");
    s.stop().await;
}

/// A value for a path parameter.
fn fill(path: &str) -> String {
    path.replace("{symbol}", "BTC-USDT").replace("{account}", "1").replace("{order}", "1").replace("{id}", "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_router_agree() {
    let s = start().await;
    let doc = s.document().await;
    // No redirects: the docs page's 303 is its documented answer.
    let client = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let documented: BTreeMap<String, BTreeSet<String>> =
        operations(&doc).into_iter().fold(BTreeMap::new(), |mut m, (p, op)| {
            m.entry(p).or_default().insert(op);
            m
        });
    assert!(documented.len() >= 30, "{} paths", documented.len());
    for (path, methods) in &documented {
        let url = format!("{}{}", s.base, fill(path));
        for method in METHODS {
            let http = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // No credentials and no body: handlers answer 401, 415, 400... but
            // never the fallback's "no such route" nor 405.
            let response = client.request(http, &url).send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let name = format!("{} {path}", method.to_uppercase());
            if methods.contains(method) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{name} is documented but not routed");
                assert!(!body.contains("no such route"), "{name} is documented but not routed: {body}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{name} is routed but not documented: {body}");
            }
        }
    }
    s.stop().await;
}

/// `/api/v1` paths written as string literals in the server's source: where
/// routes are declared (`#[utoipa::path(path = ...)]`, or `.route(...)` for
/// the few routes outside `routes!`). A route added with a plain `.route`
/// and no documentation shows up here.
fn source_paths() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for literal in text.split("\"/api/v1").skip(1) {
                    if let Some(end) = literal.find('"') {
                        out.insert(format!("/api/v1{}", &literal[..end]));
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_source_is_documented() {
    let doc = serde_json::to_value(server::app::openapi()).unwrap();
    let documented: BTreeSet<&String> = doc["paths"].as_object().unwrap().keys().collect();
    let written = source_paths();
    assert!(written.len() >= 30, "{written:?}");
    for path in &written {
        // A prefix (for `nest`) counts when some documented path starts with it.
        let known = documented.contains(path) || documented.iter().any(|d| d.starts_with(&format!("{path}/")));
        assert!(known, "{path} appears in the server's source but not in the OpenAPI document");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_works_offline() {
    let s = start().await;
    let client = Client::new();
    // `/api/v1/docs` redirects to `/api/v1/docs/` (followed here).
    let page = client.get(format!("{}/api/v1/docs", s.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), "/api/v1/docs/");
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Everything the page loads comes from this server.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "{html}");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-initializer.js"]
    {
        assert!(html.contains(asset), "the page loads {asset}");
        let response = client.get(format!("{}/api/v1/docs/{asset}", s.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let text = response.text().await.unwrap();
        if asset == "swagger-initializer.js" {
            assert!(text.contains("\"/api/v1/openapi.json\""), "the page shows our document: {text}");
        }
    }
    s.stop().await;
}
