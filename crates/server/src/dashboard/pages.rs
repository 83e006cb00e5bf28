//! The page handlers: who may see a page, and its shell.

use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use engine::TradingState;

use super::assets::{Files, assets};
use super::template::{self, escape};
use crate::app::AppState;
use crate::auth::{Caller, Role, Via};
use crate::error::ApiError;

/// The theme cookie the dashboard's theme switch sets (`light` or `dark`;
/// absent means "follow the system").
const THEME_COOKIE: &str = "tc_theme";

/// Scripts, styles, images and connections from this server only; no
/// framing, no plugins. The WebSocket is same-origin, which `'self'` covers.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Navigation: path, label, page key, admins only.
const NAV: &[(&str, &str, &str, bool)] = &[
    ("/", "Overview", "overview", false),
    ("/markets", "Markets", "markets", false),
    ("/orders", "Orders", "orders", false),
    ("/bots", "Bots", "bots", false),
    ("/backtests", "Backtests", "backtests", false),
    ("/admin", "Admin", "admin", true),
];

/// A browser visit: who (if signed in with a session), where, which theme.
pub struct Visit {
    caller: Option<Caller>,
    /// Path and query, to come back to after signing in.
    target: String,
    theme: &'static str,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await.ok();
        // Pages work with sessions only: writes from them need the CSRF token.
        let caller = caller.filter(|c| matches!(c.via, Via::Session { .. }));
        let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |u| u.0.clone());
        let target = uri.path_and_query().map_or_else(|| "/".to_string(), ToString::to_string);
        let jar = CookieJar::from_headers(&parts.headers);
        let theme = match jar.get(THEME_COOKIE).map(axum_extra::extract::cookie::Cookie::value) {
            Some("light") => "light",
            Some("dark") => "dark",
            _ => "auto",
        };
        Ok(Self { caller, target, theme })
    }
}

/// What a page needs besides the visit.
struct Spec {
    /// The template `pages/{page}.html` and the module `js/pages/{page}.js`.
    page: &'static str,
    title: String,
    /// Which navigation entry is current.
    nav: &'static str,
    /// `data-*` attributes on `<main>` for the page's script (escaped here).
    data: Vec<(&'static str, String)>,
    /// Placeholders only this page's template uses.
    vars: Vec<(&'static str, String)>,
    /// Only admins may see it (others get a 403 page).
    admin_only: bool,
}

impl Spec {
    fn new(page: &'static str, title: impl Into<String>, nav: &'static str) -> Self {
        Self { page, title: title.into(), nav, data: Vec::new(), vars: Vec::new(), admin_only: false }
    }

    fn var(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((key, value.into()));
        self
    }

    fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.data.push((key, value.into()));
        self
    }
}

pub async fn overview(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, Spec::new("overview", "Overview", "overview")).await
}

pub async fn account(State(state): State<AppState>, visit: Visit, Path(account): Path<String>) -> Response {
    match account.parse::<u64>() {
        Ok(id) => {
            page(
                &state,
                visit,
                Spec::new("account", format!("Account {id}"), "overview").with("account", id.to_string()),
            )
            .await
        }
        Err(_) => not_found_page(visit.theme),
    }
}

pub async fn markets(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, Spec::new("markets", "Markets", "markets")).await
}

pub async fn instrument(State(state): State<AppState>, visit: Visit, Path(symbol): Path<String>) -> Response {
    match state.runtime.instrument_by_symbol(&symbol) {
        Some(instrument) => {
            let symbol = instrument.symbol.clone();
            page(&state, visit, Spec::new("instrument", symbol.clone(), "markets").with("symbol", symbol)).await
        }
        None => not_found_page(visit.theme),
    }
}

pub async fn orders(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, Spec::new("orders", "Orders", "orders")).await
}

pub async fn bots(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, Spec::new("bots", "Bots", "bots")).await
}

pub async fn bot(State(state): State<AppState>, visit: Visit, Path(bot): Path<String>) -> Response {
    match bot.parse::<u64>() {
        Ok(id) => page(&state, visit, Spec::new("bot", format!("Bot {id}"), "bots").with("bot", id.to_string())).await,
        Err(_) => not_found_page(visit.theme),
    }
}

pub async fn backtests(State(state): State<AppState>, visit: Visit) -> Response {
    let max = state.config.server.max_body_bytes;
    let spec = Spec::new("backtests", "Backtests", "backtests").with("max-upload", max.to_string()).var(
        "max_upload_text",
        format!("{} KiB (the server's largest request; less for the JSON around it)", max / 1024),
    );
    page(&state, visit, spec).await
}

