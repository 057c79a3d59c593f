//! Hot reload of the allowlist. Watches the file's *directory* (editors replace files by
//! rename, Kubernetes swaps a `..data` symlink; a watch on the file itself dies at the first
//! replacement) and reads the file only when a change is complete:
//!
//! - an in-place write (`>`, `cat >`, `tee`) is applied when the writer **closes** the file
//!   (inotify close-after-write), never while it holds the file open: a writer that pauses
//!   mid-file must not get its prefix applied (a cut inside a rule makes that rule wider);
//! - a rename into the directory, a symlink swap (`..data`), a removal: applied at once;
//! - every event restarts a short settle timer, so a burst costs one read;
//! - the periodic re-read (lost events, filesystems without close events) applies a change
//!   only when two reads one period apart agree.
//!
//! Last-good semantics: a file that cannot be read or parsed is refused, logged with its
//! position and counted, and the previous policy stays in force. A deleted or half-written
//! file never becomes an empty policy.
//!
//! The public keys that `signed_by` names are part of the policy: the directory is watched
//! with its subdirectories, an edit of a key file reloads like an edit of the policy, and a
//! key that cannot be read refuses the whole file (the last good policy, with its keys,
//! stays).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::error::Error;
use crate::policy::Policy;

/// Quiet time after the last event before a complete change is read.
pub const SETTLE: Duration = Duration::from_millis(100);
/// Re-read this often even without events.
const FALLBACK_PERIOD: Duration = Duration::from_secs(30);

/// A policy in force, with the generation that tells reloads apart.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Policy,
    /// 1 for the policy loaded at start, +1 for each accepted reload.
    pub generation: u64,
    /// When it came into force: what an action caused by a policy change is timed from.
    pub since: SystemTime,
}

/// Reload counters and state, for metrics and the status page.
#[derive(Debug)]
pub struct ReloadStats {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// False while the file on disk is refused (an older policy is in force).
    pub file_valid: AtomicBool,
}

impl Default for ReloadStats {
    fn default() -> Self {
        ReloadStats {
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            file_valid: AtomicBool::new(true),
        }
    }
}

/// Handle to the policy in force; clone freely.
#[derive(Clone)]
pub struct PolicyHandle {
    rx: watch::Receiver<Arc<Loaded>>,
    pub stats: Arc<ReloadStats>,
    pub path: PathBuf,
    /// sha256 of each recent generation's file bytes and keys (kept beside [`Loaded`], not in
    /// it, so that code building a `Loaded` by hand is not affected).
    digests: Digests,
}

/// sha256 (lowercase hex) of the bytes of the last few generations, written before the
/// generation is published: a reader that sees generation N finds its digest.
#[derive(Clone, Default)]
struct Digests(Arc<std::sync::Mutex<Vec<(u64, String)>>>);

impl Digests {
    const KEEP: usize = 4;

    fn record(&self, generation: u64, bytes: &[u8]) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.push((generation, sha256_hex(bytes)));
        if v.len() > Self::KEEP {
            v.remove(0);
        }
    }

    fn of(&self, generation: u64) -> Option<String> {
        let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.iter()
            .rev()
            .find(|(g, _)| *g == generation)
            .map(|(_, d)| d.clone())
    }
}

/// sha256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

    /// The policy in force and the sha256 of what it was parsed from (`None` for a
    /// [`PolicyHandle::fixed`] policy, which has no file): the file's bytes (`sha256sum` of the
    /// file, when no rule says `signed_by`), followed by the ids of the key sets it names, so
    /// that a key edited on one node only counts too. Nodes that enforce the same file and
    /// keys have the same digest, whatever their generation numbers: the fleet view compares it.
    pub fn current_with_digest(&self) -> (Arc<Loaded>, Option<String>) {
        let loaded = self.current();
        let digest = self.digests.of(loaded.generation);
        (loaded, digest)
    }

    /// A handle to a fixed policy (tests, one-shot tools): never reloads.
    pub fn fixed(policy: Policy) -> PolicyHandle {
        let (tx, rx) = watch::channel(Arc::new(Loaded {
            policy,
            generation: 1,
            since: SystemTime::now(),
        }));
        std::mem::forget(tx);
        PolicyHandle {
            rx,
            stats: Arc::default(),
            path: PathBuf::new(),
            digests: Digests::default(),
        }
    }
}

