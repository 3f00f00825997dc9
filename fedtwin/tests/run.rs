//! `fedtwin run` end to end: federation files run by the built binary, on an embedded RTI (or
//! the private daemon its command federates need, or a daemon of the test's), with real test
//! FMUs.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fedtwin_test_fmus::{TestModel, oscillator_exact};

/// A fresh folder with the packed FMUs and the oscillator's adapter files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fedtwin-run-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for model in [
        TestModel::OscillatorMass,
        TestModel::OscillatorSpring,
        TestModel::Faulty,
    ] {
        fedtwin_test_fmus::pack(model, &dir).unwrap();
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/oscillator");
    for file in [
        "mass.toml",
        "spring.toml",
        "federation.toml",
        "unstable.toml",
    ] {
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    dir
}

fn run(dir: &Path, file: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedtwin"))
        .arg("run")
        .arg(dir.join(file))
        .arg("--out")
        .arg(dir.join("out"))
        .args(extra)
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn succeeded(output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    stdout
}

/// A CSV file as its header and its rows of cells.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    (header, rows)
}

#[test]
fn ping_pong_and_the_oscillator_fmus_run_together_and_are_recorded() {
    let dir = scratch("mixed");
    std::fs::write(
        dir.join("mixed.toml"),
        r#"
[federation]
name = "mixed"
stop = "2s"

[[federate]]
name = "mass"
fmu = "mass.toml"

[[federate]]
name = "spring"
fmu = "spring.toml"

[[federate]]
name = "ping"
builtin = "ping-pong/ping"
[federate.params]
step = "250ms"

[[federate]]
name = "pong"
builtin = "ping-pong/pong"
[federate.params]
step = "250ms"

[record]
attributes = ["Mass.State.x", "Spring.State.force"]
interactions = ["Ping", "Pong"]
"#,
    )
    .unwrap();
    let stdout = succeeded(&run(&dir, "mixed.toml", &["--plot"]));
    assert!(
        stdout.contains("mass: 200 steps of 0.01s, reached 2s"),
        "{stdout}"
    );
    assert!(stdout.contains("ping: 8 steps to 2s"), "{stdout}");

    let (header, rows) = csv(&dir.join("out/signals.csv"));
    assert_eq!(header, ["time_s", "mass.x", "spring.force"]);
    assert_eq!(rows.len(), 201, "0 s and every 10 ms step to 2 s");
    assert_eq!(rows[0], ["0", "1", "-100"]);
    assert_eq!(rows[200][0], "2");
    // Jacobi coupling holds each input over a step, a first-order error: at 10 ms the position
    // stays within 0.1 of the closed form (measured: about 0.05).
    for row in &rows {
        let t: f64 = row[0].parse().unwrap();
        let x: f64 = row[1].parse().unwrap();
        let (exact, _) = oscillator_exact(t, 1.0, 100.0, 20.0, 1.0, 0.0);
        assert!((x - exact).abs() < 0.1, "x({t}) = {x}, exact {exact}");
    }

    // Ping serves 0 stamped 0.25 s, pong answers 1 stamped 0.5 s, and so on.
    let (header, rows) = csv(&dir.join("out/interactions.csv"));
    assert_eq!(header, ["time_s", "class", "sender", "count"]);
    let exchanged: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[3].clone()))
        .collect();
    let expected: Vec<(String, String, String)> = (0..8)
        .map(|i| {
            let class = if i % 2 == 0 { "Ping" } else { "Pong" };
            (
                format!("{}", f64::from(i + 1) * 0.25),
                class.to_owned(),
                i.to_string(),
            )
        })
        .collect();
    assert_eq!(exchanged, expected);

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["columns"][0]["column"], "mass.x");
    assert_eq!(summary["columns"][0]["max"], 1.0);
    let svg = std::fs::read_to_string(dir.join("out/Mass.State.x.svg")).unwrap();
    assert!(svg.contains("mass.x") && svg.contains("simulation time [s]"));
}

#[test]
fn the_recorder_reproduces_what_the_player_replays() {
    let dir = scratch("player");
    let played = "time_s,load_kw,price\n0,1.5,0.25\n0.5,2,\n0.75,-3.125,0.3\n2,1e-7,0.35\n";
    std::fs::write(dir.join("load.csv"), played).unwrap();
    std::fs::write(
        dir.join("federation.toml"),
        r#"
[federation]
name = "replay"
stop = "3s"

[[federate]]
name = "house"
player = "load.csv"
class = "Household.Load"

[record]
attributes = ["Household.Load.load_kw", "Household.Load.price"]
"#,
    )
    .unwrap();
    succeeded(&run(&dir, "federation.toml", &[]));
    let recorded = std::fs::read_to_string(dir.join("out/signals.csv")).unwrap();
    assert_eq!(
        recorded,
        played.replace("load_kw,price", "house.load_kw,house.price")
    );
}

