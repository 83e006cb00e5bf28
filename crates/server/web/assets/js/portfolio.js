// One account's live figures: positions and cash as the server last sent
// them, valued at the latest quotes (the mid, as the engine marks them).
// All arithmetic is exact (Dec); the server's summary is reloaded after
// every fill, so the figures never drift from what the engine holds.
//
// A live account's instruments are the venue's: their currencies and
// multipliers are not in the paper lookup, and their quotes do not reach
// the page. Its figures are the server's own (`fromServer`): the page
// reloads the summary when its positions or cash change.

import { Dec } from './decimal.js';

const ZERO = Dec.of('0');
const decOrNull = (v) => (v === null || v === undefined ? null : Dec.of(v));

export class Portfolio {
  /**
   * `instruments`: the lookup from app.instruments() (or venue.lookupFor);
   * `fromServer`: use the summary's figures as they are (live accounts).
   */
  constructor(instruments, { fromServer = false } = {}) {
    this.instruments = instruments;
    this.fromServer = fromServer;
    this.balances = new Map(); // currency -> Dec
    this.freeCash = new Map(); // currency -> Dec
    this.positions = new Map(); // instrument id -> {quantity, cost, realized, fees}
    this.marks = new Map(); // instrument id -> Dec
    this.dayStart = new Map(); // currency -> Dec | null
  }

  /** Everything from `GET /api/v1/accounts/{id}`. */
  loadSummary(summary) {
    this.summary = summary;
    this.balances = new Map(summary.balances.map(([c, m]) => [c, Dec.of(m)]));
    this.freeCash = new Map((summary.free_cash ?? []).map(([c, m]) => [c, Dec.of(m)]));
    this.positions = new Map();
    for (const p of summary.positions) {
      this.positions.set(p.instrument, {
        quantity: Dec.of(p.quantity),
        cost: Dec.of(p.cost_basis),
        realized: Dec.of(p.realized_pnl),
        fees: Dec.of(p.fees),
      });
      if (p.mark !== null && p.mark !== undefined && !this.marks.has(p.instrument)) this.marks.set(p.instrument, Dec.of(p.mark));
    }
    this.dayStart = new Map((summary.pnl_by_currency ?? []).map((p) => [p.currency, p.day_start_equity === null ? null : Dec.of(p.day_start_equity)]));
  }

  /** Rows of a `positions` WebSocket message. */
  applyPositions(rows) {
    for (const p of rows) {
      this.positions.set(p.instrument, {
        quantity: Dec.of(p.quantity),
        cost: Dec.of(p.cost_basis),
        realized: Dec.of(p.realized_pnl),
        fees: Dec.of(p.fees),
      });
    }
  }

  /** Rows of a `balances` WebSocket message. */
  applyBalances(rows) {
    for (const [currency, amount] of rows) this.balances.set(currency, Dec.of(amount));
  }

  /** A quote: the instrument's mark becomes its mid. */
  applyQuote(quote) {
    const mid = Dec.of(quote.bid).add(quote.ask).div(2, 9);
    this.marks.set(quote.instrument, mid);
  }

  /** A position as the server valued it (live accounts). */
  serverFigures(p) {
    return {
      id: p.instrument,
      instrument: this.instruments.byId.get(p.instrument) ?? { id: p.instrument, symbol: p.symbol, live: true },
      currency: null,
      quantity: Dec.of(p.quantity),
      average: decOrNull(p.average_price),
      mark: decOrNull(p.mark),
      value: Dec.of(p.market_value),
      unrealized: Dec.of(p.unrealized_pnl),
      realized: Dec.of(p.realized_pnl),
      fees: Dec.of(p.fees),
    };
  }

  /** One position's figures, or null when the instrument is unknown. */
  positionFigures(id) {
    if (this.fromServer) {
      const p = this.summary?.positions.find((row) => row.instrument === id);
      return p ? this.serverFigures(p) : null;
    }
    const p = this.positions.get(id);
    const instrument = this.instruments.byId.get(id);
    if (!p || !instrument) return null;
    const mark = this.marks.get(id) ?? null;
    const value = mark ? p.quantity.mul(mark).mul(instrument.multiplier) : p.cost;
    const average = p.quantity.isZero() ? null : p.cost.div(p.quantity.mul(instrument.multiplier), 9);
    return {
      id,
      instrument,
      currency: instrument.quote_currency,
      quantity: p.quantity,
      average,
      mark,
      value,
      unrealized: value.sub(p.cost),
      realized: p.realized,
      fees: p.fees,
    };
  }

  /** Positions that are open or have realized something, by symbol. */
  positionRows() {
    if (this.fromServer) {
      return (this.summary?.positions ?? []).map((p) => this.serverFigures(p))
        .sort((a, b) => a.instrument.symbol.localeCompare(b.instrument.symbol));
    }
    return [...this.positions.keys()]
      .map((id) => this.positionFigures(id))
      .filter((p) => p && (!p.quantity.isZero() || !p.realized.isZero()))
      .sort((a, b) => a.instrument.symbol.localeCompare(b.instrument.symbol));
  }

  /** Per currency, as the server computed it (live accounts). */
  serverCurrencyRows() {
    const s = this.summary ?? {};
    const equity = new Map((s.equity_by_currency ?? []).map(([c, m]) => [c, Dec.of(m)]));
    const pnl = new Map((s.pnl_by_currency ?? []).map((p) => [p.currency, p]));
    const currencies = new Set([...this.balances.keys(), ...equity.keys(), ...pnl.keys()]);
    return [...currencies].sort().map((currency) => {
      const p = pnl.get(currency);
      const cash = this.balances.get(currency) ?? ZERO;
      return {
        currency,
        cash,
        free: this.freeCash.get(currency) ?? null,
        equity: equity.get(currency) ?? cash,
        unrealized: p ? Dec.of(p.unrealized) : ZERO,
        realized: p ? Dec.of(p.realized) : ZERO,
        fees: p ? Dec.of(p.fees) : ZERO,
        total: p ? Dec.of(p.total) : ZERO,
        day: decOrNull(p?.day),
      };
    });
  }

  /** Per currency: cash, free cash, equity and P&L. */
  currencyRows() {
    if (this.fromServer) return this.serverCurrencyRows();
    const currencies = new Set(this.balances.keys());
    for (const id of this.positions.keys()) {
      const instrument = this.instruments.byId.get(id);
      if (instrument) currencies.add(instrument.quote_currency);
    }
    const rows = [];
    for (const currency of [...currencies].sort()) {
      const cash = this.balances.get(currency) ?? ZERO;
      let value = ZERO;
      let unrealized = ZERO;
      let realized = ZERO;
      let fees = ZERO;
      for (const id of this.positions.keys()) {
        const f = this.positionFigures(id);
        if (!f || f.currency !== currency) continue;
        value = value.add(f.value);
        unrealized = unrealized.add(f.unrealized);
        realized = realized.add(f.realized);
        fees = fees.add(f.fees);
      }
      const equity = cash.add(value);
      const start = this.dayStart.get(currency);
      rows.push({
        currency,
        cash,
        free: this.freeCash.get(currency) ?? null,
        equity,
        unrealized,
        realized,
        fees,
        total: realized.add(unrealized).sub(fees),
        day: start === null || start === undefined ? null : equity.sub(start),
      });
    }
    return rows;
  }
}
