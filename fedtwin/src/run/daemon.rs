//! A private RTI daemon on loopback, for runs whose external programs cannot reach an RTI
//! inside this process: a throwaway CA and certificates in a temporary folder, removed with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use fedtwin_core::LossPolicy;
use fedtwin_rti::config::RtiConfig;
use fedtwin_rti::policy::{Policy, Rule};
use fedtwin_rti::tls::{self, Role};
use tokio::sync::oneshot;
use tracing::info;

/// A running private daemon; stopped, and its certificates removed, on drop.
#[derive(Debug)]
pub(crate) struct PrivateDaemon {
    address: SocketAddr,
    certs: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PrivateDaemon {
    /// Creates the CA and a certificate per name, then starts the daemon on 127.0.0.1.
    pub(crate) fn start(
        federation: &str,
        names: &[String],
        on_federate_lost: LossPolicy,
    ) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let certs =
            std::env::temp_dir().join(format!("fedtwin-run-{}-{nanos}", std::process::id()));
        let daemon = Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            certs,
            shutdown: None,
            thread: None,
        };
        daemon.start_inner(federation, names, on_federate_lost)
    }

    fn start_inner(
        mut self,
        federation: &str,
        names: &[String],
        on_federate_lost: LossPolicy,
    ) -> Result<Self, String> {
        tls::init_ca(&self.certs, 2).map_err(|e| e.to_string())?;
        for name in names.iter().map(String::as_str).chain(["rti"]) {
            tls::issue_for_days(&self.certs, name, Role::Federate, 2).map_err(|e| e.to_string())?;
        }
        let mut file = RtiConfig::default();
        file.tls.dir.clone_from(&self.certs);
        file.faults.on_federate_lost = on_federate_lost;
        // The run's federates may do anything, in the run's federation only.
        let all = || vec!["*".to_owned()];
        file.policy = Some(Policy {
            rules: vec![Rule {
                identities: names.to_vec(),
                federations: vec![federation.to_owned()],
                create: true,
                join: true,
                publish: all(),
                subscribe: all(),
                send: all(),
                sync_points: true,
                regulate: true,
                administer: false,
            }],
        });
        let config = file.daemon_config(Some(self.address))?;

        let (shutdown, stopped) = oneshot::channel::<()>();
        let (ready, address) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fedtwin-private-rti".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(format!("cannot start the runtime: {e}")));
                        return;
                    }
                };
                let failed = ready.clone();
                let served = runtime.block_on(fedtwin_rti::daemon::serve(
                    config,
                    async {
                        let _ = stopped.await;
                    },
                    move |address| {
                        let _ = ready.send(Ok(address));
                    },
                ));
                if let Err(e) = served {
                    let _ = failed.send(Err(e.to_string()));
                }
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        self.shutdown = Some(shutdown);
        self.thread = Some(thread);
        self.address = address
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "the daemon did not start".to_owned())??;
        info!(address = %self.address, "private RTI daemon for the command federates");
        Ok(self)
    }

    /// `quic://127.0.0.1:<port>`.
    pub(crate) fn address(&self) -> String {
        format!("quic://{}", self.address)
    }

    /// The folder with the CA and every federate's certificate.
    pub(crate) fn certs(&self) -> &Path {
        &self.certs
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.certs);
    }
}
