//! Order requests and the typed answers of the order, account and trade
//! endpoints. Decimal strings in Binance JSON become `model` decimals.

use serde::{Deserialize, Deserializer};

use model::{ClientOrderId, Money, OrderStatus, OrderType, Price, Quantity, Rate, Side, TimeInForce, Timestamp};

use super::error::BinanceError;

/// Milliseconds since the epoch as a [`Timestamp`].
#[must_use]
pub fn millis(ms: i64) -> Timestamp {
    Timestamp::from_nanos(ms.saturating_mul(1_000_000))
}

fn de_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    i64::deserialize(d).map(millis)
}

fn de_opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    Option::<i64>::deserialize(d).map(|v| v.map(millis))
}

/// The Binance order types this adapter places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    Market,
    Limit {
        price: Price,
        time_in_force: TimeInForce,
    },
    /// A post-only limit order: rejected by Binance if it would trade at once.
    LimitMaker {
        price: Price,
    },
    /// Market order triggered at `stop_price`.
    StopLoss {
        stop_price: Price,
    },
    /// Limit order at `price`, triggered at `stop_price`.
    StopLossLimit {
        stop_price: Price,
        price: Price,
        time_in_force: TimeInForce,
    },
}

impl OrderKind {
    /// Binance's `type` value.
    #[must_use]
    pub const fn binance_type(&self) -> &'static str {
        match self {
            Self::Market => "MARKET",
            Self::Limit { .. } => "LIMIT",
            Self::LimitMaker { .. } => "LIMIT_MAKER",
            Self::StopLoss { .. } => "STOP_LOSS",
            Self::StopLossLimit { .. } => "STOP_LOSS_LIMIT",
        }
    }
}

/// A new order for `POST /api/v3/order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub symbol: String,
    /// Sent as `newClientOrderId`; Binance uses it to find the order later.
    pub client_order_id: ClientOrderId,
    pub side: Side,
    pub quantity: Quantity,
    pub kind: OrderKind,
}

impl NewOrder {
    /// From the model's order description. `post_only` turns a GTC limit
    /// order into `LIMIT_MAKER` (the model order's `post_only`).
    pub fn from_model(
        symbol: &str,
        client_order_id: ClientOrderId,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        quantity: Quantity,
        post_only: bool,
    ) -> Result<Self, BinanceError> {
        let kind = match (order_type, post_only) {
            (OrderType::Limit { price }, true) => {
                if time_in_force != TimeInForce::Gtc {
                    return Err(BinanceError::InvalidOrder(
                        "a post-only (LIMIT_MAKER) order has no time in force; use GTC".into(),
                    ));
                }
                OrderKind::LimitMaker { price }
            }
            (_, true) => return Err(BinanceError::InvalidOrder("only limit orders can be post-only".into())),
            (OrderType::Market, false) => OrderKind::Market,
            (OrderType::Limit { price }, false) => OrderKind::Limit { price, time_in_force },
            (OrderType::Stop { trigger_price }, false) => OrderKind::StopLoss { stop_price: trigger_price },
            (OrderType::StopLimit { trigger_price, price }, false) => {
                OrderKind::StopLossLimit { stop_price: trigger_price, price, time_in_force }
            }
        };
        let order = Self { symbol: symbol.to_string(), client_order_id, side, quantity, kind };
        order.params()?;
        Ok(order)
    }

    /// The request parameters (without `timestamp`, `recvWindow`, `signature`),
    /// after checking what Binance would refuse for the shape of the order.
    pub fn params(&self) -> Result<Vec<(&'static str, String)>, BinanceError> {
        let invalid =
            |m: String| Err(BinanceError::InvalidOrder(format!("{} {}: {m}", self.symbol, self.client_order_id)));
        if self.symbol.is_empty() || !self.symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return invalid(format!("symbol '{}' is not a Binance symbol", self.symbol));
        }
        if !self.quantity.is_positive() {
            return invalid(format!("quantity must be positive, got {}", self.quantity));
        }
        let mut p: Vec<(&'static str, String)> = vec![
            ("symbol", self.symbol.clone()),
            ("side", binance_side(self.side).to_string()),
            ("type", self.kind.binance_type().to_string()),
        ];
        let tif = |t: TimeInForce| match t {
            TimeInForce::Gtc => Ok("GTC"),
            TimeInForce::Ioc => Ok("IOC"),
            TimeInForce::Fok => Ok("FOK"),
            TimeInForce::Day => Err(()),
        };
        let positive = |name: &str, v: Price| {
            if v.is_positive() { Ok(v.to_string()) } else { Err(format!("{name} must be positive, got {v}")) }
        };
        let result: Result<(), String> = (|| {
            match self.kind {
                OrderKind::Market => {}
                OrderKind::Limit { price, time_in_force } => {
                    p.push(("timeInForce", tif(time_in_force).map_err(|()| day_error())?.to_string()));
                    p.push(("price", positive("price", price)?));
                }
                OrderKind::LimitMaker { price } => p.push(("price", positive("price", price)?)),
                OrderKind::StopLoss { stop_price } => p.push(("stopPrice", positive("stop price", stop_price)?)),
                OrderKind::StopLossLimit { stop_price, price, time_in_force } => {
                    p.push(("timeInForce", tif(time_in_force).map_err(|()| day_error())?.to_string()));
                    p.push(("price", positive("price", price)?));
                    p.push(("stopPrice", positive("stop price", stop_price)?));
                }
            }
            Ok(())
        })();
        if let Err(m) = result {
            return invalid(m);
        }
        p.push(("quantity", self.quantity.to_string()));
        p.push(("newClientOrderId", self.client_order_id.as_str().to_string()));
        p.push(("newOrderRespType", "FULL".to_string()));
        Ok(p)
    }
}

