//! `rti.toml`: the daemon's configuration file.
//!
//! ```toml
//! listen = "0.0.0.0:4433"
//!
//! [tls]
//! dir = "certs"             # holds ca.pem and <identity>.pem / <identity>.key
//! identity = "rti"          # the daemon's own certificate
//! crl = "crl.pem"           # revocation list, relative to dir; default: dir/crl.pem if present
//! allow_classical_key_exchange = false
//!
//! [audit]
//! file = "audit.log"
//!
//! [limits]
//! max_frame = 16777216
//! idle_timeout = "10s"
//!
//! [faults]
//! on_federate_lost = "resign"   # or "halt"
//! stall_after = "30s"           # log who waits for whom after this long without a grant
//! resume_grace = "10s"          # a lost connection may resume its session this long; "0s": off
//! resume_buffer = 100000        # messages kept for a suspended session before it is lost
//!
//! [faults.federations]          # per-federation overrides of on_federate_lost
//! grid = "halt"
//!
//! [[policy.rules]]          # no [policy]: every certified federate may do anything
//! identities = ["*"]
//! join = true
//! ```
//!
//! Relative paths are taken from the configuration file's folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedtwin_core::{LossPolicy, SimDuration};
use serde::Deserialize;

use crate::daemon::DaemonConfig;
use crate::engine::FaultSettings;
use crate::policy::Policy;
use crate::tls::TlsFiles;

/// The parsed file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtiConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Certificates.
    #[serde(default)]
    pub tls: TlsSection,
    /// Audit log.
    pub audit: Option<AuditSection>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// What happens on faults.
    #[serde(default)]
    pub faults: FaultsSection,
    /// Who may do what.
    pub policy: Option<Policy>,
}

/// `[faults]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSection {
    /// What happens to a federation when a federate is lost without resigning.
    #[serde(default)]
    pub on_federate_lost: LossPolicy,
    /// Time without a grant after which a federation with waiting federates is logged as
    /// stalled, e.g. `"30s"`.
    #[serde(default = "default_stall_after")]
    pub stall_after: String,
    /// Per-federation overrides of `on_federate_lost`.
    #[serde(default)]
    pub federations: BTreeMap<String, LossPolicy>,
    /// How long a federate whose connection was lost may resume its session, e.g. `"10s"`;
    /// `"0s"` turns sessions off (a lost connection is a lost federate at once).
    #[serde(default = "default_resume_grace")]
    pub resume_grace: String,
    /// Messages kept for a suspended session; one more and the federate is lost.
    #[serde(default = "default_resume_buffer")]
    pub resume_buffer: usize,
}

impl Default for FaultsSection {
    fn default() -> Self {
        Self {
            on_federate_lost: LossPolicy::default(),
            stall_after: default_stall_after(),
            federations: BTreeMap::new(),
            resume_grace: default_resume_grace(),
            resume_buffer: default_resume_buffer(),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Folder with `ca.pem` and the daemon's certificate and key.
    #[serde(default = "default_certs")]
    pub dir: PathBuf,
    /// The daemon's certificate name.
    #[serde(default = "default_identity")]
    pub identity: String,
    /// Certificate revocation list file, relative to `dir`; it must exist. Absent: `crl.pem` in
    /// `dir` when that file exists. The daemon reloads it when it changes.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// Accept clients that offer no post-quantum key exchange.
    #[serde(default)]
    pub allow_classical_key_exchange: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self {
            dir: default_certs(),
            identity: default_identity(),
            crl: None,
            allow_classical_key_exchange: false,
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The log file (appended to; created if missing).
    pub file: PathBuf,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest frame in bytes, from 64 KiB to `u32::MAX` (checked by `daemon_config`).
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// Silence after which a connection is dropped, e.g. `"10s"`.
    #[serde(default = "default_idle")]
    pub idle_timeout: String,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: default_max_frame(),
            idle_timeout: default_idle(),
        }
    }
}

fn default_certs() -> PathBuf {
    PathBuf::from("certs")
}

fn default_identity() -> String {
    "rti".to_owned()
}

/// The smallest `limits.max_frame` taken: below it ordinary requests would not fit.
const MIN_FRAME: usize = 64 * 1024;
/// The largest: a frame's length travels as a `u32`.
const MAX_FRAME: usize = u32::MAX as usize;

fn default_max_frame() -> usize {
    fedtwin_core::codec::DEFAULT_MAX_FRAME
}

fn default_resume_grace() -> String {
    format!("{}s", DaemonConfig::DEFAULT_RESUME_GRACE.as_secs())
}

fn default_resume_buffer() -> usize {
    DaemonConfig::DEFAULT_RESUME_BUFFER
}

fn default_idle() -> String {
    "10s".to_owned()
}

fn default_stall_after() -> String {
    "30s".to_owned()
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid; the message has the line and column.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, where.
        message: String,
    },
}

