//! The floor for the time-to-kill bench: the least a killer can do. It follows the engine's
//! event stream for ONE label scope and fires the action the instant it reads the event:
//! `--action kill` sends SIGKILL on `start`, `--action remove` force-removes on `create`.
//! No policy, no inspect, no cache, no log line per container: whatever dockwarden's
//! controller adds on top of this is its own overhead.
//!
//! `dw-floor-killer --scope KEY=VALUE [--action kill|remove] [--docker-host URL]`
//! A scope is required: an unscoped floor killer would kill every container on the engine.
//! It prints `dw-floor-killer ready` once subscribed (events are replayed `since` its own
//! start, so nothing in between is missed), and one line per action at exit (SIGTERM/INT).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{
    EventsOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use testkit::time::{engine_time_arg, now_nano};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Kill,
    Remove,
}

struct Args {
    scope: String,
    action: Action,
    docker_host: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut scope = None;
    let mut action = Action::Kill;
    let mut docker_host = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--scope" => scope = Some(value()?),
            "--docker-host" => docker_host = Some(value()?),
            "--action" => {
                action = match value()?.as_str() {
                    "kill" => Action::Kill,
                    "remove" => Action::Remove,
                    other => bail!("--action must be kill or remove, not {other:?}"),
                }
            }
            "-h" | "--help" => {
                println!("dw-floor-killer --scope KEY=VALUE [--action kill|remove] [--docker-host URL]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let scope =
        scope.context("--scope KEY=VALUE is required (an unscoped floor killer would kill everything)")?;
    if scope.trim().is_empty() || scope.starts_with('=') {
        bail!("--scope must be KEY or KEY=VALUE");
    }
    Ok(Args {
        scope,
        action,
        docker_host,
    })
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    gone: AtomicU64,
    error: AtomicU64,
}

async fn act(docker: Docker, id: String, action: Action, counts: Arc<Counts>) {
    let result = match action {
        Action::Kill => {
            let opts = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
            docker.kill_container(&id, Some(opts)).await
        }
        Action::Remove => {
            let opts = RemoveContainerOptionsBuilder::default().force(true).build();
            docker.remove_container(&id, Some(opts)).await
        }
    };
    match result {
        Ok(()) => counts.ok.fetch_add(1, Relaxed),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => counts.gone.fetch_add(1, Relaxed),
        Err(e) => {
            eprintln!("dw-floor-killer: {id}: {e}");
            counts.error.fetch_add(1, Relaxed)
        }
    };
}

async fn follow(docker: Docker, args: Arc<Args>, counts: Arc<Counts>, since: i64) {
    let event = match args.action {
        Action::Kill => "start",
        Action::Remove => "create",
    };
    let mut since = since;
    loop {
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([
            ("type", vec!["container"]),
            ("event", vec![event]),
            ("label", vec![args.scope.as_str()]),
        ]);
        let opts = EventsOptionsBuilder::default()
            .since(&engine_time_arg(since))
            .filters(&filters)
            .build();
        let mut events = docker.events(Some(opts));
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    if let Some(t) = ev.time_nano {
                        since = since.max(t);
                    }
                    if let Some(id) = ev.actor.and_then(|a| a.id) {
                        tokio::spawn(act(docker.clone(), id, args.action, counts.clone()));
                    }
                }
                Err(e) => {
                    eprintln!("dw-floor-killer: event stream error: {e}");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(parse_args()?);
    let since = now_nano();
    let docker = testkit::connect(args.docker_host.as_deref()).await?;
    let counts = Arc::new(Counts::default());
    tokio::spawn(follow(docker.clone(), args.clone(), counts.clone(), since));
    docker.ping().await.context("ping")?;
    // The stream replays from `since`, so "ready" only has to mean "connected".
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("dw-floor-killer ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!(
        "dw-floor-killer actions ok={} already_gone={} error={}",
        counts.ok.load(Relaxed),
        counts.gone.load(Relaxed),
        counts.error.load(Relaxed)
    );
    Ok(())
}