fn day_error() -> String {
    "Binance spot has no DAY time in force (GTC, IOC and FOK only)".to_string()
}

pub(crate) const fn binance_side(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// Binance's order status values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BinanceOrderStatus {
    New,
    PendingNew,
    PartiallyFilled,
    Filled,
    Canceled,
    PendingCancel,
    Rejected,
    Expired,
    ExpiredInMatch,
    /// A status this adapter does not know yet.
    #[serde(other)]
    Unknown,
}

impl BinanceOrderStatus {
    /// The model's status, or `None` for [`Self::Unknown`].
    #[must_use]
    pub const fn to_model(self) -> Option<OrderStatus> {
        Some(match self {
            Self::New | Self::PendingNew => OrderStatus::Accepted,
            Self::PartiallyFilled => OrderStatus::PartiallyFilled,
            Self::Filled => OrderStatus::Filled,
            Self::Canceled => OrderStatus::Cancelled,
            Self::PendingCancel => OrderStatus::PendingCancel,
            Self::Rejected => OrderStatus::Rejected,
            Self::Expired | Self::ExpiredInMatch => OrderStatus::Expired,
            Self::Unknown => return None,
        })
    }
}

/// `BUY` / `SELL` in Binance JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BinanceSide {
    Buy,
    Sell,
}

impl From<BinanceSide> for Side {
    fn from(s: BinanceSide) -> Self {
        match s {
            BinanceSide::Buy => Self::Buy,
            BinanceSide::Sell => Self::Sell,
        }
    }
}

/// One fill in a `FULL` new-order response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderFill {
    pub price: Price,
    pub qty: Quantity,
    pub commission: Money,
    pub commission_asset: String,
    pub trade_id: u64,
}

/// An order as Binance reports it: the `FULL` new-order response, the
/// query-order and open-orders entries, and the cancel response share these
/// fields; those only some of them carry are optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderReport {
    pub symbol: String,
    pub order_id: u64,
    #[serde(default)]
    pub order_list_id: i64,
    /// For a cancel response this is the cancel request's own id; the
    /// order's id is in `orig_client_order_id`.
    pub client_order_id: String,
    #[serde(default)]
    pub orig_client_order_id: Option<String>,
    pub price: Price,
    pub orig_qty: Quantity,
    pub executed_qty: Quantity,
    #[serde(rename = "cummulativeQuoteQty")]
    pub cumulative_quote_qty: Money,
    pub status: BinanceOrderStatus,
    pub time_in_force: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub side: BinanceSide,
    #[serde(default)]
    pub stop_price: Option<Price>,
    #[serde(default, deserialize_with = "de_opt_millis")]
    pub transact_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "de_opt_millis")]
    pub time: Option<Timestamp>,
    #[serde(default, deserialize_with = "de_opt_millis")]
    pub update_time: Option<Timestamp>,
    #[serde(default)]
    pub is_working: Option<bool>,
    #[serde(default)]
    pub fills: Vec<OrderFill>,
}

impl OrderReport {
    /// Our client order id for the order this report is about.
    #[must_use]
    pub fn order_client_id(&self) -> &str {
        self.orig_client_order_id.as_deref().unwrap_or(&self.client_order_id)
    }

    /// The average fill price, exact to 9 decimals; `None` before any fill.
    #[must_use]
    pub fn average_price(&self) -> Option<Price> {
        Price::from_ratio(self.cumulative_quote_qty, self.executed_qty, Quantity::ONE)
    }
}

/// One balance of `GET /api/v3/account`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Balance {
    pub asset: String,
    pub free: Money,
    pub locked: Money,
}

/// `commissionRates` of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CommissionRates {
    pub maker: Rate,
    pub taker: Rate,
    pub buyer: Rate,
    pub seller: Rate,
}

/// `GET /api/v3/account`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    #[serde(default)]
    pub commission_rates: Option<CommissionRates>,
    pub can_trade: bool,
    pub can_withdraw: bool,
    pub can_deposit: bool,
    #[serde(deserialize_with = "de_millis")]
    pub update_time: Timestamp,
    pub account_type: String,
    pub balances: Vec<Balance>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub uid: Option<u64>,
}

impl AccountInfo {
    #[must_use]
    pub fn balance(&self, asset: &str) -> Option<&Balance> {
        self.balances.iter().find(|b| b.asset == asset)
    }
}