impl RtiConfig {
    /// Reads and parses a file.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file, and the line for syntax or unknown keys.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.tls.dir = base.join(&config.tls.dir);
        if let Some(audit) = &mut config.audit {
            audit.file = base.join(&audit.file);
        }
        let invalid = |message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        config.idle_timeout().map_err(invalid)?;
        config.fault_settings().map_err(invalid)?;
        config.resume_grace().map_err(invalid)?;
        if config.faults.resume_buffer == 0 {
            return Err(invalid("faults.resume_buffer must be positive".into()));
        }
        Ok(config)
    }

    fn idle_timeout(&self) -> Result<Duration, String> {
        positive_duration("limits.idle_timeout", &self.limits.idle_timeout)
    }

    fn resume_grace(&self) -> Result<Duration, String> {
        let span: SimDuration = self
            .faults
            .resume_grace
            .parse()
            .map_err(|e| format!("faults.resume_grace: {e}"))?;
        Ok(Duration::from_nanos(span.ticks()))
    }

    /// The engine's fault settings from `[faults]`.
    ///
    /// # Errors
    ///
    /// A message when `stall_after` is not a positive duration.
    pub fn fault_settings(&self) -> Result<FaultSettings, String> {
        Ok(FaultSettings {
            on_federate_lost: self.faults.on_federate_lost,
            per_federation: self.faults.federations.clone(),
            stall_after: Some(positive_duration(
                "faults.stall_after",
                &self.faults.stall_after,
            )?),
        })
    }

    /// The daemon settings, with `listen` overriding the file's address.
    ///
    /// # Errors
    ///
    /// A message when no address is given anywhere, a limit is invalid or the configured
    /// revocation list does not exist.
    pub fn daemon_config(&self, listen: Option<SocketAddr>) -> Result<DaemonConfig, String> {
        let listen = listen
            .or(self.listen)
            .ok_or("no address to listen on: pass --listen or set `listen` in rti.toml")?;
        let mut tls = TlsFiles::in_dir(&self.tls.dir, &self.tls.identity);
        if let Some(crl) = &self.tls.crl {
            // Resolved here rather than in `load`: `--certs` may replace the folder.
            let path = self.tls.dir.join(crl);
            if !path.is_file() {
                return Err(format!(
                    "tls.crl: `{}` does not exist; `fedtwin certs init` and `fedtwin certs \
                     revoke` write it, or remove the setting to check `crl.pem` only if present",
                    path.display()
                ));
            }
            tls.crl = Some(path);
        }
        let max_frame = self.limits.max_frame;
        if !(MIN_FRAME..=MAX_FRAME).contains(&max_frame) {
            return Err(format!(
                "limits.max_frame = {max_frame}: must be from {MIN_FRAME} (64 KiB: a join with \
                 its object model, a batch of updates) to {MAX_FRAME} bytes (frames carry a \
                 32-bit length); the default is {}",
                default_max_frame()
            ));
        }
        Ok(DaemonConfig {
            listen,
            tls,
            allow_classical: self.tls.allow_classical_key_exchange,
            policy: self.policy.clone(),
            audit: self.audit.as_ref().map(|a| a.file.clone()),
            max_frame,
            idle_timeout: self.idle_timeout()?,
            faults: self.fault_settings()?,
            resume_grace: self.resume_grace()?,
            resume_buffer: self.faults.resume_buffer,
        })
    }
}

