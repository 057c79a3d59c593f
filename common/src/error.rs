//! The library's error type: every variant names the step that failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: String,
        #[source]
        source: notify::Error,
    },
}
