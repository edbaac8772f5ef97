//! How a command fails: [`CliError`] decides the exit code, and `main`
//! prints it with its chain of causes. The library's errors name their
//! cause in their message and do not give it again as their `source`, so
//! the chain says each cause once.

/// Why a command failed, and so its exit code. Every error the user sees
/// is printed in one place, `main`, as `error: ` and its context chain.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Exit 1: a config, input or argument to fix.
    #[error("{0:#}")]
    Invalid(anyhow::Error),
    /// Exit 2: it failed while running.
    #[error("{0:#}")]
    Runtime(anyhow::Error),
    /// Exit 1, already reported (config diagnostics, a test's diff).
    #[error("already reported")]
    Reported,
}

/// `.invalid("context")?` and `.runtime("context")?` on any error (exit 1
/// and 2), `.failed()?` for exit 2 when the error says it all.
pub(crate) trait IntoCliError<T> {
    fn failed(self) -> Result<T, CliError>;
    fn invalid(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError>;
    fn runtime(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> IntoCliError<T> for Result<T, E> {
    fn failed(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::Runtime(anyhow::Error::new(e)))
    }
    fn invalid(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError> {
        self.map_err(|e| CliError::Invalid(anyhow::Error::new(e).context(context)))
    }
    fn runtime(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError> {
        self.map_err(|e| CliError::Runtime(anyhow::Error::new(e).context(context)))
    }
}

pub(crate) fn invalid(message: impl std::fmt::Display + Send + Sync + 'static) -> CliError {
    CliError::Invalid(anyhow::anyhow!("{message}"))
}
