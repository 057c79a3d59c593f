//! Benchmark baseline for `bench/api-load.sh`, never shipped: a pass-through status API that
//! asks Docker on every request instead of answering from the informer's picture.
//!
//! - `GET /containers`: list + inspect of every container (16 inspects in flight), turned
//!   into the very same JSON as status-api's (`models::ContainerView`), so both sides do
//!   the same serialisation work and only the source differs.
//! - `GET /ps`: one list call, its summaries returned as they come (`docker ps`): the
//!   cheapest a pass-through can be, with fewer fields than status-api gives.
//!
//! `cargo run --release -p status-api --example passthrough -- [--listen ADDR]
//! [--scope KEY=VALUE]`; prints `listening on ADDR` once bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use clap::Parser;
use common::container::Container;
use common::engine::{Engine, HttpEngine};
use futures_util::StreamExt;
use status_api::models::{ContainerList, ContainerView};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Inspects in flight per request.
const CONCURRENCY: usize = 16;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Label selector, as status-api's --scope.
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    docker_host: Option<String>,
}

struct Baseline {
    docker: Docker,
    engine: HttpEngine,
    scope: Option<String>,
}

impl Baseline {
    fn list_options(&self) -> bollard::query_parameters::ListContainersOptions {
        let mut filters: HashMap<&str, Vec<&str>> = HashMap::new();
        if let Some(s) = &self.scope {
            filters.insert("label", vec![s.as_str()]);
        }
        ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build()
    }

    /// list + inspect, as status-api would have to without its picture.
    async fn containers(&self) -> anyhow::Result<Vec<Container>> {
        let ids = self
            .engine
            .list(self.scope.as_deref())
            .await
            .context("list containers")?;
        let inspected: Vec<Option<Container>> = futures_util::stream::iter(ids)
            .map(|id| async move {
                let resp = self.engine.inspect(&id).await.ok()?;
                Container::from_inspect(&resp, None).ok()
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut out: Vec<Container> = inspected.into_iter().flatten().collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn error(e: anyhow::Error) -> Response {
    let body = serde_json::json!({"error": "docker_error", "message": format!("{e:#}")});
    warp::reply::with_status(warp::reply::json(&body), StatusCode::BAD_GATEWAY).into_response()
}

async fn containers(b: Arc<Baseline>) -> Result<Response, Rejection> {
    Ok(match b.containers().await {
        Ok(list) => {
            let now = SystemTime::now();
            let views: Vec<ContainerView> = list
                .iter()
                .map(|c| ContainerView::new(c, None, None, now))
                .collect();
            let body = ContainerList {
                count: views.len(),
                containers: views,
                synced: true,
            };
            warp::reply::json(&body).into_response()
        }
        Err(e) => error(e),
    })
}

async fn ps(b: Arc<Baseline>) -> Result<Response, Rejection> {
    Ok(match b.docker.list_containers(Some(b.list_options())).await {
        Ok(list) => warp::reply::json(&list).into_response(),
        Err(e) => error(anyhow::Error::new(e).context("list containers")),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let docker = common::docker::connect(args.docker_host.as_deref()).await?;
    let state = Arc::new(Baseline {
        docker,
        engine: HttpEngine::new(args.docker_host.as_deref())?,
        scope: args.scope,
    });
    let with = {
        let s = state.clone();
        warp::any().map(move || s.clone())
    };
    let routes = warp::path!("containers")
        .and(warp::get())
        .and(with.clone())
        .and_then(containers)
        .or(warp::path!("ps").and(warp::get()).and(with).and_then(ps));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("listening on {}", listener.local_addr()?);
    warp::serve(routes)
        .incoming(listener)
        .graceful(common::shutdown::signal())
        .run()
        .await;
    Ok(())
}
