//! Hot reload of the allowlist. Watches the file's *directory* (editors replace files by
//! rename, Kubernetes swaps a `..data` symlink; a watch on the file itself dies at the first
//! replacement), re-reads on any event but access events (our own reads would feed back),
//! and falls back to a periodic re-read for lost events and filesystems without inotify.
//!
//! Last-good semantics: a file that cannot be read or parsed is refused, logged with its
//! position and counted, and the previous policy stays in force. A deleted or half-written
//! file never becomes an empty policy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::error::Error;
use crate::policy::Policy;

/// Wait after the first change before reading, so a burst of events (write, chmod, rename)
/// costs one read and a writer has time to finish.
const SETTLE: Duration = Duration::from_millis(150);
/// Re-read this often even without events.
const FALLBACK_PERIOD: Duration = Duration::from_secs(30);

/// A policy in force, with the generation that tells reloads apart.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Policy,
    /// 1 for the policy loaded at start, +1 for each accepted reload.
    pub generation: u64,
}

/// Reload counters for metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
}

/// Handle to the policy in force; clone freely.
#[derive(Clone)]
pub struct PolicyHandle {
    rx: watch::Receiver<Arc<Loaded>>,
    pub stats: Arc<ReloadStats>,
    pub path: PathBuf,
}

impl PolicyHandle {
    /// The policy in force now.
    pub fn current(&self) -> Arc<Loaded> {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every accepted reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Loaded>> {
        self.rx.clone()
    }
}

/// Loads the policy (an error here is fatal for the caller: exit code 2) and starts watching
/// it. The watcher lives as long as the returned task.
pub fn start(path: &Path) -> Result<(PolicyHandle, tokio::task::JoinHandle<()>), Error> {
    let bytes = std::fs::read(path).map_err(|source| crate::policy::PolicyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let policy = parse_bytes(&bytes, path)?;
    let (tx, rx) = watch::channel(Arc::new(Loaded {
        policy,
        generation: 1,
    }));
    let stats = Arc::new(ReloadStats::default());
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        // Our own reads show up as access events; reacting to them would loop forever.
        Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
        // A full channel means a reload is already pending: the events coalesce.
        Ok(_) => {
            let _ = wake_tx.try_send(());
        }
        Err(e) => tracing::warn!(error = %e, "file watch error; the periodic re-read still runs"),
    })
    .map_err(|source| Error::Watch {
        path: dir.display().to_string(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| Error::Watch {
            path: dir.display().to_string(),
            source,
        })?;
    tracing::info!(path = %path.display(), watching = %dir.display(), "policy loaded; watching for changes");
    let handle = PolicyHandle {
        rx,
        stats: stats.clone(),
        path: path.to_path_buf(),
    };
    let task = tokio::spawn(reload_loop(
        path.to_path_buf(),
        bytes,
        tx,
        stats,
        wake_rx,
        watcher,
    ));
    Ok((handle, task))
}

fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Policy, crate::policy::PolicyError> {
    let text = std::str::from_utf8(bytes).map_err(|e| crate::policy::PolicyError::Invalid {
        path: path.display().to_string(),
        line: 1,
        column: 1,
        message: format!("not UTF-8: {e}"),
    })?;
    Policy::parse(text, &path.display().to_string())
}

async fn reload_loop(
    path: PathBuf,
    mut last_bytes: Vec<u8>,
    tx: watch::Sender<Arc<Loaded>>,
    stats: Arc<ReloadStats>,
    mut wake: mpsc::Receiver<()>,
    _watcher: notify::RecommendedWatcher, // dropped with the task, which ends the watch
) {
    let mut fallback = tokio::time::interval(FALLBACK_PERIOD);
    fallback.tick().await;
    // The last refused content, so an unchanged bad file is reported once, not every read.
    let mut last_refused: Option<Vec<u8>> = None;
    loop {
        tokio::select! {
            w = wake.recv() => {
                if w.is_none() {
                    tracing::warn!("file watcher stopped; relying on the periodic re-read");
                    wake = mpsc::channel(1).1; // never fires again
                    continue;
                }
                tokio::time::sleep(SETTLE).await;
                while wake.try_recv().is_ok() {}
            }
            _ = fallback.tick() => {}
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                let marker = format!("read error: {}", e.kind()).into_bytes();
                if last_refused.as_ref() != Some(&marker) {
                    stats.rejected.fetch_add(1, Relaxed);
                    tracing::error!(path = %path.display(), error = %e, "policy file unreadable; keeping the last good policy");
                    last_refused = Some(marker);
                }
                continue;
            }
        };
        if bytes == last_bytes || last_refused.as_ref() == Some(&bytes) {
            continue;
        }
        match parse_bytes(&bytes, &path) {
            Ok(policy) => {
                let generation = tx.borrow().generation + 1;
                tracing::info!(
                    generation,
                    mode = policy.mode.as_str(),
                    action = policy.action.as_str(),
                    rules = policy.rules.len(),
                    "policy reloaded"
                );
                stats.accepted.fetch_add(1, Relaxed);
                tx.send_replace(Arc::new(Loaded { policy, generation }));
                last_bytes = bytes;
                last_refused = None;
            }
            Err(e) => {
                stats.rejected.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "policy refused; keeping the last good policy");
                last_refused = Some(bytes);
            }
        }
    }
}
