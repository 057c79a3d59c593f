//! A private engine guarded by the controller as its authorization plugin, for the tests of
//! prevention (`tests/authz.rs`, `tests/power_authz.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::engines::PrivateEngine;
use testkit::http::{self, Resp};
use testkit::{Controller, Fixture, SLEEPER_IMAGE, eventually};

use super::bin;

pub const T: Duration = Duration::from_secs(15);
/// The sleeper image under a second name, for rules on the image.
pub const ALLOWED_IMAGE: &str = "dwtest-allowed:latest";
const PLUGIN_DIR: &str = "/run/docker/plugins";
/// Headers of a JSON request body.
pub const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// A private engine guarded by a controller serving the plugin. The fixture (the shared
/// engine lends the sleeper image) keeps the policy and the controller's log.
pub struct Guarded {
    pub engine: PrivateEngine,
    pub controller: Controller,
    pub fx: Fixture,
    pub name: String,
    pub socket: PathBuf,
}

impl Guarded {
    /// `None` when the test is skipped (no engine, none required).
    pub async fn start(tag: &str, policy_text: &str) -> Option<Guarded> {
        let fx = Fixture::new().await?;
        let name = format!("dwtest-{tag}-{}", std::process::id());
        let socket = Path::new(PLUGIN_DIR).join(format!("{name}.sock"));
        let path = fx.policy(policy_text);
        let flag = format!("--authorization-plugin={name}");
        let engine = PrivateEngine::prepare(tag, &[flag.as_str()]).unwrap();
        // The plugin answers before the engine starts: the engine validates it then.
        let controller = Controller::start(
            bin(),
            &path,
            &[
                "--docker-host",
                &engine.host,
                "--authz-socket",
                &socket.display().to_string(),
            ],
            &[],
        );
        eventually(T, "the plugin socket", || async { socket.exists().then_some(()) })
            .await
            .unwrap();
        let mut g = Guarded {
            engine,
            controller,
            fx,
            name,
            socket,
        };
        g.engine.launch().await.unwrap();
        g.engine.load_image(SLEEPER_IMAGE).unwrap();
        g.engine.cli(&["tag", SLEEPER_IMAGE, ALLOWED_IMAGE]).unwrap();
        g.controller.wait_synced().await;
        Some(g)
    }

    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut a = vec!["run", "-d", "--network", "none"];
        a.extend_from_slice(args);
        self.engine.cli(&a).map_err(|e| e.to_string())
    }

    pub fn exists(&self, name: &str) -> bool {
        self.engine
            .cli(&["ps", "-aq", "--filter", &format!("name=^/{name}$")])
            .is_ok_and(|out| !out.is_empty())
    }

    pub fn state(&self, name: &str) -> String {
        self.engine
            .cli(&["inspect", "-f", "{{.State.Status}}", name])
            .unwrap_or_default()
    }

    /// A `POST` straight at the engine's socket (the plugin judges it first): well-formed
    /// HTTP, whatever the body says.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        http::unix(&self.engine.socket(), "POST", path, headers, body.as_bytes())
            .await
            .unwrap()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- plugin {} ---", self.name);
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}