#[test]
fn the_oscillator_examples_run_stable_and_refuse_the_unstable_step() {
    let dir = scratch("examples");
    succeeded(&run(&dir, "federation.toml", &[]));
    let (header, rows) = csv(&dir.join("out/signals.csv"));
    assert_eq!(header, ["time_s", "mass.v", "mass.x", "spring.force"]);
    assert_eq!(rows.len(), 501);
    let last_x: f64 = rows[500][2].parse().unwrap();
    assert!(last_x.abs() < 1e-6, "settled: x(5 s) = {last_x}");

    let output = run(&dir, "unstable.toml", &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // Both adapters refuse; the run halts at the first refusal, whichever it is.
    assert!(stderr.contains("error: federate `"), "{stderr}");
    assert!(stderr.contains("unstable step"), "{stderr}");
    assert!(stderr.contains("0.18s"), "{stderr}");
}

/// The file's `[step]` sets every FMU adapter's step controller over its adapter file.
#[test]
fn the_federation_file_sets_the_step_of_every_fmu() {
    let dir = scratch("step");
    let stable = std::fs::read_to_string(dir.join("federation.toml")).unwrap();
    std::fs::write(
        dir.join("coarse.toml"),
        stable.replace("[federation]", "[step]\nsize = \"20ms\"\n\n[federation]"),
    )
    .unwrap();
    let stdout = succeeded(&run(&dir, "coarse.toml", &[]));
    assert!(stdout.contains("mass: 250 steps of 0.02s"), "{stdout}");
    assert!(stdout.contains("spring: 250 steps of 0.02s"), "{stdout}");

    // A smaller safety factor makes the same step unstable: both adapters refuse it.
    std::fs::write(
        dir.join("cautious.toml"),
        stable.replace(
            "[federation]",
            "[step]\nsize = \"20ms\"\nalpha = 0.05\n\n[federation]",
        ),
    )
    .unwrap();
    let output = run(&dir, "cautious.toml", &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unstable step"), "{stderr}");
}

#[test]
fn a_failing_fmu_names_its_federate_and_exits_with_1() {
    let dir = scratch("faulty");
    std::fs::write(
        dir.join("faulty.toml"),
        r#"fmu = "faulty.fmu"
instance = "x"
federation = "x"
[step]
size = "100ms"
[[publish]]
variable = "x"
attribute = "Decay.State.x"
"#,
    )
    .unwrap();
    for policy in ["halt", "resign"] {
        std::fs::write(
            dir.join("federation.toml"),
            format!(
                r#"
[federation]
name = "faults"
stop = "1s"
on_federate_lost = "{policy}"

[[federate]]
name = "decay"
fmu = "faulty.toml"

[record]
attributes = ["Decay.State.x"]
"#
            ),
        )
        .unwrap();
        let output = run(&dir, "federation.toml", &[]);
        let (stdout, stderr) = text(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{policy}: {stdout}\n{stderr}"
        );
        assert!(stderr.contains("error: federate `decay`: "), "{stderr}");
        assert!(stderr.contains("simulated solver failure"), "{stderr}");
    }
    // Under `resign` the adapter resigns and the recorder goes on to the stop time, so it has
    // every output up to the failing step (from 0.3 s, the model's `fail_at`).
    let (_, rows) = csv(&dir.join("out/signals.csv"));
    let times: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(times, ["0", "0.1", "0.2", "0.3"]);
    assert_eq!(rows[0], ["0", "1"]);
}

#[test]
fn invalid_files_name_the_key_and_the_line() {
    let dir = scratch("invalid");
    let cases: BTreeMap<&str, (&str, &str)> = BTreeMap::from([
        (
            "unknown key",
            (
                "[federation]\nname = \"f\"\nstop = \"1s\"\n[[federate]]\nname = \"a\"\nbuiltin = \"ping-pong/ping\"\ncolour = \"red\"\n",
                "line 7",
            ),
        ),
        (
            "unknown builtin",
            (
                "[federation]\nname = \"f\"\nstop = \"1s\"\n[[federate]]\nname = \"a\"\nbuiltin = \"ping-pong/pang\"\n",
                "line 6: unknown builtin `ping-pong/pang`; known: ping-pong/ping, ping-pong/pong",
            ),
        ),
        (
            "duplicate name",
            (
                "[federation]\nname = \"f\"\nstop = \"1s\"\n[[federate]]\nname = \"a\"\nbuiltin = \"ping-pong/ping\"\n[[federate]]\nname = \"a\"\nbuiltin = \"ping-pong/pong\"\n",
                "line 8: federate `a` is defined twice (first on line 5)",
            ),
        ),
        (
            "alpha out of range",
            (
                "[federation]\nname = \"f\"\nstop = \"1s\"\n[step]\nalpha = 1.5\n[[federate]]\nname = \"a\"\nbuiltin = \"ping-pong/ping\"\n",
                "line 5: alpha must be in (0, 1]",
            ),
        ),
        (
            "bad stop",
            (
                "[federation]\nname = \"f\"\nstop = \"soon\"\n[[federate]]\nname = \"a\"\nbuiltin = \"ping-pong/ping\"\n",
                "line 3: stop = \"soon\" is not a time",
            ),
        ),
        (
            "missing FMU",
            (
                "[federation]\nname = \"f\"\nstop = \"1s\"\n[[federate]]\nname = \"a\"\nfmu = \"nowhere.toml\"\n",
                "nowhere.toml not found",
            ),
        ),
        (
            "two kinds",
            (
                "[federation]\nname = \"f\"\nstop = \"1s\"\n[[federate]]\nname = \"a\"\nfmu = \"mass.toml\"\nplayer = \"x.csv\"\n",
                "line 5: federate `a` needs exactly one of builtin, fmu, command or player (has fmu, player)",
            ),
        ),
    ]);
    for (case, (content, expected)) in cases {
        std::fs::write(dir.join("bad.toml"), content).unwrap();
        let output = run(&dir, "bad.toml", &[]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
    }

    // An adapter file naming an FMU that is not there: the FMU's path is in the message.
    let mass = std::fs::read_to_string(dir.join("mass.toml")).unwrap();
    std::fs::write(
        dir.join("moved.toml"),
        mass.replace("oscillator_mass.fmu", "moved/mass.fmu"),
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "[federation]\nname = \"f\"\nstop = \"1s\"\n[[federate]]\nname = \"mass\"\nfmu = \"moved.toml\"\n",
    )
    .unwrap();
    let output = run(&dir, "bad.toml", &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 6: federate `mass`: FMU ") && stderr.contains("moved/mass.fmu"),
        "{stderr}"
    );
}

/// An external program joins through the private loopback daemon that `fedtwin run` starts for
/// it: here `fedtwin fmu` itself, with an adapter file written from the environment it gets.
#[test]
fn a_command_federate_reaches_the_private_daemon_through_its_environment() {
    let dir = scratch("command");
    let script = r#"
expect=$(printf '%s' "$FEDTWIN_EXPECT" | sed 's/[^,][^,]*/"&"/g')
sed -e "s|^expect = .*|expect = [$expect]|" \
    -e "s|^stop = .*|stop = \"$FEDTWIN_STOP\"|" \
    -e "s|^instance = .*|instance = \"$FEDTWIN_NAME\"|" \
    -e "s|^federation = .*|federation = \"$FEDTWIN_FEDERATION\"\nrti = \"$FEDTWIN_RTI\"\ncerts = \"$FEDTWIN_CERTS\"|" \
    spring.toml > child.toml
exec "$1" fmu --config child.toml
"#;
    let federation = format!(
        r#"
[federation]
name = "oscillator"
stop = "1s"

[[federate]]
name = "mass"
fmu = "mass.toml"

[[federate]]
name = "spring"
command = ["sh", "-c", {script:?}, "sh", {bin:?}]

[record]
attributes = ["Mass.State.x", "Spring.State.force"]
"#,
        script = script,
        bin = env!("CARGO_BIN_EXE_fedtwin"),
    );
    std::fs::write(dir.join("federation.toml"), federation).unwrap();
    let stdout = succeeded(&run(&dir, "federation.toml", &[]));
    assert!(stdout.contains("spring: exited successfully"), "{stdout}");
    let (header, rows) = csv(&dir.join("out/signals.csv"));
    assert_eq!(header, ["time_s", "mass.x", "spring.force"]);
    assert_eq!(rows.len(), 101);
    assert_eq!(rows[0], ["0", "1", "-100"]);
}

/// The same federation file against a running daemon: every federate, the recorder included,
/// connects over QUIC with its own certificate.
#[test]
fn the_same_file_runs_against_a_daemon() {
    let dir = scratch("daemon");
    let certs = dir.join("certs");
    let certs_arg = certs.to_str().unwrap();
    common::ok(&common::fedtwin(&["certs", "init", "--dir", certs_arg]));
    for name in ["rti", "mass", "spring", "recorder"] {
        common::ok(&common::fedtwin(&[
            "certs", "issue", "--dir", certs_arg, "--name", name,
        ]));
    }
    std::fs::write(dir.join("rti.toml"), "[tls]\ndir = \"certs\"\n").unwrap();
    let daemon = common::Daemon::start(&dir.join("rti.toml"));
    let output = run(
        &dir,
        "federation.toml",
        &["--rti", &daemon.address, "--certs", certs_arg],
    );
    let stdout = succeeded(&output);
    assert!(
        stdout.contains("mass: 500 steps of 0.01s, reached 5s"),
        "{stdout}"
    );
    let (header, rows) = csv(&dir.join("out/signals.csv"));
    assert_eq!(header, ["time_s", "mass.v", "mass.x", "spring.force"]);
    assert_eq!(rows.len(), 501);
    daemon.stop();
}

/// Ctrl-C (SIGINT) stops a run that would go on for hours: what was recorded is written and the
/// exit code is 130.
#[test]
fn an_interrupted_run_keeps_what_was_recorded_and_exits_with_130() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = scratch("interrupt");
    let endless = std::fs::read_to_string(dir.join("federation.toml"))
        .unwrap()
        .replace("stop = \"5s\"", "stop = \"1000000s\"");
    std::fs::write(dir.join("endless.toml"), endless).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedtwin"))
        .args(["--log", "info", "run"])
        .arg(dir.join("endless.toml"))
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the runner reports simulated time past zero (its progress line, every two
    // seconds without a terminal): the recorder then has rows.
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        if line.contains("simulated time") && !line.contains("time=0s") {
            break;
        }
    }
    // Keep reading, as a terminal would, so that the run's last messages have somewhere to go.
    let rest = std::thread::spawn(move || stderr.map_while(Result::ok).collect::<Vec<_>>());
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let messages = rest.join().unwrap().join("\n");
    assert_eq!(output.status.code(), Some(130), "{messages}");
    assert!(
        messages.contains("interrupted: stopping the federation"),
        "{messages}"
    );
    let (header, rows) = csv(&dir.join("out/signals.csv"));
    assert_eq!(header, ["time_s", "mass.v", "mass.x", "spring.force"]);
    assert_eq!(rows[0], ["0", "0", "1", "-100"]);
    // The FMUs ended their step, were terminated and resigned, rather than dying with the
    // process.
    let stdout = String::from_utf8_lossy(&output.stdout);
    for fmu in ["mass", "spring"] {
        assert!(
            stdout.contains(&format!("{fmu}: FMU `{fmu}` stopped on request at")),
            "{stdout}\n{messages}"
        );
    }
}

#[test]
fn a_federate_that_fails_before_the_start_stops_the_run_under_resign_too() {
    // `pong` cannot read its step, so it never joins; `ping` and the recorder wait for it at
    // the start barrier. Resigning it would not help them: the run ends, naming it.
    let dir = scratch("early");
    std::fs::write(
        dir.join("federation.toml"),
        r#"
[federation]
name = "early"
stop = "1s"
on_federate_lost = "resign"

[[federate]]
name = "ping"
builtin = "ping-pong/ping"

[[federate]]
name = "pong"
builtin = "ping-pong/pong"
[federate.params]
step = "a banana"

[record]
interactions = ["Ping"]
"#,
    )
    .unwrap();
    let output = run(&dir, "federation.toml", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("`pong` failed before the federation started"),
        "{stderr}"
    );
    assert!(stderr.contains("error: federate `pong`: "), "{stderr}");
    assert!(!stderr.contains("did not join within"), "{stderr}");
}

/// DESIGN.md's rule takes the fastest declared dynamics among coupled federates: when the
/// spring declares |lambda| = 100 1/s and the mass 10 1/s, the controller gives both the
/// step of the faster, 0.9 * 2 / 100 = 18 ms, and not the mass 180 ms of its own.
#[test]
fn the_controller_chooses_one_stable_step_for_the_fastest_coupled_fmu() {
    let dir = scratch("coupled");
    common::leave_the_step_to_the_controller_with_a_fast_spring(&dir);
    let stdout = succeeded(&run(&dir, "federation.toml", &[]));
    assert!(stdout.contains("mass: 278 steps of 0.018s"), "{stdout}");
    assert!(stdout.contains("spring: 278 steps of 0.018s"), "{stdout}");

    // A step fixed above it is refused, naming the fast spring for the mass too.
    let stable = std::fs::read_to_string(dir.join("federation.toml")).unwrap();
    std::fs::write(
        dir.join("fixed.toml"),
        stable.replace("[federation]", "[step]\nsize = \"50ms\"\n\n[federation]"),
    )
    .unwrap();
    let output = run(&dir, "fixed.toml", &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unstable step"), "{stderr}");
    assert!(stderr.contains("`spring`"), "{stderr}");
}
