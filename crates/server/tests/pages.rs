//! The dashboard's pages and files over plain HTTP: who is let in, what
//! every page carries (CSP, no caching, the CSRF token, the banner), and how
//! static files are cached and compressed. The browser tests
//! (`dashboard.rs`) cover what the pages do.

mod common;

use common::{ADMIN_PASSWORD, User, open_account};
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, LOCATION,
};
use serde_json::{Value, json};
use store::testing::TestDatabase;

/// A browser-like client: keeps cookies, does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn sign_in(http: &reqwest::Client, base: &str, username: &str, password: &str) -> String {
    common::session(http, base, username, password).await["csrf_token"].as_str().unwrap().to_string()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or_else(|| panic!("no '{start}' in the page"));
    let to = text[from..].find(end).map(|i| from + i).unwrap();
    &text[from..to]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_carry_their_protections() {
    let db = TestDatabase::create("sqlite", "pages").await;
    let server = common::start(&db).await;
    let base = &server.base;
    let http = browser();

    // Without a session: to the sign-in page, remembering where to come back.
    let answer = http.get(format!("{base}/orders?account=3")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/login?next=/orders%3Faccount%3D3");
    let login = http.get(format!("{base}/login?next=%2F%2Fevil.example")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let page = login.text().await.unwrap();
    assert!(page.contains("data-next=\"/\""), "a foreign next is dropped: {page}");

    let csrf = sign_in(&http, base, "admin", ADMIN_PASSWORD).await;
    let answer = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let headers = answer.headers().clone();
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let page = answer.text().await.unwrap();
    assert_eq!(between(&page, "<meta name=\"csrf-token\" content=\"", "\""), csrf, "the session's own token");
    assert!(!page.contains("<script>") && !page.contains(" style=\""), "nothing inline for the CSP to refuse");
    assert!(!page.contains("{{"), "every placeholder is filled");
    // Signed in, the sign-in page moves on.
    let again = http.get(format!("{base}/login?next=/markets")).send().await.unwrap();
    assert_eq!((again.status(), again.headers()[LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/markets"));

    // Unknown addresses: a page for browsers, problem+json for the API.
    let missing = http.get(format!("{base}/no/such/page")).header(ACCEPT, "text/html").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("Page not found"));
    let api = http.get(format!("{base}/api/v1/nope")).header(ACCEPT, "text/html").send().await.unwrap();
    assert_eq!(api.headers()[CONTENT_TYPE], "application/problem+json");
    let bad_id = http.get(format!("{base}/accounts/abc")).send().await.unwrap();
    assert_eq!(bad_id.status(), StatusCode::NOT_FOUND);
    let bad_symbol = http.get(format!("{base}/markets/NOPE")).send().await.unwrap();
    assert_eq!(bad_symbol.status(), StatusCode::NOT_FOUND);

    // Files: versioned, cached for a year, gzipped, revalidated by ETag.
    let assets = between(&page, "data-assets=\"", "\"").to_string();
    let css = http.get(format!("{base}{assets}/css/app.css")).header(ACCEPT_ENCODING, "gzip").send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(css.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert!(css.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
    let etag = css.headers()[ETAG].clone();
    let plain = reqwest::Client::builder().no_gzip().build().unwrap();
    let raw = plain.get(format!("{base}{assets}/js/app.js")).send().await.unwrap();
    assert!(raw.headers().get(CONTENT_ENCODING).is_none(), "plain for clients that do not ask for gzip");
    assert!(raw.text().await.unwrap().contains("export"));
    let cached = http.get(format!("{base}{assets}/css/app.css")).header(IF_NONE_MATCH, etag).send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let old = http.get(format!("{base}/assets/0123456789ab/css/app.css")).send().await.unwrap();
    assert_eq!((old.status(), old.headers()[CACHE_CONTROL].to_str().unwrap()), (StatusCode::OK, "no-cache"));
    let absent = http.get(format!("{base}{assets}/js/nope.js")).send().await.unwrap();
    assert_eq!(absent.status(), StatusCode::NOT_FOUND);
    server.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_banners_and_password_changes_shape_the_pages() {
    let db = TestDatabase::create("sqlite", "pages-roles").await;
    let server = common::start(&db).await;
    let base = &server.base;
    let admin = User::sign_in(base, "admin", ADMIN_PASSWORD).await;

    // An invited user must choose a password before any page opens.
    let (_, invited) = admin.post("/api/v1/users", json!({"username": "ned", "role": "trader"})).await;
    let ned = browser();
    sign_in(&ned, base, "ned", invited["one_time_password"].as_str().unwrap()).await;
    for page in ["/", "/markets", "/admin"] {
        let answer = ned.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(answer.headers()[LOCATION], "/settings?must_change=1", "{page}");
    }
    assert_eq!(ned.get(format!("{base}/settings")).send().await.unwrap().status(), StatusCode::OK);

    // A trader: no admin entry, and the admin page refuses.
    let trader = common::trader(&server, &admin, "tess").await;
    let account = open_account(&trader).await;
    let http = browser();
    let csrf = sign_in(&http, base, "tess", "tess's long password").await;
    // The admin chose the first password: tess picks her own, and pages open.
    let changed = http
        .post(format!("{base}/api/v1/auth/password"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"current_password": "tess's long password", "new_password": "tess's own password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let page = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("href=\"/admin\""), "no admin entry for a trader");
    let answer = http.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(answer.text().await.unwrap().contains("Admins only"));

    // The kill-switch banner is in the page from the start.
    assert!(between(&page, "id=\"halt-banner\"", ">").contains("hidden"), "no banner while trading is active");
    // A name with markup, to see it escaped where the server renders it.
    let opened: Value = http
        .post(format!("{base}/api/v1/accounts"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "<b>bold</b>"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let switch = http
        .put(format!("{base}/api/v1/accounts/{}/kill-switch", opened["id"]))
        .header("x-csrf-token", &csrf)
        .json(&json!({"state": "halted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(switch.status(), StatusCode::OK);
    let (status, _) = admin.call(reqwest::Method::PUT, "/api/v1/kill-switch", Some(json!({"state": "reducing"}))).await;
    assert_eq!(status, StatusCode::OK);
    let page = http.get(format!("{base}/markets")).send().await.unwrap().text().await.unwrap();
    let banner = between(&page, "id=\"halt-banner\"", "</div>");
    assert!(!banner.contains(" hidden"), "{banner}");
    assert!(banner.contains("data-global=\"reducing\""), "{banner}");
    assert!(banner.contains("close-only"), "{banner}");
    assert!(banner.contains("&lt;b&gt;bold&lt;/b&gt;") && !banner.contains("<b>bold"), "escaped: {banner}");
    let _ = account;
    server.stop().await;
    db.remove().await;
}
