//! `fedtwin run`: a whole federation from one `federation.toml`.
//!
//! Every federate runs on a thread of its own (external programs as child processes), the
//! recorder with them; all of them wait for each other at the start barrier
//! ([`federate_sdk::hosted::start_barrier`]) and run to the stop time. The recorder's grants
//! drive the progress display. Exit codes: [`OK`], [`FAILED`], [`INVALID`], [`INTERRUPTED`].

/// Like `println!`, but a closed standard output (`fedtwin run ... | head`) is not a panic: the
/// run's results are in its files either way.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Like `eprintln!`, without the panic on a closed standard error.
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod daemon;
pub(crate) mod file;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use federate_sdk::hosted::Hosted;
use federate_sdk::{Connector, EmbeddedRti, SimTime, TlsFiles};
use fedtwin_core::LossPolicy;
use fedtwin_fmi::AdapterError;
use fedtwin_recorder::{PlayerConfig, RecorderConfig, Recording, player, plot, recorder};
use tracing::{debug, info, warn};

use self::daemon::PrivateDaemon;
use self::file::{FederationFile, Kind};

/// Every federate reached the stop time.
pub(crate) const OK: u8 = 0;
/// A federate failed (or the RTI could not start).
pub(crate) const FAILED: u8 = 1;
/// The federation file or the arguments are invalid; nothing was started.
pub(crate) const INVALID: u8 = 2;
/// Interrupted (SIGINT or SIGTERM); what was recorded is written.
pub(crate) const INTERRUPTED: u8 = 130;

/// How long an interrupted run waits for its FMUs to end their step and terminate.
const FMU_STOP_GRACE: Duration = Duration::from_secs(5);

/// The command line of `fedtwin run`.
#[derive(Debug)]
pub(crate) struct RunArgs {
    pub(crate) file: PathBuf,
    pub(crate) rti: Option<String>,
    pub(crate) certs: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) plot: bool,
}

/// Where the federates find the RTI.
enum Rti {
    /// In this process, no network.
    Embedded(EmbeddedRti),
    /// A daemon: the user's (`--rti`) or a private one on loopback for external programs.
    Daemon {
        address: String,
        certs: PathBuf,
        /// Kept alive for the run; stops the daemon and removes its certificates on drop.
        _private: Option<PrivateDaemon>,
    },
}

impl Rti {
    fn connector(&self, name: &str) -> Result<Connector, String> {
        match self {
            Self::Embedded(rti) => Ok(Connector::from(rti)),
            Self::Daemon { address, certs, .. } => {
                Connector::quic(address, TlsFiles::in_dir(certs, name)).map_err(|e| e.to_string())
            }
        }
    }
}

/// What a participant thread or child reports when it ends.
type Report = (usize, Result<String, String>);