/// What a file event means for the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The policy file was written to and is still open: not complete yet.
    Writing,
    /// The policy file was closed after writing: complete.
    Written,
    /// Something was renamed, linked or removed in the directory: complete (renames are
    /// atomic), unless an in-place write of the file is still open.
    Replaced,
}

/// Classifies one notify event for the policy file (and the key files) named `names`;
/// `None` for events that do not matter (opens, reads: our own reads would feed back
/// forever).
pub fn classify(ev: &notify::Event, names: &[OsString]) -> Option<Signal> {
    let ours = || {
        ev.paths
            .iter()
            .any(|p| p.file_name().is_some_and(|f| names.iter().any(|n| n == f)))
    };
    match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => ours().then_some(Signal::Written),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(Signal::Replaced),
        EventKind::Create(CreateKind::Folder) => Some(Signal::Replaced),
        EventKind::Create(_) => {
            // A new regular file is being written (its close comes later); a new symlink
            // (`ln -sf`, a `..data` link) is complete as it appears.
            let link = ev
                .paths
                .iter()
                .any(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()));
            if link {
                Some(Signal::Replaced)
            } else {
                ours().then_some(Signal::Writing)
            }
        }
        EventKind::Modify(ModifyKind::Metadata(_)) => None,
        EventKind::Modify(_) => ours().then_some(Signal::Writing),
        EventKind::Any | EventKind::Other => Some(Signal::Replaced),
    }
}

/// When to read: complete changes after a quiet settle time, never during an open write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gate {
    /// A complete change (close, rename) has been seen since the last read.
    complete: bool,
    /// An in-place write of the file is open (written to, not yet closed).
    writing: bool,
}

impl Gate {
    pub fn on(&mut self, s: Signal) {
        match s {
            Signal::Writing => self.writing = true,
            Signal::Written => {
                self.writing = false;
                self.complete = true;
            }
            Signal::Replaced => self.complete = true,
        }
    }

