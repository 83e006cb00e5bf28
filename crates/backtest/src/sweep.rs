//! Parameter sweeps: every combination of parameter ranges, run in parallel.
//!
//! Axes are written `name=START..END:STEP` (inclusive, integers or exact
//! decimals) or `name=a,b,c`. Combinations a strategy refuses (say `fast >=
//! slow`) are skipped and reported, not failed. Runs are spread over threads
//! with a shared counter; results are put back in combination order, so the
//! output does not depend on the thread count.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::strategies::StrategyInfo;
use serde::Serialize;

use crate::Market;
use crate::metrics::{self, Metrics, RANKABLE};
use crate::runner::BacktestConfig;

/// One swept parameter and its values, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    pub name: String,
    pub values: Vec<String>,
}

const MAX_COMBINATIONS: usize = 1_000_000;

impl Axis {
    /// Parses `name=5..30:5`, `name=1.5..2.5:0.25` or `name=a,b,c`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, spec) = text
            .split_once('=')
            .ok_or_else(|| format!("invalid sweep '{text}': expected name=START..END:STEP or name=a,b,c"))?;
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err(format!("invalid sweep '{text}': the parameter name is empty"));
        }
        let spec = spec.trim();
        let values = if let Some((range, step)) = spec.split_once(':').filter(|_| spec.contains("..")) {
            let (start, end) = range.split_once("..").ok_or_else(|| format!("invalid sweep range '{spec}'"))?;
            let parse = |s: &str| {
                model::num::parse_fixed_i128(s.trim()).map_err(|e| format!("invalid sweep {name}={spec}: {e}"))
            };
            let (start, end, step) = (parse(start)?, parse(end)?, parse(step)?);
            if step <= 0 {
                return Err(format!("invalid sweep {name}={spec}: the step must be positive"));
            }
            if end < start {
                return Err(format!("invalid sweep {name}={spec}: the end is before the start"));
            }
            let count = (end - start) / step + 1;
            if count > MAX_COMBINATIONS as i128 {
                return Err(format!("invalid sweep {name}={spec}: {count} values is too many"));
            }
            let mut values = Vec::new();
            let mut v = start;
            while v <= end {
                values.push(model::Money::from_raw(v).to_string());
                v += step;
            }
            values
        } else if spec.contains("..") {
            return Err(format!("invalid sweep {name}={spec}: a range needs a step, like 5..30:5"));
        } else {
            spec.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect()
        };
        if values.is_empty() {
            return Err(format!("invalid sweep {name}={spec}: no values"));
        }
        Ok(Self { name, values })
    }
}

/// Every combination of the axes' values, first axis slowest.
pub fn combinations(axes: &[Axis]) -> Result<Vec<Vec<(String, String)>>, String> {
    let total =
        axes.iter().try_fold(1usize, |acc, a| acc.checked_mul(a.values.len()).filter(|n| *n <= MAX_COMBINATIONS));
    let total = total.ok_or_else(|| format!("the sweep has more than {MAX_COMBINATIONS} combinations"))?;
    let mut out = Vec::with_capacity(total);
    for mut index in 0..total {
        let mut combo = vec![(String::new(), String::new()); axes.len()];
        for (k, axis) in axes.iter().enumerate().rev() {
            let n = axis.values.len();
            combo[k] = (axis.name.clone(), axis.values[index % n].clone());
            index /= n;
        }
        out.push(combo);
    }
    Ok(out)
}

/// The outcome of one combination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepResult {
    pub params: std::collections::BTreeMap<String, String>,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// A combination the strategy refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub params: std::collections::BTreeMap<String, String>,
    pub reason: String,
}

/// All results of a sweep, ranked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepOutput {
    pub strategy: String,
    pub rank_by: String,
    pub combinations: usize,
    pub results: Vec<SweepResult>,
    pub skipped: Vec<Skipped>,
}

/// Checks a metric name for ranking; the error lists the choices.
pub fn check_rank(name: &str) -> Result<(), String> {
    if RANKABLE.iter().any(|(n, _)| *n == name) {
        Ok(())
    } else {
        let names: Vec<_> = RANKABLE.iter().map(|(n, _)| *n).collect();
        Err(format!("cannot rank by '{name}'; choose one of {}", names.join(", ")))
    }
}