/// Runs the federation of `args.file` and returns the process's exit code.
pub(crate) fn main(args: &RunArgs, interrupt: impl FnOnce(Arc<AtomicBool>)) -> ExitCode {
    let file = match FederationFile::load(&args.file) {
        Ok(file) => file,
        Err(error) => {
            complain!("error: {error}");
            return ExitCode::from(INVALID);
        }
    };
    if file.model.is_some() {
        for federate in &file.federates {
            if let Kind::Builtin { builtin, .. } = &federate.kind
                && !file::builtin_model_known(builtin)
            {
                // Such a federate creates the federation with the run's model, which then
                // lacks its own classes unless the file declares them.
                warn!(
                    federate = %federate.name,
                    "the runner does not know the object model of `{builtin}`: declare the \
                     classes it uses with [[object_class]] / [[interaction_class]] in {}",
                    args.file.display()
                );
            }
        }
    }
    let base = args
        .file
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .to_path_buf();
    let has_commands = file
        .federates
        .iter()
        .any(|f| matches!(f.kind, Kind::Command(_)));
    let rti = match start_rti(&file, args, has_commands) {
        Ok(rti) => rti,
        Err((code, message)) => {
            complain!("error: {message}");
            return ExitCode::from(code);
        }
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    interrupt(interrupted.clone());
    info!(federation = %file.name, federates = file.federates.len(), stop = %file.stop, "run starting");
    Run::new(file, rti, base).execute(args, &interrupted)
}

fn start_rti(
    file: &FederationFile,
    args: &RunArgs,
    has_commands: bool,
) -> Result<Rti, (u8, String)> {
    if let Some(address) = &args.rti {
        // Checked once here, so that a bad address is a usage error and not N failures.
        Connector::quic(address, TlsFiles::in_dir(&args.certs, &file.recorder))
            .map_err(|e| (INVALID, format!("--rti {address}: {e}")))?;
        let certs = std::path::absolute(&args.certs).unwrap_or_else(|_| args.certs.clone());
        return Ok(Rti::Daemon {
            address: address.clone(),
            certs,
            _private: None,
        });
    }
    if has_commands {
        // External programs cannot reach an RTI inside this process: run a daemon on loopback
        // for the whole run, with a throwaway CA and a certificate for every federate.
        let daemon = PrivateDaemon::start(&file.name, &file.expect(), file.on_federate_lost)
            .map_err(|e| {
                (
                    FAILED,
                    format!("private RTI for the command federates: {e}"),
                )
            })?;
        return Ok(Rti::Daemon {
            address: daemon.address(),
            certs: daemon.certs().to_path_buf(),
            _private: Some(daemon),
        });
    }
    // The file's loss policy reaches the engine, which also logs a stalled federation.
    let faults = fedtwin_rti::FaultSettings {
        on_federate_lost: file.on_federate_lost,
        ..fedtwin_rti::FaultSettings::default()
    };
    EmbeddedRti::start_with(faults)
        .map(Rti::Embedded)
        .map_err(|e| (FAILED, format!("cannot start the embedded RTI: {e}")))
}

/// One run in progress.
struct Run {
    file: FederationFile,
    rti: Rti,
    base: PathBuf,
    recording: Arc<Mutex<Recording>>,
    /// The recorder's time in ticks, for the progress display.
    progress: Arc<AtomicI64>,
    /// Whether the recorder passed the start barrier: until then a failed participant holds
    /// every other at the barrier, whatever the loss policy.
    started: Arc<AtomicBool>,
    /// Tells the child-process watchers to kill their child.
    stop_children: Arc<AtomicBool>,
}

/// How the wait for the participants ended.
enum Ending {
    Finished,
    Halted,
    Interrupted,
}

impl Run {
    fn new(file: FederationFile, rti: Rti, base: PathBuf) -> Self {
        Self {
            file,
            rti,
            base,
            recording: Arc::new(Mutex::new(Recording::new())),
            progress: Arc::new(AtomicI64::new(0)),
            started: Arc::new(AtomicBool::new(false)),
            stop_children: Arc::new(AtomicBool::new(false)),
        }
    }

    fn execute(self, args: &RunArgs, interrupted: &AtomicBool) -> ExitCode {
        let started = Instant::now();
        let (reports, received) = mpsc::channel::<Report>();
        let count = self.file.federates.len() + 1;
        let mut results: Vec<Option<Result<String, String>>> = vec![None; count];

        // A participant that cannot even be started is reported like a failure, so that the
        // others, already waiting at the barrier, are stopped the same way.
        let mut watchers = Vec::new();
        for (index, result) in results.iter_mut().enumerate().take(count - 1) {
            match self.launch(index, reports.clone()) {
                Ok(Some(watcher)) => watchers.push(watcher),
                Ok(None) => {}
                Err(message) => *result = Some(Err(message)),
            }
        }
        if let Err(message) = self.launch_recorder(count - 1, reports.clone()) {
            results[count - 1] = Some(Err(message));
        }
        drop(reports);

        let ending = self.wait(&received, &mut results, interrupted);
        self.stop_children.store(true, Ordering::SeqCst);
        if matches!(ending, Ending::Interrupted) {
            self.let_fmus_finish(&received, &mut results);
        }
        // Each watcher kills its child within one poll; waiting for them leaves no program
        // running after we exit. In-process federates still blocked end with the process.
        for watcher in watchers {
            let _ = watcher.join();
        }
        let wall = started.elapsed();

        let mut code = match ending {
            Ending::Interrupted => {
                complain!("interrupted: stopping the federation and keeping what was recorded");
                INTERRUPTED
            }
            Ending::Halted => FAILED,
            Ending::Finished if results.iter().any(|r| matches!(r, Some(Err(_)))) => FAILED,
            Ending::Finished => OK,
        };
        if let Err(message) = self.write(args, wall) {
            complain!("error: {message}");
            if code == OK {
                code = FAILED;
            }
        }
        self.report(&results);
        ExitCode::from(code)
    }

    /// After an interrupt, waits a moment for the FMUs to end their step, call fmi2Terminate
    /// (an FMU may finish its own files then) and resign; not for ever: one waiting for a grant
    /// that a stopped partner holds back would never report.
    fn let_fmus_finish(
        &self,
        received: &mpsc::Receiver<Report>,
        results: &mut [Option<Result<String, String>>],
    ) {
        let deadline = Instant::now() + FMU_STOP_GRACE;
        let fmus: Vec<usize> = (self.file.federates.iter().enumerate())
            .filter(|(_, f)| matches!(f.kind, Kind::Fmu(_)))
            .map(|(index, _)| index)
            .collect();
        while fmus.iter().any(|&index| results[index].is_none()) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            match received.recv_timeout(left) {
                Ok((index, result)) => results[index] = Some(result),
                Err(_) => return,
            }
        }
    }

    /// Waits until every participant reported, the run halts on a failure, or an interrupt.
    fn wait(
        &self,
        received: &mpsc::Receiver<Report>,
        results: &mut [Option<Result<String, String>>],
        interrupted: &AtomicBool,
    ) -> Ending {
        let halt = self.file.on_federate_lost == LossPolicy::Halt;
        let mut progress = Progress::new(self.file.stop);
        loop {
            if interrupted.load(Ordering::SeqCst) {
                progress.finish();
                return Ending::Interrupted;
            }
            let failed = results.iter().position(|r| matches!(r, Some(Err(_))));
            let early = failed.is_some() && !self.started.load(Ordering::SeqCst);
            if let Some(index) = failed.filter(|_| halt || early) {
                if early {
                    // Nobody can pass the start barrier without it: waiting would only end in
                    // the barrier's timeout.
                    complain!(
                        "`{}` failed before the federation started; stopping the others, \
                         which cannot start without it",
                        self.name(index)
                    );
                }
                // Reports already in also go into the summary (federates often fail together).
                while let Ok((index, result)) = received.try_recv() {
                    results[index] = Some(result);
                }
                progress.finish();
                return Ending::Halted;
            }
            if results.iter().all(Option::is_some) {
                progress.finish();
                return Ending::Finished;
            }
            match received.recv_timeout(Duration::from_millis(100)) {
                Ok((index, result)) => {
                    if let Err(message) = &result {
                        debug!(federate = %self.name(index), "failed: {message}");
                    }
                    results[index] = Some(result);
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Every sender is gone: whoever has not reported never will.
                Err(RecvTimeoutError::Disconnected) => {
                    for result in results.iter_mut().filter(|r| r.is_none()) {
                        *result = Some(Err("ended without a report".to_owned()));
                    }
                }
            }
            progress.show(SimTime::from_ticks(self.progress.load(Ordering::Relaxed)));
        }
    }

    fn name(&self, index: usize) -> &str {
        self.file
            .federates
            .get(index)
            .map_or(self.file.recorder.as_str(), |f| f.name.as_str())
    }

    /// Starts federate `index` on its thread, or as a child process; then returns the thread
    /// watching the child.
    fn launch(
        &self,
        index: usize,
        reports: Sender<Report>,
    ) -> Result<Option<JoinHandle<()>>, String> {
        let spec = &self.file.federates[index];
        let name = spec.name.clone();
        let connector = self.rti.connector(&name)?;
        let expect = self.file.expect();
        let thread = thread::Builder::new().name(format!("federate {name}"));
        let spawned = match &spec.kind {
            Kind::Builtin { run, params, .. } => {
                let hosted = Hosted {
                    federation: self.file.name.clone(),
                    name,
                    connector,
                    stop: self.file.stop,
                    expect,
                    params: params.clone(),
                    model: self.file.model.clone(),
                };
                let run = *run;
                thread.spawn(move || {
                    reported(index, &reports, || run(hosted).map_err(|e| e.to_string()));
                })
            }
            Kind::Fmu(config) => {
                let mut config = (**config).clone();
                config.federation.clone_from(&self.file.name);
                config.instance = name;
                config.expect = expect;
                config.start = self.file.start;
                config.stop = self.file.stop;
                config.experiment_given = (true, true);
                config.rti = None;
                if let Some(model) = &self.file.model {
                    config.object_classes = model
                        .object_classes
                        .iter()
                        .map(|c| (c.name.clone(), c.attributes.clone()))
                        .collect();
                    config.interaction_classes = model
                        .interaction_classes
                        .iter()
                        .map(|c| (c.name.clone(), c.parameters.clone()))
                        .collect();
                }
                let stop = self.stop_children.clone();
                thread.spawn(move || {
                    reported(index, &reports, || {
                        match fedtwin_fmi::run_until(&config, connector, |_, _| {}, &stop) {
                            Ok(summary) => Ok(summary.to_string()),
                            // Asked to stop by the run: terminated and resigned, as it should.
                            Err(stopped @ AdapterError::Interrupted { .. }) => {
                                Ok(stopped.to_string())
                            }
                            Err(error) => Err(error.to_string()),
                        }
                    });
                })
            }
            Kind::Player {
                table,
                class,
                lookahead,
            } => {
                let config = PlayerConfig {
                    federation: self.file.name.clone(),
                    name,
                    connector,
                    class: class.clone(),
                    start: self.file.start,
                    stop: self.file.stop,
                    lookahead: *lookahead,
                    expect,
                    model: self.file.model.clone(),
                };
                let table = table.clone();
                thread.spawn(move || {
                    reported(index, &reports, || {
                        player::run(&config, &table).map_err(|e| e.to_string())
                    });
                })
            }
            Kind::Command(command) => {
                let child = self.spawn_child(&name, command, &expect)?;
                let stop = self.stop_children.clone();
                return thread
                    .spawn(move || reported(index, &reports, || watch(child, &stop)))
                    .map(Some)
                    .map_err(|e| format!("cannot start a thread: {e}"));
            }
        };
        spawned
            .map(|_| None)
            .map_err(|e| format!("cannot start a thread: {e}"))
    }

    fn launch_recorder(&self, index: usize, reports: Sender<Report>) -> Result<(), String> {
        let config = RecorderConfig {
            federation: self.file.name.clone(),
            name: self.file.recorder.clone(),
            connector: self.rti.connector(&self.file.recorder)?,
            stop: self.file.stop,
            expect: self.file.expect(),
            model: self.file.model.clone(),
            spec: self.file.record.clone(),
        };
        let recording = self.recording.clone();
        let progress = self.progress.clone();
        let started = self.started.clone();
        thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                reported(index, &reports, || {
                    // The first grant comes right after the start barrier.
                    recorder::run(&config, &recording, |time| {
                        started.store(true, Ordering::SeqCst);
                        progress.store(time.ticks(), Ordering::Relaxed);
                    })
                    .map_err(|e| e.to_string())
                });
            })
            .map(drop)
            .map_err(|e| format!("cannot start a thread: {e}"))
    }

    /// Starts an external program in the federation file's folder, telling it where the RTI
    /// is through its environment.
    fn spawn_child(
        &self,
        name: &str,
        command: &[String],
        expect: &[String],
    ) -> Result<Child, String> {
        let (program, arguments) = command.split_first().ok_or("empty command")?;
        let mut child = Command::new(program);
        child
            .args(arguments)
            .current_dir(if self.base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &self.base
            })
            .env("FEDTWIN_FEDERATION", &self.file.name)
            .env("FEDTWIN_NAME", name)
            .env("FEDTWIN_STOP", self.file.stop.to_string())
            .env("FEDTWIN_EXPECT", expect.join(","));
        if let Rti::Daemon { address, certs, .. } = &self.rti {
            child
                .env("FEDTWIN_RTI", address)
                .env("FEDTWIN_CERTS", certs);
        }
        child
            .spawn()
            .map_err(|e| format!("cannot start `{program}`: {e}"))
    }

    /// Writes the recording (and the plots) into `--out`.
    fn write(&self, args: &RunArgs, wall: Duration) -> Result<(), String> {
        let recording = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let written = recording
            .write(&args.out, wall)
            .map_err(|(path, e)| format!("cannot write {}: {e}", path.display()))?;
        say!(
            "recorded {} rows of {} signals: {}",
            recording.rows(),
            recording.columns().count(),
            written.signals.display()
        );
        if args.plot {
            let charts = plot::plot(&recording, &args.out).map_err(|e| e.to_string())?;
            for chart in charts {
                say!("plot: {}", chart.display());
            }
        }
        Ok(())
    }

    /// One line per participant: its summary, its failure, or that it was stopped.
    fn report(&self, results: &[Option<Result<String, String>>]) {
        for (index, result) in results.iter().enumerate() {
            let name = self.name(index);
            match result {
                Some(Ok(summary)) => say!("{name}: {summary}"),
                Some(Err(message)) => complain!("error: federate `{name}`: {message}"),
                None => say!("{name}: stopped before the end"),
            }
        }
    }
}