pub async fn backtest(State(state): State<AppState>, visit: Visit, Path(backtest): Path<String>) -> Response {
    match backtest.parse::<u64>() {
        Ok(id) => {
            let spec = Spec::new("backtest", format!("Backtest {id}"), "backtests").with("backtest", id.to_string());
            page(&state, visit, spec).await
        }
        Err(_) => not_found_page(visit.theme),
    }
}

pub async fn compare(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, Spec::new("compare", "Compare backtests", "backtests")).await
}

pub async fn settings(State(state): State<AppState>, visit: Visit) -> Response {
    // Whether venue accounts can be linked at all, so the page can say so at once.
    let credentials_key = if state.config.trading.credentials_key.is_some() { "set" } else { "missing" };
    page(&state, visit, Spec::new("settings", "Settings", "").with("credentials-key", credentials_key)).await
}

pub async fn admin(State(state): State<AppState>, visit: Visit) -> Response {
    let mut spec = Spec::new("admin", "Admin", "admin");
    spec.admin_only = true;
    page(&state, visit, spec).await
}

/// `GET /login`: the sign-in form, or straight on when already signed in.
pub async fn login(State(state): State<AppState>, visit: Visit, OriginalUri(uri): OriginalUri) -> Response {
    let next = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("next=")))
        .map(percent_decode)
        .filter(|n| is_local_path(n))
        .unwrap_or_else(|| "/".to_string());
    if visit.caller.is_some() {
        return Redirect::to(&next).into_response();
    }
    let assets = assets().base();
    let signup = if state.config.auth.open_signup { "true" } else { "false" };
    let vars = [
        ("assets", assets.as_str()),
        ("theme", visit.theme),
        ("next", next.as_str()),
        ("signup", signup),
        ("title", "Sign in"),
    ];
    render_public("login", &vars, StatusCode::OK)
}

/// The 404 page for a browser (API clients get problem+json).
pub fn not_found_page(theme: &'static str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address. It may have been removed, or the link is mistyped.",
        theme,
    )
}

fn error_page(status: StatusCode, title: &str, detail: &str, theme: &'static str) -> Response {
    let assets = assets().base();
    let code = status.as_u16().to_string();
    let vars = [("assets", assets.as_str()), ("theme", theme), ("title", title), ("detail", detail), ("status", &code)];
    render_public("error", &vars, status)
}

