//! `fedtwin`: the one user-facing command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use federate_sdk::SimDuration;
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    name = "fedtwin",
    version,
    about = "Federated digital twins: an HLA-style RTI in Rust"
)]
struct Cli {
    /// Log filter, e.g. `info` or `fedtwin_rti=debug` (RUST_LOG style).
    #[arg(long, global = true, default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a built-in example federation on an embedded RTI.
    Example {
        #[command(subcommand)]
        example: Example,
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    match cli.command {
        Command::Example {
            example: Example::PingPong { steps, step },
        } => ping_pong(steps, step),
    }
}

fn ping_pong(steps: u32, step: SimDuration) -> ExitCode {
    info!(steps, %step, "running ping-pong");
    match ping_pong::run(steps, step) {
        Ok(lines) => {
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
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: ping-pong failed: {error}");
            ExitCode::FAILURE
        }
    }
}
