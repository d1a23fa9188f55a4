//! Running `nft`: apply a rendered script as one transaction, remove our table, list the
//! ruleset as JSON. The only place that spawns a process.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::FirewallError;
use crate::model::{validate_table, Ruleset};
use crate::render::{removal_script, render};

/// How to run nft: `nft` from PATH, or any command prefix (tests use
/// `ip netns exec NS nft` so nothing touches the namespace they run in).
#[derive(Debug, Clone)]
pub struct Nft {
    program: OsString,
    args: Vec<OsString>,
}

impl Default for Nft {
    fn default() -> Nft {
        Nft::new()
    }
}

impl Nft {
    /// `nft` found through PATH.
    pub fn new() -> Nft {
        Nft {
            program: "nft".into(),
            args: Vec::new(),
        }
    }

    /// `program args...` stands for `nft`; nft's own arguments follow them.
    pub fn with_command<I, S>(program: impl Into<OsString>, args: I) -> Nft
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Nft {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Renders `ruleset` and applies it as one transaction (see [`Nft::apply_script`]).
    pub fn apply(&self, ruleset: &Ruleset) -> Result<Applied, FirewallError> {
        let script = render(ruleset)?;
        self.apply_script(&ruleset.table, &script)
    }

    /// Runs `nft -f -` once with `script` (normally what [`render`] made for `table`). The kernel
    /// commits the whole batch or none of it: on error the previous state, including an older
    /// copy of our table, is untouched. The error names the first line nft complained about.
    pub fn apply_script(&self, table: &str, script: &str) -> Result<Applied, FirewallError> {
        validate_table(table)?;
        self.run_script(script)?;
        tracing::info!(table = %format!("inet {table}"), "nftables table applied");
        Ok(Applied {
            nft: self.clone(),
            table: table.to_string(),
            removed: false,
        })
    }

    /// Deletes `table inet NAME` if it exists, touching nothing else. Used at start-up for a
    /// table a crashed run left behind, and by [`Applied::remove`].
    pub fn remove_table(&self, table: &str) -> Result<(), FirewallError> {
        validate_table(table)?;
        self.run_script(&removal_script(table))
    }

    /// `nft -j list ruleset`: every table of every program, as nft's JSON (for
    /// [`crate::coexistence_warnings`]).
    pub fn list_ruleset_json(&self) -> Result<String, FirewallError> {
        let out = self
            .command()
            .args(["-j", "list", "ruleset"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            return Err(parse_nft_error(&String::from_utf8_lossy(&out.stderr), ""));
        }
        String::from_utf8(out.stdout).map_err(|e| FirewallError::Json(e.to_string()))
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c
    }

    fn spawn_error(&self, source: std::io::Error) -> FirewallError {
        FirewallError::NftMissing {
            program: self.program.to_string_lossy().into_owned(),
            source,
        }
    }

    fn run_script(&self, script: &str) -> Result<(), FirewallError> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A failed write (nft exited early) shows up in its exit status and stderr.
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = child.wait_with_output().map_err(FirewallError::NftIo)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(parse_nft_error(
                &String::from_utf8_lossy(&out.stderr),
                script,
            ))
        }
    }
}

/// Applies `ruleset` with `nft` from PATH.
pub fn apply(ruleset: &Ruleset) -> Result<Applied, FirewallError> {
    Nft::new().apply(ruleset)
}

/// Removes a table left by an earlier run that did not stop cleanly (`nft` from PATH).
pub fn remove_stale(table: &str) -> Result<(), FirewallError> {
    Nft::new().remove_table(table)
}

/// Our table, in place. [`Applied::remove`] takes it away; dropping an `Applied` without
/// calling it removes it too (best effort, logged), so an error path leaves nothing behind.
#[derive(Debug)]
#[must_use = "dropping an Applied removes the table again"]
pub struct Applied {
    nft: Nft,
    table: String,
    removed: bool,
}

impl Applied {
    /// The name of our `inet` table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Replaces the table with a new ruleset (same table name), atomically.
    pub fn replace(&mut self, ruleset: &Ruleset) -> Result<(), FirewallError> {
        if ruleset.table != self.table {
            return Err(FirewallError::InvalidTable(ruleset.table.clone()));
        }
        self.nft.run_script(&render(ruleset)?)
    }

