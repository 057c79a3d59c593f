//! `state-controller check`: validate a policy offline and, when Docker answers, show what
//! the controller would do to every container there now, from the same picture (the
//! informer's store) and the same decision. Never acts.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use common::decision::{Verdict, decide_with, signatures_to_verify};
use common::engine::Engine;
use common::informer::Informer;
use common::informer::store::Store;
use common::policy::Policy;
use common::provenance::Verifier;

/// Exit code for an invalid or missing policy, shared with the controller's start-up.
pub const EXIT_BAD_POLICY: u8 = 2;

pub async fn run(
    path: &Path,
    docker_host: Option<&str>,
    scope: Option<&str>,
    offline: bool,
    verifier: &Verifier,
) -> ExitCode {
    let policy = match Policy::load(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("invalid policy: {e}");
            return ExitCode::from(EXIT_BAD_POLICY);
        }
    };
    println!(
        "{}: valid. mode={} action={} profile={} stop_timeout_secs={} rules={}",
        path.display(),
        policy.mode.as_str(),
        policy.action.as_str(),
        policy.profile,
        policy.stop_timeout.as_secs(),
        policy.rules.len()
    );
    for r in &policy.rules {
        if r.grants.is_empty() {
            println!("  {r}  (line {})", r.line);
        } else {
            println!("  {r}  grants {}  (line {})", r.grants, r.line);
        }
    }
    let plugins = policy.engine_plugins();
    if !plugins.is_empty() {
        println!("  engine_plugins: {}", plugins.join(", "));
    }
    if offline {
        return ExitCode::SUCCESS;
    }
    let engine = match common::engine::HttpEngine::new(docker_host) {
        Ok(e) => e.with_timeout(Duration::from_secs(5)),
        Err(e) => {
            println!("Docker not reachable ({e}): only the file was checked.");
            return ExitCode::SUCCESS;
        }
    };
    if let Err(e) = engine.ping().await {
        println!("Docker not reachable ({e}): only the file was checked.");
        return ExitCode::SUCCESS;
    }
    // The same picture the controller works from: the informer's store after its first list.
    let store = Store::new();
    let informer = Informer::new(
        common::informer::Config {
            label_selector: scope.map(str::to_string),
            ..Default::default()
        },
        store.clone(),
        engine.clone(),
    );
    let task = tokio::spawn(informer.run());
    let synced = tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready()).await;
    task.abort();
    if synced.is_err() {
        println!("Docker did not give the list of containers within 30 s: only the file was checked.");
        return ExitCode::SUCCESS;
    }
    let containers = store.list();
    // Run as `check` we are not inside the controller's container: spare by image only if
    // we do run inside one.
    let me = common::identity::discover(&engine).await;
    println!(
        "\n{:<32} {:<40} {:<10} {:<9} WOULD",
        "CONTAINER", "IMAGE", "STATE", "VERDICT"
    );
    let (mut denied, mut allowed) = (0, 0);
    for c in &containers {
        // Signatures are verified first (each within the verifier's timeout), as the
        // controller would.
        for keys in signatures_to_verify(&policy, c, verifier) {
            verifier.verify_image(&c.image, &c.image_digests, keys).await;
        }
        let d = decide_with(&policy, c, &me, verifier);
        match d.verdict() {
            Verdict::Allow => allowed += 1,
            Verdict::Deny => denied += 1,
            Verdict::Spare | Verdict::Undecided => {}
        }
        println!(
            "{:<32} {:<40} {:<10} {:<9} {}",
            c.name,
            c.image,
            c.state.as_str(),
            d.verdict().as_str(),
            d.consequence()
        );
    }
    println!(
        "\n{} containers: {allowed} allowed, {denied} denied.",
        containers.len()
    );
    ExitCode::SUCCESS
}