/// Parses a setting such as `"10s"` that must be longer than zero.
fn positive_duration(key: &str, text: &str) -> Result<Duration, String> {
    let span: SimDuration = text.parse().map_err(|e| format!("{key}: {e}"))?;
    if span.is_zero() {
        return Err(format!("{key} must be positive"));
    }
    Ok(Duration::from_nanos(span.ticks()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_resolves_paths() {
        let dir = std::env::temp_dir().join(format!("fedtwin-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rti.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:4433\"\n[tls]\ndir = \"pki\"\n[audit]\nfile = \"a.log\"\n\
             [limits]\nidle_timeout = \"3s\"\n[faults]\non_federate_lost = \"halt\"\n\
             stall_after = \"5s\"\n[faults.federations]\nlab = \"resign\"\n\
             [[policy.rules]]\nidentities = [\"*\"]\njoin = true\n",
        )
        .unwrap();
        let config = RtiConfig::load(&path).unwrap();
        let daemon = config.daemon_config(None).unwrap();
        assert_eq!(daemon.tls.ca, dir.join("pki").join("ca.pem"));
        assert_eq!(daemon.audit, Some(dir.join("a.log")));
        assert_eq!(daemon.idle_timeout, Duration::from_secs(3));
        assert_eq!(daemon.policy.unwrap().rules.len(), 1);
        assert_eq!(daemon.faults.loss_policy("grid"), LossPolicy::Halt);
        assert_eq!(daemon.faults.loss_policy("lab"), LossPolicy::Resign);
        assert_eq!(daemon.faults.stall_after, Some(Duration::from_secs(5)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_configured_revocation_list_must_exist() {
        let dir = std::env::temp_dir().join(format!("fedtwin-config-crl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pki")).unwrap();
        let path = dir.join("rti.toml");
        std::fs::write(&path, "[tls]\ndir = \"pki\"\ncrl = \"revoked.pem\"\n").unwrap();
        let config = RtiConfig::load(&path).unwrap();
        let message = config.daemon_config(Some(([127, 0, 0, 1], 0).into()));
        let message = message.unwrap_err();
        assert!(
            message.contains("tls.crl") && message.contains("revoked.pem"),
            "{message}"
        );
        std::fs::write(dir.join("pki").join("revoked.pem"), "").unwrap();
        let daemon = config
            .daemon_config(Some(([127, 0, 0, 1], 0).into()))
            .unwrap();
        assert_eq!(daemon.tls.crl, Some(dir.join("pki").join("revoked.pem")));

        // Without the setting, crl.pem beside ca.pem is checked if it is there.
        std::fs::write(&path, "[tls]\ndir = \"pki\"\n").unwrap();
        let daemon = RtiConfig::load(&path)
            .unwrap()
            .daemon_config(Some(([127, 0, 0, 1], 0).into()))
            .unwrap();
        assert_eq!(daemon.tls.crl, None);
        assert_eq!(daemon.tls.crl_path(), dir.join("pki").join("crl.pem"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn max_frame_must_leave_room_for_requests_and_fit_a_frame_length() {
        let listen = Some(([127, 0, 0, 1], 0).into());
        for (frame, ok) in [
            ("0", false),
            ("65535", false),
            ("65536", true),
            ("16777216", true),
            ("4294967296", false),
        ] {
            let config: RtiConfig =
                toml::from_str(&format!("[limits]\nmax_frame = {frame}")).unwrap();
            match config.daemon_config(listen) {
                Ok(daemon) => {
                    assert!(ok, "{frame} taken");
                    assert_eq!(daemon.max_frame.to_string(), frame);
                }
                Err(message) => {
                    assert!(!ok, "{frame}: {message}");
                    assert!(
                        message.contains(&format!("limits.max_frame = {frame}: must be from")),
                        "{message}"
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let dir = std::env::temp_dir().join(format!("fedtwin-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rti.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\n[tls]\nidentty = \"x\"\n").unwrap();
        let message = RtiConfig::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("line 3") && message.contains("identty"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn faults_default_to_resign_and_thirty_seconds_and_refuse_unknown_policies() {
        let config: RtiConfig = toml::from_str("").unwrap();
        let faults = config.fault_settings().unwrap();
        assert_eq!(faults, FaultSettings::default());
        assert_eq!(faults.stall_after, Some(Duration::from_secs(30)));
        assert_eq!(faults.loss_policy("any"), LossPolicy::Resign);

        let bad = toml::from_str::<RtiConfig>("[faults]\non_federate_lost = \"pause\"\n");
        assert!(bad.unwrap_err().to_string().contains("pause"));
        let bad = toml::from_str::<RtiConfig>("[faults]\nstall = \"1s\"\n");
        assert!(bad.unwrap_err().to_string().contains("stall"));
        let zero: RtiConfig = toml::from_str("[faults]\nstall_after = \"0s\"\n").unwrap();
        assert!(
            zero.fault_settings()
                .unwrap_err()
                .contains("faults.stall_after")
        );
    }
}
