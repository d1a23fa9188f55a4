//! Errors and warnings shared by every parser in this crate.
//!
//! Every problem is tied to a file and a line, so an administrator can go straight to it:
//! errors and warnings print as one line, `path:line: message`. A message says what is wrong
//! and what to do about it.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of problem a [`ConfigError`] reports, for callers that want to branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file could not be read (missing, unreadable, not UTF-8 text).
    Io,
    /// The text does not follow the file's syntax (unterminated quote, over-long word, ...).
    Syntax,
    /// A directive or option that neither virtgate nor pppd/pptpd knows.
    Unknown,
    /// A pppd/pptpd option virtgate knows but refuses, because ignoring it would change
    /// security or addressing behind the administrator's back.
    Refused,
    /// A known directive with a missing or malformed value.
    InvalidValue,
    /// Options that contradict each other (e.g. MPPE required but no MS-CHAP allowed).
    Conflict,
}

/// A configuration problem at `path:line`.
///
/// `line` is 1-based; 0 means the problem concerns the file as a whole (for example it could
/// not be read), and then the line is left out of the display.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file the problem is in.
    pub path: PathBuf,
    /// 1-based line number, or 0 for the whole file.
    pub line: u32,
    /// What kind of problem this is.
    pub kind: ErrorKind,
    /// What is wrong and what to do, without the `path:line:` prefix.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        path: &Path,
        line: u32,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            line,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.line)?;
        f.write_str(&self.message)
    }
}

/// Something accepted but worth telling the administrator about (an option that has no effect
/// in virtgate, a duplicate pptpd.conf directive, a chap-secrets line pppd would skip, ...).
///
/// Warnings are returned to the caller, never printed by this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The file the warning is about.
    pub path: PathBuf,
    /// 1-based line number, or 0 for the whole file.
    pub line: u32,
    /// The warning, without the `path:line:` prefix.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(path: &Path, line: u32, message: impl Into<String>) -> Warning {
        Warning {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.line)?;
        write!(f, "warning: {}", self.message)
    }
}

fn write_located(f: &mut fmt::Formatter<'_>, path: &Path, line: u32) -> fmt::Result {
    if line == 0 {
        write!(f, "{}: ", path.display())
    } else {
        write!(f, "{}:{}: ", path.display(), line)
    }
}

/// A parsed value together with the warnings produced while parsing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The parsed configuration.
    pub value: T,
    /// Warnings in file order (includes are reported where they occur).
    pub warnings: Vec<Warning>,
}

impl<T> Parsed<T> {
    /// Splits into the value and its warnings.
    pub fn into_parts(self) -> (T, Vec<Warning>) {
        (self.value, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_displays_as_one_located_line() {
        let e = ConfigError::new(
            Path::new("/etc/ppp/options.pptpd"),
            7,
            ErrorKind::Unknown,
            "unrecognized option 'frob'",
        );
        assert_eq!(
            e.to_string(),
            "/etc/ppp/options.pptpd:7: unrecognized option 'frob'"
        );
        let whole = ConfigError::new(Path::new("x"), 0, ErrorKind::Io, "cannot read");
        assert_eq!(whole.to_string(), "x: cannot read");
    }

    #[test]
    fn warning_displays_with_prefix() {
        let w = Warning::new(Path::new("o"), 3, "option 'lock' ignored");
        assert_eq!(w.to_string(), "o:3: warning: option 'lock' ignored");
    }
}