/// A page outside the signed-in layout (sign-in, errors): `web/public.html`
/// around `pages/{name}.html`, with the page's module if it has one.
fn render_public(name: &str, vars: &[(&str, &str)], status: StatusCode) -> Response {
    let render = || {
        let body = template::render(&template_text(&format!("pages/{name}.html"))?, vars)?;
        let script = if Files::get(&format!("assets/js/pages/{name}.js")).is_some() {
            let assets = assets().base();
            format!("<script type=\"module\" src=\"{}/js/pages/{name}.js\"></script>\n", template::escape(&assets))
        } else {
            String::new()
        };
        let mut all = vars.to_vec();
        all.push(("body", &body));
        all.push(("script", &script));
        template::render(&template_text("public.html")?, &all)
    };
    match render() {
        Ok(html) => html_response(status, html),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

fn template_text(path: &str) -> Result<String, template::TemplateError> {
    let file = Files::get(path).ok_or_else(|| template::TemplateError(format!("template {path} is missing")))?;
    String::from_utf8(file.data.into_owned())
        .map_err(|_| template::TemplateError(format!("template {path} is not UTF-8")))
}

/// Renders a signed-in page, or sends the browser where it must go first.
async fn page(state: &AppState, visit: Visit, spec: Spec) -> Response {
    let Some(caller) = visit.caller else {
        let next = percent_encode(&visit.target);
        return Redirect::to(&format!("/login?next={next}")).into_response();
    };
    // A generated password must be replaced before anything else.
    if caller.password_change_required && spec.page != "settings" {
        return Redirect::to("/settings?must_change=1").into_response();
    }
    if spec.admin_only && caller.role != Role::Admin {
        return error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "This page is for administrators. Ask an admin if you need access.",
            visit.theme,
        );
    }
    let Via::Session { csrf_token, .. } = &caller.via else {
        return Redirect::to("/login").into_response();
    };
    match render_page(state, &caller, csrf_token, visit.theme, &spec).await {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

async fn render_page(
    state: &AppState,
    caller: &Caller,
    csrf: &str,
    theme: &'static str,
    spec: &Spec,
) -> Result<String, template::TemplateError> {
    let assets = assets().base();
    let role = caller.role.to_string();
    let nav = nav_html(spec.nav, caller.role == Role::Admin);
    let banner = banner_html(state, caller).await;
    let main_data: String =
        spec.data.iter().map(|(k, v)| format!(" data-{k}=\"{}\"", escape(v))).collect::<Vec<_>>().join("");
    let can_trade = if caller.scopes.contains(crate::auth::Scope::Trade) { "true" } else { "false" };
    let vars = [
        ("assets", assets.as_str()),
        ("title", spec.title.as_str()),
        ("page", spec.page),
        ("username", caller.username.as_str()),
        ("role", role.as_str()),
        ("can_trade", can_trade),
        ("csrf", csrf),
        ("theme", theme),
        ("nav", nav.as_str()),
        ("banner", banner.as_str()),
        ("main_data", main_data.as_str()),
        ("version", env!("CARGO_PKG_VERSION")),
    ];
    let mut vars = vars.to_vec();
    vars.extend(spec.vars.iter().map(|(k, v)| (*k, v.as_str())));
    // Fragments several pages share, inserted raw.
    let ticket_fields = template_text("partials/ticket-fields.html")?;
    vars.push(("ticket_fields", ticket_fields.as_str()));
    let body = template::render(&template_text(&format!("pages/{}.html", spec.page))?, &vars)?;
    let mut all = vars.clone();
    all.push(("body", body.as_str()));
    template::render(&template_text("layout.html")?, &all)
}

fn nav_html(current: &str, admin: bool) -> String {
    let mut out = String::new();
    for (href, label, key, admin_only) in NAV {
        if *admin_only && !admin {
            continue;
        }
        let aria = if *key == current { " aria-current=\"page\"" } else { "" };
        out.push_str(&format!("<li><a href=\"{href}\"{aria}>{label}</a></li>"));
    }
    out
}

/// The kill-switch banner as things stand, so a halted platform shows it
/// before any script runs; the page's script keeps it current.
async fn banner_html(state: &AppState, caller: &Caller) -> String {
    let global = state.runtime.global_state().await;
    let mut lines = Vec::new();
    match global {
        TradingState::Halted => {
            lines.push(
                "Trading is halted for every account by an administrator: new orders are refused; cancels still work."
                    .to_string(),
            );
        }
        TradingState::Reducing => {
            lines.push("Trading is limited to reducing positions (close-only) by an administrator.".to_string());
        }
        TradingState::Active => {}
    }
    for (name, account_state) in state.runtime.account_states_of(caller.user_id).await {
        match account_state {
            TradingState::Halted => {
                lines.push(format!("Account \u{201c}{name}\u{201d} is halted: new orders are refused."))
            }
            TradingState::Reducing => {
                lines.push(format!(
                    "Account \u{201c}{name}\u{201d} is close-only: only orders that reduce a position are accepted."
                ));
            }
            TradingState::Active => {}
        }
    }
    let hidden = if lines.is_empty() { " hidden" } else { "" };
    let global = match global {
        TradingState::Active => "active",
        TradingState::Reducing => "reducing",
        TradingState::Halted => "halted",
    };
    let items: String = lines.iter().map(|l| format!("<li>{}</li>", escape(l))).collect();
    format!(
        "<div id=\"halt-banner\" class=\"banner banner-halt\" role=\"alert\" data-global=\"{global}\"{hidden}>\
         <strong>Trading restricted.</strong><ul id=\"halt-lines\">{items}</ul></div>"
    )
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure_headers(h);
    response
}

/// Headers every page carries.
fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=()"));
}

/// Only paths on this server: `/x`, never `//evil.example` or `/\evil`.
fn is_local_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') && !path.chars().any(char::is_control)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_stay_on_this_server() {
        for good in ["/", "/orders?account=3", "/markets/BTC-USDT"] {
            assert!(is_local_path(good), "{good}");
        }
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "", "orders", "/a\nb"] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn percent_coding_round_trips() {
        for text in ["/orders?account=3&status=open", "/markets/BTC-USDT", "/a b%"] {
            assert_eq!(percent_decode(&percent_encode(text)), text);
        }
        assert_eq!(percent_decode("%2Forders%3"), "/orders%3");
    }

    #[test]
    fn every_page_template_renders() {
        for (_, _, key, _) in NAV {
            assert!(Files::get(&format!("pages/{key}.html")).is_some(), "pages/{key}.html");
        }
        for name in ["login", "error", "account", "instrument", "bot", "backtest", "compare", "settings"] {
            assert!(Files::get(&format!("pages/{name}.html")).is_some(), "pages/{name}.html");
        }
    }
}
