-- Equity per currency with each snapshot (cash plus the positions quoted in
-- each currency, no conversion between them), as a JSON array of
-- [currency, amount] pairs. NULL in snapshots taken before it was recorded.
ALTER TABLE equity_snapshots ADD COLUMN by_currency TEXT;
