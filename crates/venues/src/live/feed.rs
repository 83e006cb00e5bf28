//! Live updates of one venue account, in venue-neutral terms: that the
//! account changed (an order or balance moved), that a stream reconnected
//! after a gap, and the best bid and ask of its symbols.
//!
//! Account changes are signals, not data: the caller answers them with a
//! reconciliation through [`super::LiveVenue`], which reads order states and
//! fills by REST and applies each fill once by trade id. That keeps one path
//! for every correction (stream, restart, timer) at the cost of a few REST
//! calls per burst of changes.
//!
//! - **Binance**: the user data stream (WebSocket API,
//!   `userDataStream.subscribe.signature`): `executionReport`,
//!   `outboundAccountPosition` and `balanceUpdate` are account changes;
//!   `bookTicker` of each symbol gives quotes.
//! - **TastyTrade**: the account streamer's `Order`, `AccountBalance` and
//!   `CurrentPosition` notifications are account changes; DXLink `Quote`
//!   events give quotes (equities by symbol, options by their DXLink
//!   streamer symbol, `.AAPL240119C150`).
//!
//! Dropping the [`Feed`] stops its streams.

use std::sync::Arc;

use model::{Price, Quantity};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::binance::{
    ConnectionEvent as BinanceConnection, Credentials, MarketChannel, MarketEvent, MarketStream, MarketStreamConfig,
    UserStream, UserStreamConfig, UserStreamEvent,
};
use crate::tastytrade::{
    AccountEvent, AccountStream, AccountStreamConfig, ClientAccessTokens, DxLinkConfig, DxLinkStream,
    MarketEvent as DxEvent, OccSymbol, OptionKind, Subscription, TastyClient,
};

/// What a feed reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// An order, balance or position changed at the venue: reconcile soon.
    AccountChanged,
    /// A stream reconnected after a gap in which events may have been lost:
    /// reconcile now.
    Reconnected,
    /// The best bid and ask of a venue symbol (the one passed to the feed).
    Quote { symbol: String, bid: Price, bid_size: Quantity, ask: Price, ask_size: Quantity },
    /// A stream ended for good (a refused key or token); the reason.
    Stopped(String),
}

/// Running streams of one account. Dropping it stops them.
#[derive(Debug, Default)]
pub struct Feed {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Events buffered between the streams and the caller.
const CHANNEL: usize = 4096;

/// Forwards a stream's events, mapped, until either side ends. The
/// stream's handle lives in the task, so the stream runs as long as it.
fn forward<E: Send + 'static, H: Send + 'static>(
    handle: H,
    mut from: mpsc::Receiver<E>,
    to: mpsc::Sender<FeedEvent>,
    map: impl Fn(E) -> Option<FeedEvent> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _handle = handle;
        while let Some(event) = from.recv().await {
            let Some(mapped) = map(event) else { continue };
            // Quotes are dropped rather than waited for when the caller is
            // behind (the next one supersedes them); account changes wait.
            let sent = if matches!(mapped, FeedEvent::Quote { .. }) {
                to.try_send(mapped).is_ok() || !to.is_closed()
            } else {
                to.send(mapped).await.is_ok()
            };
            if !sent {
                break;
            }
        }
    })
}

fn connection<R: std::fmt::Debug>(event: &crate::stream::ConnectionEvent<R>) -> Option<FeedEvent> {
    use crate::stream::ConnectionEvent as C;
    match event {
        C::Resubscribed { .. } => Some(FeedEvent::Reconnected),
        C::Stopped { reason } => Some(FeedEvent::Stopped(format!("{reason:?}"))),
        C::Connected { .. } | C::Disconnected { .. } | C::ReconnectFailed { .. } => None,
    }
}

