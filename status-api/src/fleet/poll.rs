//! Asking one peer: its `GET /node`, `GET /containers` and `GET /decisions`, at once, through
//! the project's one HTTP client, with the ETag of its last answer (a 304 keeps the last
//! copy), the token when one is set, a size limit and one deadline for the three.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::client::{Client, Target};
use hyper::header::{self, HeaderName, HeaderValue};
use jiff::Timestamp;

use super::NodeInfo;
use super::merge::{self, Containers, Decisions};

/// The largest answer read from a peer (10,000 containers take about 7 MB).
pub const MAX_BODY: usize = 16 << 20;

/// What is known of one peer address, kept between rounds.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    client: Client,
    etag_node: Option<HeaderValue>,
    etag_containers: Option<HeaderValue>,
    decisions_body: Option<Bytes>,
    pub info: Option<NodeInfo>,
    pub containers: Option<Arc<Containers>>,
    pub decisions: Option<Arc<Decisions>>,
    /// Why its controller's decisions cannot be read.
    pub decisions_error: Option<String>,
    pub reachable: bool,
    pub error: Option<String>,
    pub last_answer: Option<Timestamp>,
    /// It answered with this node's own instance token: never asked again.
    pub is_self: bool,
    /// When discovery stopped listing it (it is then unreachable, and forgotten later).
    pub unlisted_since: Option<Instant>,
    /// Moves whenever something shown about it changes.
    pub version: u64,
}

/// What one round got from a peer.
enum Got {
    Fresh(Bytes, Option<HeaderValue>),
    Same,
}

impl Peer {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Peer {
        Peer {
            addr,
            client: Client::new(
                Target::Tcp(addr.to_string()),
                format!("the status-api at {addr}"),
                timeout,
            ),
            etag_node: None,
            etag_containers: None,
            decisions_body: None,
            info: None,
            containers: None,
            decisions: None,
            decisions_error: None,
            reachable: false,
            error: None,
            last_answer: None,
            is_self: false,
            unlisted_since: None,
            version: 0,
        }
    }

    /// The name it goes by: its own, or its address until it answered.
    pub fn name(&self) -> String {
        match &self.info {
            Some(i) if !i.node.is_empty() => i.node.clone(),
            _ => self.addr.to_string(),
        }
    }

    async fn get(
        client: &Client,
        what: &str,
        path: &str,
        etag: Option<&HeaderValue>,
        auth: Option<&HeaderValue>,
    ) -> Result<Got, String> {
        let mut headers: Vec<(HeaderName, HeaderValue)> =
            vec![(header::ACCEPT, HeaderValue::from_static("application/json"))];
        if let Some(t) = etag {
            headers.push((header::IF_NONE_MATCH, t.clone()));
        }
        if let Some(a) = auth {
            headers.push((header::AUTHORIZATION, a.clone()));
        }
        let (resp, body) = client
            .get(what, path, &headers, MAX_BODY)
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == hyper::StatusCode::NOT_MODIFIED {
            return Ok(Got::Same);
        }
        Ok(Got::Fresh(body, resp.headers().get(header::ETAG).cloned()))
    }

    /// One round: the three requests at once, within `deadline`. `me`: this node's instance
    /// token. Returns whether anything shown about the peer changed.
    pub async fn poll(&mut self, me: &str, auth: Option<&HeaderValue>, deadline: Duration) -> bool {
        let before = (self.reachable, self.error.clone(), self.decisions_error.clone());
        let client = self.client.clone();
        let (en, ec) = (self.etag_node.clone(), self.etag_containers.clone());
        let three = async {
            tokio::join!(
                Self::get(&client, "ask a peer for its node", "/node", en.as_ref(), auth),
                Self::get(
                    &client,
                    "ask a peer for its containers",
                    "/containers",
                    ec.as_ref(),
                    auth
                ),
                Self::get(&client, "ask a peer for its decisions", "/decisions", None, auth),
            )
        };
        let (node, containers, decisions) = match tokio::time::timeout(deadline, three).await {
            Ok(r) => r,
            Err(_) => {
                self.fail(format!(
                    "no answer from {} within {} s",
                    self.addr,
                    deadline.as_secs_f64()
                ));
                return self.changed(before, false);
            }
        };
        let mut fresh = false;
        match node {
            Err(e) => {
                self.fail(e);
                return self.changed(before, false);
            }
            Ok(Got::Same) => {}
            Ok(Got::Fresh(body, etag)) => match serde_json::from_slice::<NodeInfo>(&body) {
                Ok(info) if info.instance == me => {
                    self.is_self = true;
                    return true;
                }
                Ok(info) => {
                    fresh |= self.info.as_ref().is_none_or(|i| !i.same_as(&info));
                    self.info = Some(info);
                    self.etag_node = etag;
                }
                Err(e) => {
                    self.fail(format!(
                        "{} is not a dockwarden status-api with a fleet view (GET /node: {e})",
                        self.addr
                    ));
                    return self.changed(before, false);
                }
            },
        }
        match containers {
            Err(e) => {
                self.fail(e);
                return self.changed(before, fresh);
            }
            Ok(Got::Same) => {}
            Ok(Got::Fresh(body, etag)) => match merge::containers(&body) {
                Ok(list) => {
                    self.containers = Some(Arc::new(list));
                    self.etag_containers = etag;
                    fresh = true;
                }
                Err(e) => {
                    self.fail(format!("{}'s GET /containers: {e}", self.addr));
                    return self.changed(before, fresh);
                }
            },
        }
        match decisions {
            Ok(Got::Fresh(body, _)) if self.decisions_body.as_ref() == Some(&body) => {
                self.decisions_error = None;
            }
            Ok(Got::Fresh(body, _)) => match merge::decisions(&body) {
                Ok(list) => {
                    self.decisions = Some(Arc::new(list));
                    self.decisions_body = Some(body);
                    self.decisions_error = None;
                    fresh = true;
                }
                Err(e) => self.decisions_error = Some(format!("GET /decisions: {e}")),
            },
            Ok(Got::Same) => {}
            Err(e) => self.decisions_error = Some(e),
        }
        self.reachable = true;
        self.error = None;
        self.last_answer = Some(Timestamp::now());
        self.changed(before, fresh)
    }

    fn fail(&mut self, why: String) {
        self.reachable = false;
        self.error = Some(why);
    }

    fn changed(&mut self, before: (bool, Option<String>, Option<String>), fresh: bool) -> bool {
        let changed = fresh || before != (self.reachable, self.error.clone(), self.decisions_error.clone());
        if changed {
            self.version += 1;
        }
        changed
    }

    /// Discovery no longer lists it.
    pub fn unlist(&mut self, now: Instant, why: String) {
        if self.unlisted_since.is_none() {
            self.unlisted_since = Some(now);
            self.fail(why);
            self.version += 1;
        }
    }
}