    /// Deletes our table and nothing else.
    pub fn remove(mut self) -> Result<(), FirewallError> {
        self.removed = true;
        self.nft.remove_table(&self.table)?;
        tracing::info!(table = %format!("inet {}", self.table), "nftables table removed");
        Ok(())
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.nft.remove_table(&self.table) {
                tracing::warn!("removing nftables table inet {}: {e}", self.table);
            }
        }
    }
}

/// Turns nft's stderr into one line. nft reports `FILE:LINE:COL-COL: Error: MESSAGE`, then the
/// offending line and carets; the first error is the one that made the batch fail (later ones
/// follow from the abort), so that is the one we name, with our script's line.
pub(crate) fn parse_nft_error(stderr: &str, script: &str) -> FirewallError {
    let first = stderr
        .lines()
        .find(|l| l.contains("Error:"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("nft failed without a message");
    let (location, message) = match first.split_once("Error:") {
        Some((loc, msg)) => (loc, msg.trim()),
        None => ("", first.trim()),
    };
    // "/dev/stdin:22:3-27: " -> 22
    let line = location
        .split(':')
        .nth(1)
        .and_then(|n| n.trim().parse::<usize>().ok());
    let rule = line
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| script.lines().nth(i))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty());
    FirewallError::Rejected {
        line,
        rule,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_refusal_names_the_line_and_rule() {
        let script = "table inet vg\ndelete table inet vg\ntable inet vg {\n\tchain forward {\n\t\toifname \"eth0\" masquerade\n\t}\n}\n";
        let stderr = "/dev/stdin:5:3-27: Error: Could not process rule: Operation not supported\n\t\toifname \"eth0\" masquerade\n\t\t^^^^^^^^^^^^^^^^^^^^^^^^^\n/dev/stdin:9:3-10: Error: Could not process rule: Operation not supported\n";
        let e = parse_nft_error(stderr, script);
        let FirewallError::Rejected { line, rule, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, Some(5));
        assert_eq!(rule.as_deref(), Some("oifname \"eth0\" masquerade"));
        let text = e.to_string();
        assert_eq!(
            text,
            "nft refused virtgate's ruleset at line 5 `oifname \"eth0\" masquerade`: Could not \
             process rule: Operation not supported (the kernel lacks the nf_tables support this \
             rule needs); nothing was applied; fix: install the nftables package, or disable \
             virtgate's firewall with --no-firewall"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn errors_without_location_or_beyond_the_script() {
        let e = parse_nft_error(
            "netlink: Error: cache initialization failed: Operation not permitted\n",
            "x\n",
        );
        let FirewallError::Rejected {
            line,
            rule,
            message,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!((*line, rule.as_deref()), (None, None));
        assert_eq!(
            message,
            "cache initialization failed: Operation not permitted"
        );
        assert!(e.to_string().contains("needs root"));
        let e = parse_nft_error("/dev/stdin:99:1-2: Error: syntax error\n", "one line\n");
        assert!(matches!(
            e,
            FirewallError::Rejected {
                line: Some(99),
                rule: None,
                ..
            }
        ));
        let e = parse_nft_error("", "");
        assert!(e.to_string().contains("nft failed without a message"));
    }

    #[test]
    fn missing_nft_is_one_line_with_the_fix() {
        let nft = Nft::with_command("/nonexistent/virtgate-test/nft", Vec::<String>::new());
        let e = nft.remove_table("virtgate").unwrap_err();
        assert!(matches!(e, FirewallError::NftMissing { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("cannot run `/nonexistent/virtgate-test/nft`"),
            "{text}"
        );
        assert!(text.ends_with(
            "fix: install the nftables package, or disable virtgate's firewall with --no-firewall"
        ));
        assert!(!text.contains('\n'));
        assert!(matches!(
            nft.remove_table("bad name"),
            Err(FirewallError::InvalidTable(_))
        ));
    }

    #[test]
    fn nft_failure_from_a_fake_program_is_rejected_with_the_script_line() {
        // `sh -c SCRIPT sh -f -` stands in for nft: it reads the script and fails like nft.
        let fake = Nft::with_command(
            "sh",
            [
                "-c",
                "cat >/dev/null; echo '/dev/stdin:4:1-5: Error: syntax error, unexpected junk' >&2; exit 1",
                "sh",
            ],
        );
        let e = fake.apply_script("vg", "a\nb\nc\njunk here\n").unwrap_err();
        assert!(
            matches!(&e, FirewallError::Rejected { line: Some(4), rule: Some(r), .. } if r == "junk here"),
            "{e:?}"
        );
    }
}