/// The Binance feed: the user data stream and book tickers of `symbols`.
pub async fn binance(
    credentials: Arc<Credentials>,
    user: UserStreamConfig,
    market: MarketStreamConfig,
    symbols: &[String],
) -> Result<(Feed, mpsc::Receiver<FeedEvent>), String> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let mut feed = Feed::default();
    let (user_handle, user_events) =
        UserStream::connect(user, credentials).await.map_err(|e| format!("Binance user data stream: {e}"))?;
    feed.tasks.push(forward(user_handle, user_events, tx.clone(), |event| match event {
        UserStreamEvent::Connection(c) => connection(&c),
        UserStreamEvent::Execution(_)
        | UserStreamEvent::AccountPosition(_)
        | UserStreamEvent::BalanceDelta(_)
        | UserStreamEvent::ListStatus(_) => Some(FeedEvent::AccountChanged),
    }));
    if !symbols.is_empty() {
        let channels: Vec<MarketChannel> = symbols.iter().map(|s| MarketChannel::book_ticker(s)).collect();
        let (market_handle, market_events) =
            MarketStream::connect(market, channels).await.map_err(|e| format!("Binance market streams: {e}"))?;
        feed.tasks.push(forward(market_handle, market_events, tx, |event| match event {
            MarketEvent::BookTicker(t) => Some(FeedEvent::Quote {
                symbol: t.symbol,
                bid: t.bid_price,
                bid_size: t.bid_quantity,
                ask: t.ask_price,
                ask_size: t.ask_quantity,
            }),
            MarketEvent::Connection(BinanceConnection::Stopped { reason }) => {
                Some(FeedEvent::Stopped(format!("market streams: {reason:?}")))
            }
            MarketEvent::Connection(_)
            | MarketEvent::Trade(_)
            | MarketEvent::Kline(_)
            | MarketEvent::RequestFailed { .. } => None,
        }));
    }
    Ok((feed, rx))
}

/// DXLink's streamer symbol of an OCC option symbol (`.AAPL240119C150`),
/// or the symbol itself for anything else (equities stream by ticker).
#[must_use]
pub fn dxlink_symbol(venue_symbol: &str) -> String {
    let Ok(occ) = OccSymbol::parse(venue_symbol) else { return venue_symbol.trim().to_string() };
    let kind = match occ.kind {
        OptionKind::Call => 'C',
        OptionKind::Put => 'P',
    };
    let strike = occ.strike.to_string();
    let strike = if strike.contains('.') { strike.trim_end_matches('0').trim_end_matches('.') } else { &strike };
    format!(".{}{:02}{:02}{:02}{kind}{strike}", occ.root, occ.expiry.year % 100, occ.expiry.month, occ.expiry.day)
}

/// The TastyTrade feed: the account streamer for `account`, and DXLink
/// quotes of `symbols` (venue symbols; quotes come back under them).
pub async fn tastytrade(
    client: Arc<TastyClient>,
    account: &str,
    streamer: AccountStreamConfig,
    dxlink: DxLinkConfig,
    symbols: &[String],
) -> Result<(Feed, mpsc::Receiver<FeedEvent>), String> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let mut feed = Feed::default();
    let tokens = Arc::new(ClientAccessTokens::new(Arc::clone(&client)).map_err(|e| e.to_string())?);
    let (account_handle, account_events) = AccountStream::connect(streamer, vec![account.to_string()], tokens)
        .await
        .map_err(|e| format!("TastyTrade account streamer: {e}"))?;
    feed.tasks.push(forward(account_handle, account_events, tx.clone(), |event| match event {
        AccountEvent::Connection(c) => connection(&c),
        AccountEvent::Order(_) | AccountEvent::Balance(_) | AccountEvent::Position(_) => {
            Some(FeedEvent::AccountChanged)
        }
        AccountEvent::Other { .. } => None,
    }));
    if !symbols.is_empty() {
        let by_stream: Vec<(String, String)> = symbols.iter().map(|s| (dxlink_symbol(s), s.clone())).collect();
        let subscriptions = by_stream.iter().map(|(d, _)| Subscription::quote(d)).collect();
        let (dx_handle, dx_events) = DxLinkStream::connect(dxlink, client, subscriptions)
            .await
            .map_err(|e| format!("TastyTrade DXLink: {e}"))?;
        feed.tasks.push(forward(dx_handle, dx_events, tx, move |event| match event {
            DxEvent::Quote(q) => {
                let symbol = by_stream.iter().find(|(d, _)| *d == q.symbol).map(|(_, s)| s.clone())?;
                Some(FeedEvent::Quote {
                    symbol,
                    bid: q.bid_price?,
                    bid_size: q.bid_size.unwrap_or(Quantity::ZERO),
                    ask: q.ask_price?,
                    ask_size: q.ask_size.unwrap_or(Quantity::ZERO),
                })
            }
            DxEvent::Connection(c) => connection(&c),
            DxEvent::Trade(_) => None,
        }));
    }
    Ok((feed, rx))
}

#[cfg(test)]
mod tests {
    use super::dxlink_symbol;

    #[test]
    fn option_symbols_stream_under_their_dxlink_names() {
        assert_eq!(dxlink_symbol("AAPL  240119C00150000"), ".AAPL240119C150");
        assert_eq!(dxlink_symbol("SPY   240621P00450500"), ".SPY240621P450.5");
        assert_eq!(dxlink_symbol("AAPL"), "AAPL");
    }
}