/// One entry of `GET /api/v3/myTrades`.
///
/// Not mapped to `model::Fill`: Binance charges commission in
/// `commission_asset` (base, quote or BNB), while the model's fee is in the
/// quote currency, and the engine's order id is not known here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trade {
    pub symbol: String,
    pub id: u64,
    pub order_id: u64,
    #[serde(default)]
    pub order_list_id: i64,
    pub price: Price,
    pub qty: Quantity,
    pub quote_qty: Money,
    pub commission: Money,
    pub commission_asset: String,
    #[serde(deserialize_with = "de_millis")]
    pub time: Timestamp,
    pub is_buyer: bool,
    pub is_maker: bool,
    #[serde(default)]
    pub is_best_match: bool,
}

impl Trade {
    #[must_use]
    pub fn side(&self) -> Side {
        if self.is_buyer { Side::Buy } else { Side::Sell }
    }

    #[must_use]
    pub fn liquidity(&self) -> model::Liquidity {
        if self.is_maker { model::Liquidity::Maker } else { model::Liquidity::Taker }
    }
}

/// Optional filters for `GET /api/v3/myTrades`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TradeQuery {
    pub order_id: Option<u64>,
    pub from_id: Option<u64>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    /// 1 to 1000; Binance's default is 500.
    pub limit: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coid(s: &str) -> ClientOrderId {
        ClientOrderId::parse(s).unwrap()
    }

    #[test]
    fn model_orders_map_to_binance_types() {
        let p = Price::parse("100.5").unwrap();
        let q = Quantity::parse("0.001").unwrap();
        let cases = [
            (OrderType::Market, TimeInForce::Gtc, false, "MARKET"),
            (OrderType::Limit { price: p }, TimeInForce::Ioc, false, "LIMIT"),
            (OrderType::Limit { price: p }, TimeInForce::Gtc, true, "LIMIT_MAKER"),
            (OrderType::Stop { trigger_price: p }, TimeInForce::Gtc, false, "STOP_LOSS"),
            (OrderType::StopLimit { trigger_price: p, price: p }, TimeInForce::Fok, false, "STOP_LOSS_LIMIT"),
        ];
        for (ot, tif, post, expected) in cases {
            let o = NewOrder::from_model("BTCUSDT", coid("a-1"), Side::Buy, ot, tif, q, post).unwrap();
            let params = o.params().unwrap();
            assert!(params.contains(&("type", expected.to_string())), "{expected}: {params:?}");
            let has_tif = params.iter().any(|(k, _)| *k == "timeInForce");
            assert_eq!(has_tif, matches!(expected, "LIMIT" | "STOP_LOSS_LIMIT"), "{expected}");
            assert!(params.contains(&("newOrderRespType", "FULL".to_string())));
            assert!(params.contains(&("quantity", "0.001".to_string())));
        }
    }

    #[test]
    fn refuses_what_binance_cannot_take() {
        let p = Price::parse("1").unwrap();
        let q = Quantity::ONE;
        let day = NewOrder::from_model(
            "BTCUSDT",
            coid("a"),
            Side::Buy,
            OrderType::Limit { price: p },
            TimeInForce::Day,
            q,
            false,
        );
        assert!(matches!(day, Err(BinanceError::InvalidOrder(m)) if m.contains("DAY")));
        let zero = NewOrder::from_model(
            "BTCUSDT",
            coid("a"),
            Side::Buy,
            OrderType::Market,
            TimeInForce::Gtc,
            Quantity::ZERO,
            false,
        );
        assert!(zero.is_err());
        let post_market =
            NewOrder::from_model("BTCUSDT", coid("a"), Side::Buy, OrderType::Market, TimeInForce::Gtc, q, true);
        assert!(post_market.is_err());
        let post_ioc = NewOrder::from_model(
            "BTCUSDT",
            coid("a"),
            Side::Buy,
            OrderType::Limit { price: p },
            TimeInForce::Ioc,
            q,
            true,
        );
        assert!(post_ioc.is_err());
    }

    #[test]
    fn parses_the_documented_full_response() {
        let json = r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP",
            "transactTime":1507725176595,"price":"0.00000000","origQty":"10.00000000","executedQty":"10.00000000",
            "origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"10.00000000","status":"FILLED","timeInForce":"GTC",
            "type":"MARKET","side":"SELL","workingTime":1507725176595,"selfTradePreventionMode":"NONE",
            "fills":[{"price":"4000.00000000","qty":"1.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56}]}"#;
        let r: OrderReport = serde_json::from_str(json).unwrap();
        assert_eq!(r.status.to_model(), Some(OrderStatus::Filled));
        assert_eq!(r.fills[0].price, Price::parse("4000").unwrap());
        assert_eq!(r.fills[0].commission.to_string(), "4");
        assert_eq!(r.transact_time, Some(millis(1_507_725_176_595)));
        assert_eq!(r.average_price(), Some(Price::ONE));
    }
}
