//! The built-in strategies and their parameters, so clients (the
//! dashboard's bot and backtest forms) can build their inputs from them.

use engine::params::{ParamKind, ParamValue};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::Json;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Serialize, ToSchema)]
struct StrategyView {
    /// Its name in bots, backtests and `tradecore backtest --strategy`.
    name: &'static str,
    summary: &'static str,
    params: Vec<ParamView>,
}

/// One parameter. Bounds and the default are decimal strings (exact for
/// amounts of money); `min`/`max` are absent for `bool`.
#[derive(Debug, Serialize, ToSchema)]
struct ParamView {
    name: &'static str,
    /// `int`, `float`, `bool` or `money`.
    #[serde(rename = "type")]
    #[schema(example = "int")]
    kind: &'static str,
    min: Option<String>,
    max: Option<String>,
    default: String,
    help: &'static str,
}

fn text(value: ParamValue) -> String {
    value.to_string()
}

/// Every built-in strategy with its parameters.
#[utoipa::path(
    get,
    path = "/api/v1/strategies",
    tag = "bots",
    operation_id = "list_strategies",
    responses((status = 200, description = "The strategies.", body = Vec<StrategyView>)),
)]
async fn list() -> Json<Vec<StrategyView>> {
    let views = engine::strategies::STRATEGIES
        .iter()
        .map(|s| StrategyView {
            name: s.name,
            summary: s.summary,
            params: s
                .params
                .iter()
                .map(|p| {
                    let (kind, min, max) = match p.kind {
                        ParamKind::Int { min, max } => ("int", Some(min.to_string()), Some(max.to_string())),
                        ParamKind::Float { min, max } => ("float", Some(min.to_string()), Some(max.to_string())),
                        ParamKind::Bool => ("bool", None, None),
                        ParamKind::Money { min, max } => ("money", Some(min.to_string()), Some(max.to_string())),
                    };
                    ParamView { name: p.name, kind, min, max, default: text(p.default), help: p.help }
                })
                .collect(),
        })
        .collect();
    Json(views)
}