/// What to sweep.
#[derive(Debug, Clone, Copy)]
pub struct Sweep<'a> {
    pub info: &'a StrategyInfo,
    /// Parameters given outside the sweep.
    pub fixed: &'a [(String, String)],
    pub axes: &'a [Axis],
    pub rank_by: &'a str,
}

/// Runs every combination over `threads` threads; `on_done` is called after each.
pub fn run_sweep(
    market: Market<'_>,
    sweep: &Sweep<'_>,
    config: &BacktestConfig,
    threads: usize,
    on_done: &(dyn Fn() + Sync),
) -> Result<SweepOutput, String> {
    let Sweep { info, fixed, axes, rank_by } = *sweep;
    check_rank(rank_by)?;
    for axis in axes {
        if fixed.iter().any(|(k, _)| *k == axis.name) {
            return Err(format!("parameter '{}' is both swept and given with --param", axis.name));
        }
        if !info.params.iter().any(|p| p.name == axis.name) {
            let known: Vec<_> = info.params.iter().map(|p| p.name).collect();
            return Err(format!(
                "unknown parameter '{}' for strategy {}; it takes: {}",
                axis.name,
                info.name,
                known.join(", ")
            ));
        }
    }
    let combos = combinations(axes)?;
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<Metrics, String>>>> = Mutex::new(vec![None; combos.len()]);
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(combo) = combos.get(i) else { break };
                    let mut given = fixed.to_vec();
                    given.extend(combo.iter().cloned());
                    let outcome = match info.build(&given) {
                        Ok((mut strategy, _)) => {
                            match crate::run_market(market, strategy.as_mut(), config, &mut |_| {}) {
                                Ok((output, _)) => Some(Ok(metrics::compute(&output))),
                                Err(e) => {
                                    let mut slot =
                                        first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                                    slot.get_or_insert_with(|| e.to_string());
                                    None
                                }
                            }
                        }
                        Err(e) => Some(Err(e.to_string())),
                    };
                    slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = outcome;
                    on_done();
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        return Err(e);
    }
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let slots = slots.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (combo, slot) in combos.iter().zip(slots) {
        let params = combo.iter().cloned().collect();
        match slot {
            Some(Ok(metrics)) => results.push(SweepResult { params, metrics }),
            Some(Err(reason)) => skipped.push(Skipped { params, reason }),
            None => {}
        }
    }
    rank(&mut results, rank_by);
    Ok(SweepOutput {
        strategy: info.name.to_string(),
        rank_by: rank_by.to_string(),
        combinations: combos.len(),
        results,
        skipped,
    })
}

/// Best first; undefined values last; ties keep combination order.
pub fn rank(results: &mut [SweepResult], by: &str) {
    let higher_is_better = RANKABLE.iter().find(|(n, _)| *n == by).is_none_or(|(_, h)| *h);
    results.sort_by(|a, b| match (a.metrics.get(by), b.metrics.get(by)) {
        (Some(x), Some(y)) => {
            let ord = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
            if higher_is_better { ord.reverse() } else { ord }
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse() {
        assert_eq!(Axis::parse("fast=5..30:5").unwrap().values, ["5", "10", "15", "20", "25", "30"]);
        assert_eq!(Axis::parse("k=1.5..2.5:0.5").unwrap().values, ["1.5", "2", "2.5"]);
        assert_eq!(Axis::parse("long-only=true,false").unwrap().values, ["true", "false"]);
        for bad in ["fast", "=1..2:1", "fast=5..1:1", "fast=1..5:0", "fast=1..5", "fast=a..b:1", "fast="] {
            assert!(Axis::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn combinations_cover_the_grid() {
        let axes = [Axis::parse("a=1..2:1").unwrap(), Axis::parse("b=x,y,z").unwrap()];
        let combos = combinations(&axes).unwrap();
        assert_eq!(combos.len(), 6);
        assert_eq!(combos[0], vec![("a".into(), "1".into()), ("b".into(), "x".into())]);
        assert_eq!(combos[5], vec![("a".into(), "2".into()), ("b".into(), "z".into())]);
    }

    #[test]
    fn rank_names_are_checked() {
        assert!(check_rank("sharpe").is_ok());
        assert!(check_rank("luck").unwrap_err().contains("sharpe"));
    }
}
