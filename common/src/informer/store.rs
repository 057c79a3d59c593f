//! The in-memory picture of the host: one writer (the informer), many cheap cloned readers.
//! Requests to the status API and decisions of the controller read from here; they cost no
//! Docker call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use crate::engine::container::Container;

/// Shared handle; clone freely.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    containers: RwLock<HashMap<String, Arc<Container>>>,
    /// True once a full list has been applied and the event stream is connected; false
    /// while disconnected (the picture may then be stale).
    ready: watch::Sender<bool>,
    /// Moves on every change of the picture: a container added, changed or removed, the
    /// readiness flipped. An inspect that finds a container as stored (the periodic re-list
    /// of an unchanged host inspects every container) changes nothing, so readers that cache
    /// what they derive from the store (status-api's views) keep it.
    version: AtomicU64,
}

/// Why [`Store::resolve`] found no single container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    NotFound,
    /// A prefix matched several IDs; they are listed.
    Ambiguous(Vec<String>),
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Store {
            inner: Arc::new(Inner {
                containers: RwLock::new(HashMap::new()),
                ready: watch::Sender::new(false),
                version: AtomicU64::new(0),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Container>>> {
        // A panic while holding the lock leaves whole entries: the data is still usable.
        self.inner.containers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Container>>> {
        self.inner.containers.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Container>> {
        self.read().get(id).cloned()
    }

    /// Every container, sorted by name.
    pub fn list(&self) -> Vec<Arc<Container>> {
        let mut v: Vec<_> = self.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        v
    }

    pub fn ids(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds a container by full ID, name, or unique ID prefix (in that order, like the
    /// Docker CLI).
    pub fn resolve(&self, key: &str) -> Result<Arc<Container>, Lookup> {
        let map = self.read();
        if let Some(c) = map.get(key) {
            return Ok(c.clone());
        }
        let name = key.trim_start_matches('/');
        if let Some(c) = map.values().find(|c| c.name == name) {
            return Ok(c.clone());
        }
        if key.is_empty() {
            return Err(Lookup::NotFound);
        }
        let mut hits: Vec<&Arc<Container>> = map.values().filter(|c| c.id.starts_with(key)).collect();
        match hits.len() {
            0 => Err(Lookup::NotFound),
            1 => Ok(hits.remove(0).clone()),
            _ => {
                let mut ids: Vec<String> = hits.iter().map(|c| c.id.clone()).collect();
                ids.sort();
                Err(Lookup::Ambiguous(ids))
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Waits until the first full list has been applied.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.inner.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The picture's version: it moves on every change of the contents, and only then.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Relaxed)
    }

    /// Stores `c`, unless an equal container is stored already: then the stored one (and its
    /// `Arc`, which readers may compare by pointer) stays, and the version does not move.
    pub(crate) fn upsert(&self, c: Arc<Container>) {
        let mut map = self.write();
        if map.get(&c.id).is_some_and(|old| **old == *c) {
            return;
        }
        map.insert(c.id.clone(), c);
        self.inner.version.fetch_add(1, Relaxed);
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Container>> {
        let gone = self.write().remove(id);
        if gone.is_some() {
            self.inner.version.fetch_add(1, Relaxed);
        }
        gone
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        if self.inner.ready.send_replace(ready) != ready {
            self.inner.version.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::container::State;

    fn c(id: &str, name: &str) -> Arc<Container> {
        Arc::new(Container {
            id: id.into(),
            name: name.into(),
            image: "i".into(),
            image_id: "sha256:1".into(),
            state: State::Running,
            ..Default::default()
        })
    }

    #[test]
    fn resolves_id_name_and_unique_prefix() {
        let s = Store::new();
        s.upsert(c("abc123", "web"));
        s.upsert(c("abd456", "db"));
        s.upsert(c("ffff", "abc"));
        assert_eq!(s.resolve("abc123").unwrap().name, "web");
        assert_eq!(s.resolve("db").unwrap().id, "abd456");
        assert_eq!(s.resolve("/db").unwrap().id, "abd456");
        assert_eq!(s.resolve("abc").unwrap().id, "ffff", "a name wins over a prefix");
        assert_eq!(s.resolve("abd").unwrap().id, "abd456");
        assert_eq!(
            s.resolve("ab").unwrap_err(),
            Lookup::Ambiguous(vec!["abc123".into(), "abd456".into()])
        );
        assert_eq!(s.resolve("zz").unwrap_err(), Lookup::NotFound);
        assert_eq!(s.resolve("").unwrap_err(), Lookup::NotFound);
        assert_eq!(
            s.list().iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["abc", "db", "web"]
        );
        s.remove("ffff");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn the_version_moves_with_the_contents_only() {
        let s = Store::new();
        let v0 = s.version();
        let first = c("a", "web");
        s.upsert(first.clone());
        let v1 = s.version();
        assert!(v1 > v0);
        // A re-list's inspect of an unchanged container: the stored Arc stays.
        s.upsert(c("a", "web"));
        assert_eq!(s.version(), v1);
        assert!(Arc::ptr_eq(&s.get("a").unwrap(), &first));
        s.upsert(c("a", "web-2"));
        let v2 = s.version();
        assert!(v2 > v1);
        assert_eq!(s.get("a").unwrap().name, "web-2");
        assert!(s.remove("nothing").is_none());
        assert_eq!(s.version(), v2);
        assert!(s.remove("a").is_some());
        let v3 = s.version();
        assert!(v3 > v2);
        s.set_ready(true);
        let v4 = s.version();
        assert!(v4 > v3);
        s.set_ready(true);
        assert_eq!(s.version(), v4);
    }

    #[tokio::test]
    async fn readiness_is_awaitable() {
        let s = Store::new();
        assert!(!s.is_ready());
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.wait_until_ready().await });
        s.set_ready(true);
        waiter.await.unwrap();
        assert!(s.is_ready());
    }
}