/// Runs a participant and reports how it ended, a panic included: a participant that never
/// reported would keep the run waiting for it.
fn reported(index: usize, reports: &Sender<Report>, run: impl FnOnce() -> Result<String, String>) {
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_owned());
            Err(format!("panicked: {message}"))
        });
    let _ = reports.send((index, result));
}

/// Waits for a child process, killing it when the run stops first.
fn watch(mut child: Child, stop: &AtomicBool) -> Result<String, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok("exited successfully".to_owned()),
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
        if stop.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("killed: the run stopped".to_owned());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Progress on simulated time: a bar on a terminal, a log line every few seconds otherwise.
enum Progress {
    Bar(indicatif::ProgressBar, SimTime),
    Log { stop: SimTime, last: Instant },
}

impl Progress {
    /// Bar length: fine enough for a smooth bar, coarse enough to stay in range for any stop.
    const STEPS: u64 = 10_000;

    fn new(stop: SimTime) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(Self::STEPS);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            Self::Bar(bar, stop)
        } else {
            Self::Log {
                stop,
                last: Instant::now(),
            }
        }
    }

    fn show(&mut self, time: SimTime) {
        match self {
            Self::Bar(bar, stop) => {
                let fraction = time.ticks() as f64 / stop.ticks().max(1) as f64;
                bar.set_position((fraction.clamp(0.0, 1.0) * Self::STEPS as f64) as u64);
                bar.set_message(format!("{time} / {stop}"));
            }
            Self::Log { stop, last } => {
                if last.elapsed() >= Duration::from_secs(2) {
                    *last = Instant::now();
                    info!(time = %time, stop = %stop, "simulated time");
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Self::Bar(bar, _) = self {
            bar.finish_and_clear();
        }
    }
}
