//! `fedtwin`: the one user-facing command.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad usage; `run`
//! also exits with 130 when interrupted.

mod run;

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use federate_sdk::{Admin, Connector, EmbeddedRti, SimDuration, SimTime, TlsFiles};
use fedtwin_fmi::{AdapterConfig, AdapterError};
use fedtwin_rti::audit::AuditError;
use fedtwin_rti::config::RtiConfig;
use fedtwin_rti::tls::{self, RevocationReason, Role};
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    name = "fedtwin",
    version,
    about = "Federated digital twins: an HLA-style RTI in Rust"
)]
struct Cli {
    /// Log filter, e.g. `info` or `fedtwin_rti=debug` (RUST_LOG syntax).
    #[arg(long, global = true, default_value = "warn")]
    log: String,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the RTI daemon: federates connect over QUIC with mutual TLS.
    Rti {
        /// Address to listen on, e.g. 0.0.0.0:4433 (overrides the config file).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Configuration file (rti.toml): certificates, policy, audit log, limits.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Certificate folder (overrides the config file; default `certs`).
        #[arg(long)]
        certs: Option<PathBuf>,
    },
    /// Creates the federation CA, issues certificates and revokes them.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Checks audit logs.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Shows the federations of a running daemon (needs an identity allowed to administer).
    Status {
        /// The daemon, e.g. quic://127.0.0.1:4433.
        #[arg(long)]
        rti: String,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Runs FMUs as lock-step federates, one per adapter.toml (each on its own thread; those
    /// without `rti` share one embedded RTI).
    Fmu {
        /// Adapter configuration (adapter.toml); repeat for several FMUs in one process.
        #[arg(long, required = true)]
        config: Vec<PathBuf>,
        /// Write every FMU's published outputs over time (`signals.csv`, one column per
        /// `instance.variable`, and `summary.json`) into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Runs a whole federation described by a federation.toml: FMUs, built-in federates,
    /// external programs and CSV players, with a recorder writing CSV (and, with --plot, SVG
    /// charts). Exit codes: 0 ok, 1 a federate failed, 2 invalid file or arguments, 130
    /// interrupted.
    Run {
        /// The federation file.
        file: PathBuf,
        /// A daemon to run against (quic://host:port); embedded when absent.
        #[arg(long)]
        rti: Option<String>,
        /// With --rti: folder with ca.pem and a certificate per federate (and the recorder).
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
        /// Folder for signals.csv, interactions.csv, summary.json and the plots.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Also draw an SVG chart per recorded attribute.
        #[arg(long)]
        plot: bool,
    },
    /// Runs a built-in example federation.
    Example {
        #[command(subcommand)]
        example: Example,
    },
}

#[derive(Debug, clap::Args)]
struct IdentityArgs {
    /// Folder with ca.pem and this identity's certificate and key.
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
    /// Certificate name to present.
    #[arg(long)]
    identity: String,
    /// Name in the daemon's certificate.
    #[arg(long, default_value = "rti")]
    server_name: String,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Creates a federation CA in a folder.
    Init {
        /// Folder for ca.pem and ca.key.
        #[arg(long)]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issues a certificate signed by the folder's CA; its name is the holder's identity.
    Issue {
        /// Folder holding the CA.
        #[arg(long)]
        dir: PathBuf,
        /// Identity (federate name, or `rti` for the daemon).
        #[arg(long)]
        name: String,
        /// Role.
        #[arg(long, value_enum, default_value_t = RoleArg::Federate)]
        role: RoleArg,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// NAME has a certificate already: revoke it (reason `superseded`) and issue a new one.
        /// Without it, issuing a name again is refused, as the earlier certificate would stay
        /// valid with nothing left to revoke it by.
        #[arg(long)]
        replace: bool,
    },
    /// Revokes the certificate issued to NAME: adds it to the folder's crl.pem, which a running
    /// daemon reloads within seconds (its next handshake is refused, an open connection closed).
    Revoke {
        /// Folder holding the CA and NAME's certificate.
        #[arg(long)]
        dir: PathBuf,
        /// Identity whose certificate to revoke, as issued with `certs issue --name`.
        #[arg(
            required_unless_present = "name_option",
            conflicts_with = "name_option"
        )]
        name: Option<String>,
        /// The same as NAME, spelled as `certs issue` spells it.
        #[arg(long = "name", id = "name_option", value_name = "NAME")]
        name_option: Option<String>,
        /// Why, as recorded in the list.
        #[arg(long, default_value = "unspecified", value_parser = reason_parser())]
        reason: RevocationReason,
    },
}

/// The reasons `certs revoke` takes, spelled as the list records them (one spelling, in `tls`).
fn reason_parser() -> impl clap::builder::TypedValueParser<Value = RevocationReason> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(RevocationReason::ALL.map(RevocationReason::as_str))
        .try_map(|reason| reason.parse::<RevocationReason>())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Federate,
    Admin,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verifies a hash-chained audit log; fails naming the first bad record.
    Verify {
        /// The log file.
        file: PathBuf,
        /// A record's hash kept outside the log earlier (printed by this command, or logged by
        /// the daemon when it stops): the log must still hold that record. Without it a log
        /// rewritten as a whole, its hashes recomputed, verifies.
        #[arg(long, value_name = "HASH")]
        anchor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Example {
    /// Two federates exchanging timestamped values; prints each grant.
    PingPong {
        /// Number of lock-steps each federate takes.
        #[arg(long, default_value_t = 10)]
        steps: u32,
        /// Step size and lookahead, e.g. `100ms` or `0.5s`.
        #[arg(long, default_value = "100ms")]
        step: SimDuration,
        /// A daemon to run against (quic://host:port); embedded when absent.
        #[arg(long)]
        rti: Option<String>,
        /// Play one side only (one process per side); both when absent.
        #[arg(long, value_enum)]
        side: Option<Side>,
        /// Folder with ca.pem and the `ping`/`pong` certificates (with --rti).
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Side {
    Ping,
    Pong,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    let outcome = match cli.command {
        Command::Run {
            file,
            rti,
            certs,
            out,
            plot,
        } => {
            let args = run::RunArgs {
                file,
                rti,
                certs,
                out,
                plot,
            };
            return run::main(&args, watch_interrupt);
        }
        Command::Rti {
            listen,
            config,
            certs,
        } => run_rti(listen, config, certs),
        Command::Certs { command } => certs(command),
        Command::Audit {
            command: AuditCommand::Verify { file, anchor },
        } => audit_verify(&file, anchor.as_deref()),
        Command::Status { rti, identity } => status(&rti, &identity),
        Command::Fmu { config, out } => return fmu(&config, out.as_deref()),
        Command::Example {
            example:
                Example::PingPong {
                    steps,
                    step,
                    rti,
                    side,
                    certs,
                },
        } => ping_pong(steps, step, rti.as_deref(), side, certs),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn run_rti(
    listen: Option<SocketAddr>,
    config: Option<PathBuf>,
    certs: Option<PathBuf>,
) -> Result<(), String> {
    let mut file = match &config {
        Some(path) => RtiConfig::load(path).map_err(|e| e.to_string())?,
        None => RtiConfig::default(),
    };
    if let Some(certs) = certs {
        file.tls.dir = certs;
    }
    let daemon = file.daemon_config(listen)?;
    runtime()?.block_on(async {
        fedtwin_rti::daemon::serve(daemon, shutdown_signal(), |address| {
            // Scripts and tests read the bound address (port 0 picks one) from this line.
            println!("listening on {address}");
            let _ = std::io::stdout().flush();
        })
        .await
        .map_err(|e| e.to_string())
    })
}

/// Sets `interrupted` on SIGINT or SIGTERM, from a thread of its own (the run's threads block).
fn watch_interrupt(interrupted: Arc<AtomicBool>) {
    let watcher = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(runtime) = runtime() {
                runtime.block_on(shutdown_signal());
                interrupted.store(true, Ordering::SeqCst);
            }
        });
    if let Err(e) = watcher {
        tracing::warn!("cannot watch for Ctrl-C: {e}");
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    info!("shutdown requested");
}

fn certs(command: CertsCommand) -> Result<(), String> {
    match command {
        CertsCommand::Init { dir, days } => {
            tls::init_ca(&dir, days).map_err(|e| e.to_string())?;
            println!("created a federation CA in {}", dir.display());
        }
        CertsCommand::Issue {
            dir,
            name,
            role,
            days,
            replace,
        } => {
            let role = match role {
                RoleArg::Federate => Role::Federate,
                RoleArg::Admin => Role::Admin,
            };
            if tls::is_issued(&dir, &name).map_err(|e| e.to_string())? {
                if !replace {
                    return Err(format!(
                        "`{name}` has a certificate in {} already, valid until it is revoked: \
                         pass --replace to revoke it (superseded) and issue a new one",
                        dir.display()
                    ));
                }
                let revoked = tls::revoke(&dir, &name, RevocationReason::Superseded)
                    .map_err(|e| e.to_string())?;
                if !revoked.already {
                    println!(
                        "revoked the earlier certificate of `{name}` (serial {}, superseded)",
                        revoked.serial
                    );
                }
            }
            tls::issue_for_days(&dir, &name, role, days).map_err(|e| e.to_string())?;
            println!("issued `{name}` ({role:?}) in {}", dir.display());
        }
        CertsCommand::Revoke {
            dir,
            name,
            name_option,
            reason,
        } => {
            let name = name
                .or(name_option)
                .ok_or("name the certificate to revoke")?;
            let revoked = tls::revoke(&dir, &name, reason).map_err(|e| e.to_string())?;
            let list = dir.join(tls::CRL_FILE);
            if revoked.already {
                println!(
                    "`{name}` (serial {}) was revoked already; {} unchanged",
                    revoked.serial,
                    list.display()
                );
            } else {
                println!(
                    "revoked `{name}` (serial {}, {reason}): {} number {} now revokes {} \
                     certificate(s)",
                    revoked.serial,
                    list.display(),
                    revoked.crl_number,
                    revoked.revoked
                );
            }
        }
    }
    Ok(())
}

fn audit_verify(file: &Path, anchor: Option<&str>) -> Result<(), String> {
    let verify = || match anchor {
        Some(anchor) => {
            fedtwin_rti::audit::verify_anchored(file, anchor).map(|(v, s)| (v, Some(s)))
        }
        None => fedtwin_rti::audit::verify(file).map(|v| (v, None)),
    };
    let mut verified = verify();
    // A daemon may be writing the last record of a live log as we read it: a last line without
    // its newline that does not parse is read again for up to a second before it counts as
    // damage.
    let unterminated =
        || std::fs::read(file).is_ok_and(|bytes| bytes.last().is_some_and(|&b| b != b'\n'));
    for _ in 0..5 {
        if !(matches!(verified, Err(AuditError::Malformed { .. })) && unterminated()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        verified = verify();
    }
    let (verified, anchored) = verified.map_err(|e| e.to_string())?;
    let anchored = anchored.map_or_else(String::new, |sequence| {
        format!(", anchor found at record {sequence}")
    });
    println!(
        "ok: {} records, chain intact{anchored}, last hash {}",
        verified.records, verified.last_hash
    );
    Ok(())
}

fn connector(rti: &str, identity: &IdentityArgs) -> Result<Connector, String> {
    let mut connector = Connector::quic(rti, TlsFiles::in_dir(&identity.certs, &identity.identity))
        .map_err(|e| e.to_string())?;
    if let Connector::Quic(target) = &mut connector {
        target.server_name.clone_from(&identity.server_name);
    }
    Ok(connector)
}

fn status(rti: &str, identity: &IdentityArgs) -> Result<(), String> {
    let connector = connector(rti, identity)?;
    let (federations, stalls) = runtime()?.block_on(async {
        let mut admin = Admin::connect(connector).await.map_err(|e| e.to_string())?;
        admin.status().await.map_err(|e| e.to_string())
    })?;
    if federations.is_empty() {
        println!("no federations visible to `{}`", identity.identity);
    }
    for federation in &federations {
        let idle = federation
            .since_last_grant
            .map_or_else(|| "-".to_owned(), |d| format!("{:.1}s", d.as_secs_f64()));
        println!(
            "federation {}: {} federates, {} objects, last grant {idle} ago",
            federation.name,
            federation.federates.len(),
            federation.objects
        );
        println!(
            "  {:<16} {:>12} {:>10} {:>12} {:<22} {:<16} key exchange",
            "federate", "time", "lookahead", "GALT", "state", "identity"
        );
        for f in &federation.federates {
            let lookahead = f
                .lookahead
                .map_or_else(|| "-".to_owned(), |l| l.to_string());
            let galt = f.galt.map_or_else(|| "inf".to_owned(), |g| g.to_string());
            let state = match f.state {
                federate_sdk::FederateState::Granted => "granted".to_owned(),
                federate_sdk::FederateState::Advancing { kind, time } => format!("{kind}({time})"),
            };
            println!(
                "  {:<16} {:>12} {:>10} {:>12} {:<22} {:<16} {}",
                f.name,
                f.time.to_string(),
                lookahead,
                galt,
                state,
                f.identity.as_deref().unwrap_or("-"),
                f.key_exchange.as_deref().unwrap_or("-")
            );
        }
    }
    for stall in stalls.iter().filter(|s| !s.waits.is_empty()) {
        print!("{stall}");
    }
    Ok(())
}

/// How long `fedtwin fmu` waits, after Ctrl-C, for its FMUs to finish their step and resign
/// (an adapter waiting for a grant that a stuck partner holds back never would).
const FMU_STOP_GRACE: Duration = Duration::from_secs(10);

/// `fedtwin fmu`: exit code 0 when every FMU reached its stop time, 1 when one failed, 130 when
/// interrupted (SIGINT or SIGTERM).
fn fmu(paths: &[PathBuf], out: Option<&Path>) -> ExitCode {
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_interrupt_or_quit(interrupted.clone(), FMU_STOP_GRACE);
    let outcome = run_fmus(paths, out, &interrupted);
    let code = if interrupted.load(Ordering::SeqCst) {
        ExitCode::from(run::INTERRUPTED)
    } else if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if let Err(message) = outcome {
        eprintln!("error: {message}");
    }
    code
}

/// As [`watch_interrupt`], then, should the process still run after `grace` or a second
/// interrupt, ends it with exit code 130: the first asks politely, the second insists.
fn watch_interrupt_or_quit(interrupted: Arc<AtomicBool>, grace: Duration) {
    let watcher = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(runtime) = runtime() else {
                return;
            };
            runtime.block_on(async {
                shutdown_signal().await;
                interrupted.store(true, Ordering::SeqCst);
                eprintln!(
                    "interrupted: stopping the FMUs after their current step (again to quit at \
                     once)"
                );
                tokio::select! {
                    () = shutdown_signal() => {}
                    () = tokio::time::sleep(grace) => {
                        eprintln!(
                            "error: the FMUs did not stop within {grace:?} (a partner may hold \
                             their time back); quitting"
                        );
                    }
                }
            });
            std::process::exit(i32::from(run::INTERRUPTED));
        });
    if let Err(e) = watcher {
        tracing::warn!("cannot watch for Ctrl-C: {e}");
    }
}

fn run_fmus(paths: &[PathBuf], out: Option<&Path>, stop: &AtomicBool) -> Result<(), String> {
    // Check every file before starting anything, so that a bad file does not leave the other
    // adapters waiting at the start barrier.
    let mut configs = paths
        .iter()
        .map(|path| AdapterConfig::load(path).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, config) in configs.iter().enumerate() {
        if let Some(first) = configs[..i]
            .iter()
            .find(|c| c.instance == config.instance && c.federation == config.federation)
        {
            return Err(format!(
                "{} and {} both run as `{}` in federation `{}`: give each FMU its own instance \
                 name",
                first.file, config.file, config.instance, config.federation
            ));
        }
    }
    // Adapters run together in one federation know each other's declared dynamics, as under
    // `fedtwin run`.
    let federations: BTreeSet<String> = configs.iter().map(|c| c.federation.clone()).collect();
    for federation in federations {
        let mut named: Vec<(String, &mut AdapterConfig)> = configs
            .iter_mut()
            .filter(|c| c.federation == federation)
            .map(|c| (c.instance.clone(), c))
            .collect();
        fedtwin_fmi::config::couple(&mut named);
    }
    let mut embedded = None;
    let mut connectors = Vec::with_capacity(configs.len());
    for config in &configs {
        let connector = match config.daemon_connector().map_err(|e| e.to_string())? {
            Some(daemon) => daemon,
            None => {
                if embedded.is_none() {
                    embedded =
                        Some(EmbeddedRti::start().map_err(|e| format!("embedded RTI: {e}"))?);
                }
                embedded
                    .iter()
                    .map(Connector::from)
                    .next()
                    .ok_or("no embedded RTI")?
            }
        };
        connectors.push(connector);
    }
    info!(adapters = configs.len(), "running FMUs");
    let began = std::time::Instant::now();
    let recording = std::sync::Mutex::new(fedtwin_recorder::Recording::new());
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .zip(connectors)
            .map(|(config, connector)| {
                let recording = &recording;
                let record = move |t: SimTime, outputs: &[f64]| {
                    if out.is_none() {
                        return;
                    }
                    // A poisoned lock only means another adapter panicked; its rows stay.
                    let mut recording = recording
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for (p, value) in config.publish.iter().zip(outputs) {
                        let column = format!("{}.{}", config.instance, p.variable);
                        let attribute = p.path();
                        recording.signal(t, &column, &attribute, *value);
                    }
                };
                scope.spawn(move || fedtwin_fmi::run_until(config, connector, record, stop))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut failures = Vec::new();
    if let Some(dir) = out {
        let recording = recording
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match recording.write(dir, began.elapsed()) {
            Ok(written) => println!(
                "recorded {} rows of {} signals: {}",
                recording.rows(),
                recording.columns().count(),
                written.signals.display()
            ),
            // Reported with the adapters' own failures, not instead of them.
            Err((path, e)) => failures.push(format!("cannot write {}: {e}", path.display())),
        }
    }
    for (config, result) in configs.iter().zip(results) {
        match result {
            Ok(Ok(summary)) => println!("{}: {summary}", config.instance),
            Ok(Err(AdapterError::Interrupted { time, .. })) => {
                println!("{}: stopped at {time}, interrupted", config.instance);
            }
            Ok(Err(error)) => failures.push(error.to_string()),
            Err(_) => failures.push(format!(
                "the adapter thread of `{}` panicked",
                config.instance
            )),
        }
    }
    drop(embedded);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\nerror: "))
    }
}

fn ping_pong(
    steps: u32,
    step: SimDuration,
    rti: Option<&str>,
    side: Option<Side>,
    certs: PathBuf,
) -> Result<(), String> {
    info!(steps, %step, "running ping-pong");
    let lines = match (rti, side) {
        (None, None) => ping_pong::run(steps, step).map_err(|e| e.to_string())?,
        (None, Some(_)) => return Err("--side needs --rti: embedded runs play both sides".into()),
        (Some(rti), side) => {
            let connect = |name: &str| {
                connector(
                    rti,
                    &IdentityArgs {
                        certs: certs.clone(),
                        identity: name.to_owned(),
                        server_name: "rti".to_owned(),
                    },
                )
            };
            match side {
                Some(Side::Ping) => {
                    ping_pong::play(&connect("ping")?, ping_pong::Role::Ping, steps, step)
                }
                Some(Side::Pong) => {
                    ping_pong::play(&connect("pong")?, ping_pong::Role::Pong, steps, step)
                }
                None => {
                    return Err(
                        "against a daemon each side is its own process: pass --side ping or \
                         --side pong"
                            .into(),
                    );
                }
            }
            .map_err(|e| e.to_string())?
        }
    };
    for line in lines {
        let received: Vec<String> = line
            .received
            .iter()
            .map(|(count, at)| format!("received count {count} stamped {at}"))
            .collect();
        println!(
            "{:>4} granted {:>8}  {}",
            line.federate,
            line.time.to_string(),
            received.join(", ")
        );
    }
    Ok(())
}