    /// Called when the settle time has passed without events: whether to read now.
    pub fn settled(&mut self) -> bool {
        if self.complete && !self.writing {
            self.complete = false;
            return true;
        }
        false
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
    let fingerprint = fingerprint(&bytes, &policy);
    let names = Arc::new(std::sync::RwLock::new(watched_names(path, &policy)));
    let digests = Digests::default();
    digests.record(1, &fingerprint);
    let (tx, rx) = watch::channel(Arc::new(Loaded {
        policy,
        generation: 1,
        since: SystemTime::now(),
    }));
    let stats = Arc::new(ReloadStats::default());
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let watched = names.clone();
    let (sig_tx, sig_rx) = mpsc::unbounded_channel::<Signal>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            let names = watched.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = classify(&ev, &names) {
                let _ = sig_tx.send(s);
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watch error; the periodic re-read still runs"),
    })
    .map_err(|source| Error::Watch {
        path: dir.display().to_string(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(|source| Error::Watch {
            path: dir.display().to_string(),
            source,
        })?;
    tracing::info!(path = %path.display(), watching = %dir.display(), "policy loaded; watching for changes");
    let handle = PolicyHandle {
        rx,
        stats: stats.clone(),
        path: path.to_path_buf(),
        digests: digests.clone(),
    };
    let r = Reloader {
        path: path.to_path_buf(),
        last_bytes: bytes,
        fingerprint,
        last_refused: None,
        tx,
        stats,
        names,
        digests: digests.clone(),
    };
    let task = tokio::spawn(reload_loop(r, sig_rx, watcher));
    Ok((handle, task))
}

/// What identifies the policy in force: its bytes and the content of every key it names.
fn fingerprint(bytes: &[u8], policy: &Policy) -> Vec<u8> {
    let mut f = bytes.to_vec();
    for keys in policy.rules.iter().filter_map(|r| r.signed_by.as_ref()) {
        f.extend_from_slice(format!("\0{:?}", keys.id()).as_bytes());
    }
    f
}

/// The file names whose writes and closes matter: the policy's and its keys'.
fn watched_names(path: &Path, policy: &Policy) -> Vec<OsString> {
    let mut names: Vec<OsString> = path.file_name().map(OsString::from).into_iter().collect();
    for keys in policy.rules.iter().filter_map(|r| r.signed_by.as_ref()) {
        for k in keys.paths() {
            if let Some(n) = Path::new(&k).file_name() {
                names.push(n.to_os_string());
            }
        }
    }
    names
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

/// The reloader's memory between reads.
struct Reloader {
    path: PathBuf,
    /// The policy file's bytes in force.
    last_bytes: Vec<u8>,
    /// The bytes and the keys in force ([`fingerprint`]).
    fingerprint: Vec<u8>,
    /// The last refused content and why, so an unchanged bad file is reported once.
    last_refused: Option<Vec<u8>>,
    tx: watch::Sender<Arc<Loaded>>,
    stats: Arc<ReloadStats>,
    /// What the watcher reacts to (the key files change with the policy).
    names: Arc<std::sync::RwLock<Vec<OsString>>>,
    /// The sha256 of each recent generation's fingerprint ([`PolicyHandle::sha256`]).
    digests: Digests,
}

impl Reloader {
    /// Reads the file and applies it if it changed and is valid.
    async fn read_and_apply(&mut self) {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => self.apply(bytes),
            Err(e) => {
                let marker = format!("read error: {}", e.kind()).into_bytes();
                if self.last_refused.as_ref() != Some(&marker) {
                    self.refuse(marker);
                    tracing::error!(path = %self.path.display(), error = %e, generation = self.tx.borrow().generation,
                        "policy file unreadable; keeping the last good policy");
                }
            }
        }
    }

    fn refuse(&mut self, marker: Vec<u8>) {
        self.stats.rejected.fetch_add(1, Relaxed);
        self.stats.file_valid.store(false, Relaxed);
        self.last_refused = Some(marker);
    }

    fn apply(&mut self, bytes: Vec<u8>) {
        match parse_bytes(&bytes, &self.path) {
            Ok(policy) => {
                let fingerprint = fingerprint(&bytes, &policy);
                if fingerprint == self.fingerprint {
                    if self.last_refused.take().is_some() {
                        self.stats.file_valid.store(true, Relaxed);
                        tracing::info!(
                            generation = self.tx.borrow().generation,
                            "policy file is valid again: it is the policy in force, nothing to reload"
                        );
                    }
                    return;
                }
                let generation = self.tx.borrow().generation + 1;
                tracing::info!(
                    generation,
                    mode = policy.mode.as_str(),
                    action = policy.action.as_str(),
                    rules = policy.rules.len(),
                    "policy reloaded"
                );
                self.stats.accepted.fetch_add(1, Relaxed);
                self.stats.file_valid.store(true, Relaxed);
                *self.names.write().unwrap_or_else(|e| e.into_inner()) = watched_names(&self.path, &policy);
                self.digests.record(generation, &fingerprint);
                self.tx.send_replace(Arc::new(Loaded {
                    policy,
                    generation,
                    since: SystemTime::now(),
                }));
                self.last_bytes = bytes;
                self.fingerprint = fingerprint;
                self.last_refused = None;
            }
            Err(e) => {
                let mut marker = bytes;
                marker.extend_from_slice(e.to_string().as_bytes());
                if self.last_refused.as_ref() == Some(&marker) {
                    return;
                }
                let generation = self.tx.borrow().generation;
                self.refuse(marker);
                tracing::error!(error = %e, generation, "policy refused; keeping the last good policy");
            }
        }
    }
}

async fn reload_loop(
    mut r: Reloader,
    mut signals: mpsc::UnboundedReceiver<Signal>,
    _watcher: notify::RecommendedWatcher, // dropped with the task, which ends the watch
) {
    let mut gate = Gate::default();
    let mut settle_at: Option<tokio::time::Instant> = None;
    let mut fallback = tokio::time::interval(FALLBACK_PERIOD);
    fallback.tick().await;
    // The previous periodic read: a change is applied from it only when stable.
    let mut previous_fallback: Option<Vec<u8>> = None;
    let mut watching = true;
    loop {
        tokio::select! {
            s = signals.recv(), if watching => match s {
                Some(s) => {
                    gate.on(s);
                    settle_at = Some(tokio::time::Instant::now() + SETTLE);
                }
                None => {
                    tracing::warn!("file watcher stopped; relying on the periodic re-read");
                    watching = false;
                }
            },
            _ = async { match settle_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                settle_at = None;
                if gate.settled() {
                    r.read_and_apply().await;
                }
            }
            _ = fallback.tick() => {
                let Ok(bytes) = tokio::fs::read(&r.path).await else {
                    r.read_and_apply().await; // reports the read error once
                    continue;
                };
                if previous_fallback.as_ref() == Some(&bytes) || bytes == r.last_bytes {
                    r.apply(bytes.clone());
                }
                previous_fallback = Some(bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{RemoveKind, RenameMode};

    fn ev(kind: EventKind, file: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from("/etc/dw").join(file))
    }

    fn sig(kind: EventKind, file: &str) -> Option<Signal> {
        classify(
            &ev(kind, file),
            &[OsString::from("allowlist.toml"), OsString::from("ci.pub")],
        )
    }

    #[test]
    fn events_are_classified() {
        let close_write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(sig(close_write, "allowlist.toml"), Some(Signal::Written));
        assert_eq!(
            sig(close_write, ".allowlist.toml.swp"),
            None,
            "another file's close"
        );
        assert_eq!(
            sig(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                "allowlist.toml"
            ),
            None,
            "our own reads must not feed back"
        );
        assert_eq!(
            sig(
                EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
                "allowlist.toml"
            ),
            Some(Signal::Writing)
        );
        assert_eq!(
            sig(close_write, "ci.pub"),
            Some(Signal::Written),
            "a key the policy names is part of it"
        );
        assert_eq!(
            sig(EventKind::Modify(ModifyKind::Name(RenameMode::To)), "..data"),
            Some(Signal::Replaced)
        );
        assert_eq!(
            sig(EventKind::Remove(RemoveKind::File), "allowlist.toml"),
            Some(Signal::Replaced)
        );
        assert_eq!(
            sig(EventKind::Create(CreateKind::File), "allowlist.toml"),
            Some(Signal::Writing),
            "a new regular file is written after it is created"
        );
    }

    #[test]
    fn a_paused_in_place_write_is_read_only_after_its_close() {
        let mut g = Gate::default();
        g.on(Signal::Writing); // truncate
        g.on(Signal::Writing); // first half
        assert!(!g.settled(), "still open: never read a prefix");
        g.on(Signal::Replaced); // an unrelated rename while the write is open
        assert!(!g.settled());
        g.on(Signal::Writing); // second half
        g.on(Signal::Written); // close
        assert!(g.settled());
        assert!(!g.settled(), "read once");
    }

    #[test]
    fn renames_and_one_shot_writes_are_read_at_once() {
        let mut g = Gate::default();
        g.on(Signal::Replaced);
        assert!(g.settled());
        g.on(Signal::Writing);
        g.on(Signal::Written);
        assert!(g.settled());
    }

    #[test]
    fn digests_are_sha256_of_each_generation() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = Digests::default();
        for g in 1..=6u64 {
            d.record(g, format!("gen {g}").as_bytes());
        }
        assert_eq!(d.of(6), Some(sha256_hex(b"gen 6")));
        assert_eq!(d.of(3), Some(sha256_hex(b"gen 3")));
        assert_eq!(d.of(2), None, "only the last few are kept");
        let h = PolicyHandle::fixed(Policy::parse("[[allow]]\nname = \"x\"\n", "t").unwrap());
        assert_eq!(h.current_with_digest().1, None, "a fixed policy has no file");
    }
}
