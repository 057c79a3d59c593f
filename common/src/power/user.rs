//! Who a container's user string names, as runc reads `user[:group]`: root, a non-root
//! uid, or a name only the image's `/etc/passwd` could tell.

/// Who a user string is (`user[:group]`, as runc reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// Empty, `root`, or a numeric uid 0 (`0`, `00`, `0:1000`, `:1000`).
    Root,
    /// A numeric uid other than 0.
    NonRoot,
    /// A name: only the image's `/etc/passwd` says which uid it is (Kubernetes refuses such
    /// a user under `runAsNonRoot` too).
    Unproven,
}

pub fn user_kind(user: &str) -> UserKind {
    let uid = user.split(':').next().unwrap_or("");
    if uid.is_empty() || uid == "root" {
        UserKind::Root
    } else if uid.bytes().all(|b| b.is_ascii_digit()) {
        if uid.bytes().all(|b| b == b'0') {
            UserKind::Root
        } else {
            UserKind::NonRoot
        }
    } else {
        UserKind::Unproven
    }
}
