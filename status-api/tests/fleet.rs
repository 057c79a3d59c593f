//! The fleet view end to end (issue 20): three real status-api servers in this process on
//! three loopback ports, each scoped by label to "its node's" containers on the real engine,
//! with its own policy file and node name, peered by a list of the three addresses (their
//! own included), all behind one token. Checks, on node 1: every node's containers with
//! their node names, the filters, 304 on the ETag, drift of the node with another policy,
//! a node that stops is listed as unreachable (its containers left out) within the timeout
//! and comes back when it restarts on the same port, the page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::{Api, Opts};
use testkit::{Fixture, Spec, eventually, free_port};

const TOKEN: &str = "dwtest-fleet-token";
const POLICY: &str = "mode = \"audit\"\n[[allow]]\nname = \"*-ok\"\n";
const OTHER_POLICY: &str = "mode = \"audit\"\n[[allow]]\nname = \"*-ok\"\n[[allow]]\nimage = \"nginx:*\"\n";

struct Node {
    name: String,
    addr: SocketAddr,
    selector: String,
    policy: PathBuf,
}

async fn start(node: &Node, peers: &str) -> Api {
    let opts = Opts {
        allowlist: Some(node.policy.clone()),
        token: Some(TOKEN.into()),
        listen: Some(node.addr),
        peers: Some(peers.into()),
        node_name: Some(node.name.clone()),
        peer_timeout: Some(Duration::from_secs(1)),
        fleet_interval: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let api = Api::start_unsynced(Some(node.selector.clone()), opts).await;
    api.wait_ready().await;
    api
}

async fn fleet_nodes(api: &Api) -> Value {
    let r = api.get("/fleet/nodes").await;
    if r.status != 200 {
        return Value::Null;
    }
    r.json()
}

fn node<'a>(nodes: &'a Value, name: &str) -> &'a Value {
    nodes["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_view_with_drift_and_an_unreachable_node() {
    let Some(fx) = Fixture::named("fleet").await else {
        return;
    };
    let nodes: Vec<Node> = (1..=3)
        .map(|i| Node {
            name: format!("{}-n{i}", fx.scope.id),
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            selector: format!("dwtest.fleetnode={}-n{i}", fx.scope.id),
            policy: fx.write(&format!("n{i}.toml"), if i == 3 { OTHER_POLICY } else { POLICY }),
        })
        .collect();
    let peers = nodes
        .iter()
        .map(|n| n.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // Two containers per node: one allowed, one denied (audit mode: it stays running).
    for (i, n) in nodes.iter().enumerate() {
        let label = n.selector.split_once('=').unwrap().1;
        for what in ["ok", "bad"] {
            fx.run(Spec::new(&format!("n{}-{what}", i + 1)).labels(&[("dwtest.fleetnode", label)]))
                .await;
        }
    }
    let n1 = start(&nodes[0], &peers).await;
    let n1 = &n1;
    let mut n2 = Some(start(&nodes[1], &peers).await);
    let n3 = start(&nodes[2], &peers).await;

    // Node 1 sees every node's containers, each with its node's name.
    let list = eventually(
        Duration::from_secs(15),
        "node 1's /fleet/containers lists 6 containers",
        || async {
            let r = n1.get("/fleet/containers").await;
            let v = (r.status == 200).then(|| r.json())?;
            (v["count"] == 6 && v["synced"] == true).then_some(v)
        },
    )
    .await
    .unwrap();
    for (i, n) in nodes.iter().enumerate() {
        for what in ["ok", "bad"] {
            let name = fx.name(&format!("n{}-{what}", i + 1));
            let c = list["containers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} missing: {list}"));
            assert_eq!(c["node"], n.name.as_str(), "{c}");
            assert_eq!(c["allowed"], what == "ok", "{c}");
            assert!(
                c["id"].as_str().is_some_and(|id| id.len() == 64),
                "the node's own object: {c}"
            );
        }
    }
    assert_eq!(list["nodes"], 3);
    assert_eq!(list["unreachable"], serde_json::json!([]));

    // Filters, node= included; gzip made once per merge.
    let only = n1
        .get(&format!("/fleet/containers?node={}", nodes[1].name))
        .await
        .json();
    assert_eq!(only["count"], 2, "{only}");
    assert!(
        only["containers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["node"] == nodes[1].name.as_str())
    );
    let denied = n1
        .get("/fleet/containers?allowed=false&state=running")
        .await
        .json();
    assert_eq!(denied["count"], 3, "{denied}");
    n1.get("/fleet/containers?nod=x")
        .await
        .assert_error(400, "bad_request", "unknown parameter");
    let auth = format!("Bearer {TOKEN}");
    let gz = support::request(
        n1.addr,
        "GET",
        "/fleet/containers",
        &[("Authorization", &auth), ("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gz.header("etag").is_some_and(|e| e.ends_with("-gz\"")));
    // Without the token nothing is told.
    support::request(n1.addr, "GET", "/fleet/nodes", &[])
        .await
        .assert_error(401, "unauthorized", "no token");

    // Nodes: all reachable; node 3's policy differs from the majority's.
    let sha = common::reload::sha256_hex(POLICY.as_bytes());
    let v = eventually(Duration::from_secs(10), "node 3 flagged as drifted", || async {
        let v = fleet_nodes(n1).await;
        (node(&v, &nodes[2].name)["drift"] == true).then_some(v)
    })
    .await
    .unwrap();
    assert_eq!(v["count"], 3, "{v}");
    assert_eq!(v["drifted"], 1, "{v}");
    assert_eq!(v["policy_sha256_majority"], sha.as_str(), "{v}");
    for (i, n) in nodes.iter().enumerate() {
        let row = node(&v, &n.name);
        assert_eq!(row["reachable"], true, "{row}");
        assert_eq!(row["local"], i == 0, "{row}");
        assert_eq!(row["containers"], 2, "{row}");
        assert_eq!(row["denied_running"], 1, "{row}");
        assert_eq!(row["mode"], "audit", "{row}");
        assert_eq!(row["controller"], "not configured", "{row}");
        assert_eq!(row["drift"], i == 2, "{row}");
        if i < 2 {
            assert_eq!(row["policy_sha256"], sha.as_str(), "{row}");
        }
    }
    let d = n1.get("/fleet/decisions").await.json();
    assert_eq!(d["count"], 0, "{d}");
    assert_eq!(d["unavailable"].as_array().map(Vec::len), Some(3), "{d}");

    // The page: a node column, one tile per node, node 3 flagged.
    let page = n1.get_html("/fleet").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<th>Node</th>"), "no node column");
    for n in &nodes {
        assert!(
            page.body.contains(&format!("id=\"node-{}\"", n.name)),
            "no tile for {}",
            n.name
        );
    }
    assert!(page.body.contains("POLICY DRIFT"), "drift not shown");

    // Node 2 stops: within the timeout it is listed as unreachable, its containers left out.
    n2.take().unwrap().stop().await.unwrap();
    let v = eventually(Duration::from_secs(6), "node 2 listed as unreachable", || async {
        let v = fleet_nodes(n1).await;
        (node(&v, &nodes[1].name)["reachable"] == false).then_some(v)
    })
    .await
    .unwrap();
    let row = node(&v, &nodes[1].name);
    assert!(row["last_answer"].is_string(), "{row}");
    assert!(
        row["error"]
            .as_str()
            .is_some_and(|e| e.contains(&nodes[1].addr.to_string())),
        "{row}"
    );
    assert_eq!(row["containers"], 2, "the last answer's figures stay: {row}");
    let list = n1.get("/fleet/containers").await.json();
    assert_eq!(list["count"], 4, "{list}");
    assert_eq!(list["unreachable"], serde_json::json!([nodes[1].name]));
    let page = n1.get_html("/fleet").await;
    assert!(page.body.contains("UNREACHABLE"), "the page does not say so");

    // It comes back on the same port.
    n2 = Some(start(&nodes[1], &peers).await);
    eventually(Duration::from_secs(10), "node 2 reachable again", || async {
        let v = fleet_nodes(n1).await;
        (node(&v, &nodes[1].name)["reachable"] == true && v["unreachable"] == 0).then_some(())
    })
    .await
    .unwrap();

    // Every node has the same view (no leader).
    let v3 = fleet_nodes(&n3).await;
    assert_eq!(node(&v3, &nodes[2].name)["local"], true, "{v3}");
    assert_eq!(node(&v3, &nodes[2].name)["drift"], true, "{v3}");
    for api in [n2, Some(n3)].into_iter().flatten() {
        api.stop().await.unwrap();
    }
}
