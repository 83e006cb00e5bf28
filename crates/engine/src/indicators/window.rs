//! Building blocks shared by the windowed indicators: a preallocated ring buffer, a compensated
//! (Neumaier) running sum, and a monotonic deque for rolling maxima.
//!
//! All three allocate once, at construction, and never again: `push`/`add` only write into
//! storage that already exists, and `clear` keeps the allocation for reuse after a `reset`.

use std::collections::VecDeque;

use super::IndicatorError;

/// A fixed-capacity FIFO of the last `capacity` values.
///
/// Fills like a `Vec` (so `push` during warmup writes into reserved capacity), then overwrites the
/// oldest slot in place.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    buf: Vec<f64>,
    capacity: usize,
    /// The slot the next push writes; once full, also the oldest value.
    next: usize,
}

impl Ring {
    /// Reserves exactly `capacity` slots. Uses `try_reserve_exact` so that an absurd period is an
    /// error from `new`, not an abort.
    pub(crate) fn new(
        indicator: &'static str,
        parameter: &'static str,
        capacity: usize,
    ) -> Result<Self, IndicatorError> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(capacity).map_err(|_| IndicatorError::PeriodTooLarge {
            indicator,
            parameter,
            period: capacity,
        })?;
        Ok(Self { buf, capacity, next: 0 })
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() == self.capacity
    }

    /// Appends `value`; once the ring is full, returns the value it displaced (the oldest).
    #[inline]
    pub(crate) fn push(&mut self, value: f64) -> Option<f64> {
        let evicted = if self.buf.len() < self.capacity {
            // Within the reserved capacity: no reallocation.
            self.buf.push(value);
            None
        } else {
            Some(std::mem::replace(&mut self.buf[self.next], value))
        };
        self.next += 1;
        if self.next == self.capacity {
            self.next = 0;
        }
        evicted
    }

    /// The stored values, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        // Before the ring is full `next == len`, so the first slice is empty and this is the
        // plain insertion order.
        let (newer, older) = self.buf.split_at(self.next.min(self.buf.len()));
        older.iter().chain(newer).copied()
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.next = 0;
    }

    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

/// A running sum with Neumaier's compensation: the exact rounding error of every addition is
/// accumulated in a second f64, so the result stays accurate (to about an ulp of the true sum,
/// plus a second-order term growing with the number of additions) even after large values have
/// been added and subtracted again. That is the sliding-window case: a spike of 1e12 entering and
/// leaving a window of prices near 1 would otherwise leave garbage behind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NeumaierSum {
    sum: f64,
    compensation: f64,
}

impl NeumaierSum {
    #[inline]
    pub(crate) fn add(&mut self, value: f64) {
        // Knuth's TwoSum: `error` is exactly `(sum + value) - total`. Neumaier's original gets the
        // same exact error by first comparing magnitudes, a data-dependent branch that
        // mispredicts about half the time on price data and doubled Bollinger's update cost.
        let total = self.sum + value;
        let value_part = total - self.sum;
        let error = (self.sum - (total - value_part)) + (value - value_part);
        self.compensation += error;
        self.sum = total;
    }

    /// Adds the exact product `a * b`: the rounded product plus its rounding error, which a fused
    /// multiply-add recovers exactly (`fma(a, b, -p)` is `a * b - p` rounded once, and that
    /// difference is always representable). Without this, a weighted sum keeps the product's
    /// rounding error of every value that ever passed through.
    #[inline]
    pub(crate) fn add_product(&mut self, a: f64, b: f64) {
        let product = a * b;
        self.add(product);
        self.add(a.mul_add(b, -product));
    }

    /// Subtracts another compensated sum at full precision: both of its parts, since rounding
    /// its `value()` to one f64 first would lose exactly what the compensation kept.
    #[inline]
    pub(crate) fn subtract(&mut self, other: &Self) {
        self.add(-other.sum);
        self.add(-other.compensation);
    }

    #[inline]
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.compensation
    }

    /// A fresh compensated sum of `values`.
    pub(crate) fn of(values: impl Iterator<Item = f64>) -> Self {
        let mut sum = Self::default();
        values.for_each(|v| sum.add(v));
        sum
    }
}

