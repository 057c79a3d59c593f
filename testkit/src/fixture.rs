//! The setup every real-engine test repeats, in one constructor: the engine (or a loud
//! skip), the sleeper image, a scope named for the test, a temporary directory, a policy
//! file in it and a controller governing the scope.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;

use crate::process::Controller;
use crate::{Scope, Spec, docker_or_skip, sleeper_image, test_name, wait};

/// One test's world on the shared engine. Dropping it removes the scope's containers and
/// the directory.
pub struct Fixture {
    pub docker: Docker,
    pub scope: Scope,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// For the running test (named after it): `None` when there is no engine and none is
    /// required (the skip is printed); panics when the sleeper image cannot be built.
    pub async fn new() -> Option<Fixture> {
        Self::named(&test_name()).await
    }

    /// Like [`Fixture::new`] with a scope tag of the caller's choosing.
    pub async fn named(tag: &str) -> Option<Fixture> {
        let docker = docker_or_skip().await?;
        if let Err(e) = sleeper_image() {
            panic!("sleeper image: {e:#}");
        }
        let scope = Scope::new(tag);
        let dir = crate::temp_dir(&scope.id).unwrap_or_else(|e| panic!("{e:#}"));
        Some(Fixture { docker, scope, dir })
    }

    /// A path in the fixture's directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Writes `file` in the directory the way editors do (a temp file renamed over it).
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.path(file);
        crate::write_atomic(&p, text);
        p
    }

    /// Writes the policy file (`allow.toml`) and returns its path.
    pub fn policy(&self, text: &str) -> PathBuf {
        self.write("allow.toml", text)
    }

    /// A container name inside the scope.
    pub fn name(&self, suffix: &str) -> String {
        self.scope.name(suffix)
    }

    /// Starts the controller `bin` on `policy` (written first), governing this scope only,
    /// with `args`; returns once its first full list is applied.
    pub async fn controller(&self, bin: &Path, policy: &str, args: &[&str]) -> Controller {
        self.controller_env(bin, policy, args, &[]).await
    }

    /// [`Fixture::controller`] with environment variables.
    pub async fn controller_env(
        &self,
        bin: &Path,
        policy: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Controller {
        let path = self.policy(policy);
        let selector = self.scope.selector();
        let mut all = vec!["--scope", selector.as_str()];
        all.extend_from_slice(args);
        let c = Controller::start(bin, &path, &all, env);
        c.wait_synced().await;
        c
    }

    /// Creates (and starts, unless the spec says not) a container in the scope.
    pub async fn run(&self, spec: Spec<'_>) -> String {
        let name = spec.name;
        self.scope
            .run(&self.docker, spec)
            .await
            .unwrap_or_else(|e| panic!("run {name}: {e:#}"))
    }

    /// The container's state, `None` when it does not exist.
    pub async fn state(&self, id: &str) -> Option<String> {
        wait::state_of(&self.docker, id).await
    }

    /// Waits until the container's state is `want` (`None`: gone); panics at `within`.
    pub async fn wait_state(&self, id: &str, want: Option<&str>, within: Duration) {
        if let Err(e) = wait::wait_state(&self.docker, id, want, within).await {
            panic!("{e:#}");
        }
    }
}
