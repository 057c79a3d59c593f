//! Cosign signatures made by scripts/lib/cosign_sign.py (Python's `cryptography`, written
//! from cosign's spec: not dockwarden's verifier), for the tests of `signed_by`: key pairs,
//! signatures pushed to a test registry, adversarial variants.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// A Python with `cryptography` (scripts/lib/sign-venv.sh: `DWTEST_PYTHON`, else the venv
/// `target/sign-venv`, made once).
pub fn python() -> Result<PathBuf> {
    static PY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(workspace_root().join("scripts/lib/sign-venv.sh"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err("scripts/lib/sign-venv.sh failed".into());
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Runs scripts/lib/cosign_sign.py with `args`.
pub fn signer(args: &[&str]) -> Result<()> {
    let out = Command::new(python()?)
        .arg(workspace_root().join("scripts/lib/cosign_sign.py"))
        .args(args)
        .output()
        .context("running cosign_sign.py")?;
    if !out.status.success() {
        bail!(
            "cosign_sign.py {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Writes the key pair `dir/NAME.pub` (as `cosign generate-key-pair` writes cosign.pub) and
/// `dir/NAME.key`.
pub fn keygen(dir: &Path, name: &str) -> Result<()> {
    signer(&["keygen", &dir.join(name).display().to_string()])
}

/// Signs `reference` (`REGISTRY/REPO@sha256:HEX`) with `dir/NAME.key` and pushes the
/// signature; `extra`: `--variant V` and the like.
pub fn sign(dir: &Path, name: &str, reference: &str, extra: &[&str]) -> Result<()> {
    let key = dir.join(format!("{name}.key")).display().to_string();
    let mut args = vec!["sign", "--key", key.as_str()];
    args.extend_from_slice(extra);
    args.push(reference);
    signer(&args)
}
