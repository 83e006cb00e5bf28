//! Group commit: one writer task takes every commit waiting in its queue and
//! writes them in one transaction, then acknowledges each. Under load a
//! batch holds many accounts' commits and durability costs one sync for all
//! of them; when idle a lone commit is written at once.
//!
//! On PostgreSQL several writers may run, each owning a share of the
//! accounts (by id), so that one batch is written while another waits for
//! its commit to be flushed; PostgreSQL flushes concurrent commits together.
//! Each account's commits still go through one writer, in order. SQLite has
//! a single writer by nature: more would only wait for its lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{Commit, Store, StoreError};

struct Pending {
    commit: Commit,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Counters of the writer, for metrics.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub batches: AtomicU64,
    pub commits: AtomicU64,
    pub events: AtomicU64,
    pub failed_batches: AtomicU64,
    /// Total time spent writing, in microseconds.
    pub write_micros: AtomicU64,
    /// How long the latest batch took to write, in microseconds.
    pub last_write_micros: AtomicU64,
}

/// A handle to the writer task. Cloning is cheap; when every handle is
/// dropped the writer finishes what is queued and stops.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    /// One queue per writer; an account's commits always use the same one.
    tx: Arc<[mpsc::Sender<Pending>]>,
    stats: Arc<CommitStats>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("account", &self.commit.account).finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Starts the writer. At most `max_batch` commits go in one transaction;
    /// `queue` commits may wait (senders wait beyond that: backpressure).
    #[must_use]
    pub fn start(store: Store, max_batch: usize, queue: usize) -> (Self, JoinHandle<()>) {
        Self::start_with_writers(store, max_batch, queue, 1)
    }

    /// Like [`Self::start`] with `writers` writer tasks sharing the accounts
    /// (see the module docs). The handle finishes when every writer has.
    #[must_use]
    pub fn start_with_writers(store: Store, max_batch: usize, queue: usize, writers: usize) -> (Self, JoinHandle<()>) {
        let stats = Arc::new(CommitStats::default());
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..writers.max(1) {
            let (tx, rx) = mpsc::channel(queue.max(1));
            senders.push(tx);
            handles.push(tokio::spawn(run(store.clone(), rx, max_batch.max(1), Arc::clone(&stats))));
        }
        let handle = tokio::spawn(async move {
            // Aborting this task aborts the writers, as with a single writer.
            let mut writers = AbortOnDrop(handles);
            for h in &mut writers.0 {
                let _ = h.await;
            }
        });
        (Self { tx: senders.into(), stats }, handle)
    }

    /// Writes a commit durably; returns once it is committed.
    pub async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.enqueue(commit).await?.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a commit and returns at once (waiting only for room in the
    /// queue) with a receiver that answers when it is durable. Commits queued
    /// by one caller are written in the order they were queued.
    pub async fn enqueue(&self, commit: Commit) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let writers = self.tx.len() as u64;
        let tx = &self.tx[usize::try_from(commit.account.unsigned_abs() % writers).unwrap_or(0)];
        tx.send(Pending { commit, reply }).await.map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }

    /// Commits waiting for a writer, across every writer's queue.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.tx.iter().map(|tx| tx.max_capacity() - tx.capacity()).sum()
    }

    #[must_use]
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Pending>, max_batch: usize, stats: Arc<CommitStats>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    let mut commits: Vec<Commit> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        commits.clear();
        commits.extend(batch.iter_mut().map(|p| std::mem::take(&mut p.commit)));
        let started = std::time::Instant::now();
        let result = store.write(&commits).await;
        let took = started.elapsed();
        metrics::histogram!("tradecore_journal_commit_duration_seconds").record(took.as_secs_f64());
        #[allow(clippy::cast_precision_loss)] // a batch holds at most a few thousand commits
        metrics::histogram!("tradecore_journal_batch_size").record(batch.len() as f64);
        stats.write_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        stats.last_write_micros.store(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let event_count: usize = commits.iter().map(|c| c.events.len()).sum();
        match result {
            Ok(()) => {
                stats.commits.fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats.events.fetch_add(event_count as u64, Ordering::Relaxed);
                for p in batch.drain(..) {
                    let _ = p.reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = batch.pop() {
                    let _ = p.reply.send(Err(e));
                }
            }
            Err(_) => {
                // One bad commit must not fail its neighbours: write each alone.
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                for (p, commit) in batch.drain(..).zip(commits.drain(..)) {
                    let alone = store.write(std::slice::from_ref(&commit)).await;
                    if alone.is_ok() {
                        stats.commits.fetch_add(1, Ordering::Relaxed);
                        stats.events.fetch_add(commit.events.len() as u64, Ordering::Relaxed);
                    }
                    let _ = p.reply.send(alone);
                }
            }
        }
    }
}
