//! The web dashboard, served by the binary itself at `/`.
//!
//! Pages are rendered here as shells: the layout (navigation, the signed-in
//! user, the kill-switch banner as it stands, the CSRF token) around a page
//! body of headings, forms and empty tables. Small ES modules (`web/assets/js`)
//! then fill them from the same REST API programs use and keep them live over
//! the WebSocket. Nothing needs building: no Node toolchain, no bundler.
//!
//! Every page but `/login` needs a signed-in session; without one the
//! browser is sent to `/login?next=...`. A user who still has a generated
//! password is sent to `/settings` until they change it. Pages carry a strict
//! Content-Security-Policy (scripts and styles from this server only) and
//! are never cached.

pub mod assets;
mod pages;
mod template;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// The pages. Static assets are in [`asset_routes`], kept apart so the
/// rate limiter does not count a page's dozen cached files as requests.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login))
        .route("/accounts/{account}", get(pages::account))
        .route("/markets", get(pages::markets))
        .route("/markets/{symbol}", get(pages::instrument))
        .route("/orders", get(pages::orders))
        .route("/bots", get(pages::bots))
        .route("/bots/{bot}", get(pages::bot))
        .route("/backtests", get(pages::backtests))
        .route("/backtests/compare", get(pages::compare))
        .route("/backtests/{backtest}", get(pages::backtest))
        .route("/settings", get(pages::settings))
        .route("/admin", get(pages::admin))
}

/// `/assets/{version}/...`.
pub fn asset_routes() -> Router<AppState> {
    Router::new().route("/assets/{version}/{*path}", get(assets::serve))
}

pub use pages::not_found_page;
