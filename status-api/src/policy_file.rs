//! Whether the allowlist file on disk is the policy in force. The reloader keeps the last
//! good policy when the file turns bad, and says so in its log; the page must say it too
//! ("the file on disk was refused; generation N stays in force"). The reloader exposes only
//! accepted/rejected counters, so this re-reads the file once a second and checks it with
//! the same parser (`Policy::parse`), which also gives the position of the error. A valid
//! file that differs from the policy in force is a reload in progress, not a refusal.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::policy::Policy;
use common::reload::PolicyHandle;

/// How often the file is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// The file's state; clone freely.
#[derive(Clone, Default)]
pub struct FileStatus {
    /// Why the file on disk is refused (with file, line and column); `None`: it is valid.
    refused: Arc<RwLock<Option<String>>>,
    version: Arc<AtomicU64>,
}

impl FileStatus {
    pub fn refused(&self) -> Option<String> {
        self.refused.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Relaxed)
    }

    /// Records the outcome of one check; bumps the version when it changed.
    pub fn set(&self, refused: Option<String>) {
        let mut cur = self.refused.write().unwrap_or_else(|e| e.into_inner());
        if *cur != refused {
            *cur = refused;
            self.version.fetch_add(1, Relaxed);
        }
    }

    /// Checks the file once a second, forever.
    pub async fn watch(self, policy: PolicyHandle) {
        let path = policy.path.clone();
        let mut last: Option<Vec<u8>> = None;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match tokio::fs::read(&path).await {
                Err(e) => {
                    last = None;
                    self.set(Some(format!("{}: cannot read: {e}", path.display())));
                }
                Ok(bytes) if last.as_ref() == Some(&bytes) => {}
                Ok(bytes) => {
                    let verdict = match std::str::from_utf8(&bytes) {
                        Err(e) => Some(format!("{}: not UTF-8: {e}", path.display())),
                        Ok(text) => Policy::parse(text, &path.display().to_string())
                            .err()
                            .map(|e| e.to_string()),
                    };
                    self.set(verdict);
                    last = Some(bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_move_only_on_change() {
        let s = FileStatus::default();
        s.set(None);
        assert_eq!(s.version(), 0);
        s.set(Some("bad".into()));
        assert_eq!((s.version(), s.refused().as_deref()), (1, Some("bad")));
        s.set(Some("bad".into()));
        assert_eq!(s.version(), 1);
        s.set(None);
        assert_eq!(s.version(), 2);
    }
}
