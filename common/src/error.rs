//! The library's error type: every variant names the step that failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Docker API ({step}): {source}")]
    Docker {
        step: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: String,
        #[source]
        source: notify::Error,
    },
}

impl Error {
    pub fn docker(step: &'static str, source: bollard::errors::Error) -> Self {
        Error::Docker { step, source }
    }
}