/// The maximum of the last `period` values, by a monotonic deque: amortized O(1) per update
/// (each value is pushed once and popped at most once), worst case O(period) for one update.
///
/// The deque holds (index, value) pairs whose values strictly decrease from front to back; the
/// front is the window maximum. A new value removes every older value it equals or exceeds,
/// since those can never again be the maximum while it is in the window.
#[derive(Debug, Clone)]
pub(crate) struct MaxWindow {
    deque: VecDeque<(u64, f64)>,
    period: u64,
    /// The index the next value will get; also the number of values seen.
    next_index: u64,
}

impl MaxWindow {
    pub(crate) fn new(indicator: &'static str, parameter: &'static str, period: usize) -> Result<Self, IndicatorError> {
        let too_large = IndicatorError::PeriodTooLarge { indicator, parameter, period };
        let mut deque = VecDeque::new();
        // After evicting the expired front, at most period - 1 entries remain, so the push
        // never exceeds `period` and never reallocates.
        deque.try_reserve_exact(period).map_err(|_| too_large)?;
        let period = u64::try_from(period).map_err(|_| too_large)?;
        Ok(Self { deque, period, next_index: 0 })
    }

    /// Adds `value`; returns the window maximum once `period` values have been seen.
    #[inline]
    pub(crate) fn push(&mut self, value: f64) -> Option<f64> {
        let index = self.next_index;
        self.next_index += 1;
        // The window after this push is [index + 1 - period, index]; at most one entry expires.
        if let Some(&(front, _)) = self.deque.front()
            && front + self.period <= index
        {
            self.deque.pop_front();
        }
        while let Some(&(_, back)) = self.deque.back()
            && back <= value
        {
            self.deque.pop_back();
        }
        self.deque.push_back((index, value));
        self.value()
    }

    #[inline]
    pub(crate) fn value(&self) -> Option<f64> {
        if self.next_index >= self.period { self.deque.front().map(|&(_, v)| v) } else { None }
    }

    pub(crate) fn clear(&mut self) {
        self.deque.clear();
        self.next_index = 0;
    }

    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.deque.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_iterates_oldest_first_and_never_grows() {
        let mut ring = Ring::new("test", "period", 3).unwrap();
        let allocated = ring.allocated();
        assert_eq!(ring.push(1.0), None);
        assert_eq!(ring.iter().collect::<Vec<_>>(), [1.0]);
        assert_eq!(ring.push(2.0), None);
        assert_eq!(ring.push(3.0), None);
        assert!(ring.is_full());
        assert_eq!(ring.push(4.0), Some(1.0));
        assert_eq!(ring.iter().collect::<Vec<_>>(), [2.0, 3.0, 4.0]);
        for i in 0..1000 {
            ring.push(f64::from(i));
        }
        assert_eq!(ring.iter().collect::<Vec<_>>(), [997.0, 998.0, 999.0]);
        assert_eq!(ring.allocated(), allocated, "the ring reallocated");
        ring.clear();
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.allocated(), allocated, "clear dropped the allocation");
    }

    #[test]
    fn neumaier_keeps_small_terms_next_to_huge_ones() {
        // Plain f64 summation of these gives 0.0: each 1.0 is below half an ulp of 1e17.
        let mut sum = NeumaierSum::default();
        for v in [1e17, 1.0, 1.0, 1.0, -1e17] {
            sum.add(v);
        }
        assert_eq!(sum.value(), 3.0);
        let naive: f64 = [1e17, 1.0, 1.0, 1.0, -1e17].iter().sum();
        assert_eq!(naive, 0.0, "premise of the test: naive summation loses the small terms");
    }

    #[test]
    fn max_window_never_reallocates_on_a_falling_series() {
        // A strictly falling series keeps every value in the deque: the worst case for its size.
        let mut max = MaxWindow::new("test", "period", 5).unwrap();
        let allocated = max.allocated();
        for i in 0..1000 {
            max.push(-f64::from(i));
        }
        assert_eq!(max.value(), Some(-995.0));
        assert_eq!(max.allocated(), allocated, "the deque reallocated");
    }

    #[test]
    fn absurd_period_is_an_error_not_an_abort() {
        let err = Ring::new("SMA", "period", usize::MAX).unwrap_err();
        assert_eq!(err, IndicatorError::PeriodTooLarge { indicator: "SMA", parameter: "period", period: usize::MAX });
        assert!(MaxWindow::new("Highest", "period", usize::MAX).is_err());
    }
}
