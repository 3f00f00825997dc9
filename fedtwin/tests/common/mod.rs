//! Helpers shared by the end-to-end test binaries: the `fedtwin` binary, scratch folders, a
//! daemon child process and a federation's certificates and configuration.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use federate_sdk::{Connector, TlsFiles};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_fedtwin");

pub(crate) fn fedtwin(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("fedtwin runs")
}

pub(crate) fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "fedtwin failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fedtwin-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running daemon, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) address: String,
}

impl Daemon {
    pub(crate) fn start(config: &Path) -> Self {
        Self::start_logging(config, Stdio::null())
    }

    /// Starts the daemon with its log (level `info`) going to `log`.
    pub(crate) fn start_logging(config: &Path, log: impl Into<Stdio>) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "--log",
                "info",
                "rti",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("daemon starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self {
            child,
            address: format!("quic://{address}"),
        }
    }

    pub(crate) fn connector(&self, certs: &Path, identity: &str) -> Connector {
        Connector::quic(&self.address, TlsFiles::in_dir(certs, identity)).unwrap()
    }

    /// `fedtwin status` against this daemon as `identity`; its standard output.
    pub(crate) fn status_as(&self, certs: &Path, identity: &str) -> String {
        let certs = certs.to_str().expect("temporary paths are UTF-8");
        ok(&fedtwin(&[
            "status",
            "--rti",
            &self.address,
            "--certs",
            certs,
            "--identity",
            identity,
        ]))
    }

    /// SIGTERM and wait: the daemon flushes its audit log and exits cleanly.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "daemon exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon did not stop within 5 s of SIGTERM");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) const POLICY: &str = r#"
[[policy.rules]]
identities = ["ping", "pong"]
federations = ["ping-pong"]
create = true
join = true
send = ["Ping", "Pong"]
subscribe = ["Ping", "Pong"]
sync_points = true
regulate = true

[[policy.rules]]
identities = ["mallory"]
federations = ["ping-pong"]
join = true
"#;

/// CA, certificates for the daemon and federates, and an rti.toml with a policy and audit log.
pub(crate) fn federation_setup(scratch: &Scratch) -> (PathBuf, PathBuf) {
    let certs = scratch.path("certs");
    let dir = certs.to_str().unwrap();
    ok(&fedtwin(&["certs", "init", "--dir", dir]));
    for name in ["rti", "ping", "pong", "mallory"] {
        ok(&fedtwin(&["certs", "issue", "--dir", dir, "--name", name]));
    }
    ok(&fedtwin(&[
        "certs", "issue", "--dir", dir, "--name", "ops", "--role", "admin",
    ]));
    let config = scratch.path("rti.toml");
    std::fs::write(
        &config,
        format!("[tls]\ndir = \"certs\"\n[audit]\nfile = \"audit.log\"\n{POLICY}"),
    )
    .unwrap();
    (certs, config)
}

/// Rewrites the oscillator example's `mass.toml` and `spring.toml` in `dir`: no `[step] size`
/// (the controller chooses), the mass declaring |lambda| = 10 1/s and the spring 100 1/s.
pub(crate) fn leave_the_step_to_the_controller_with_a_fast_spring(dir: &Path) {
    for (file, lambda) in [("mass.toml", "10.0"), ("spring.toml", "100.0")] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let text = text.replace("size = \"10ms\"\n", "").replace(
            "fastest_eigenvalue = 10.0",
            &format!("fastest_eigenvalue = {lambda}"),
        );
        assert!(!text.lines().any(|l| l.starts_with("size")), "{text}");
        std::fs::write(dir.join(file), text).unwrap();
    }
}
