//! `fedtwin fmu`: the split oscillator example end to end, through the command.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fedtwin_test_fmus::TestModel;

/// The example's configuration files next to freshly packed FMUs, in a folder of the test's.
fn example_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fedtwin-fmu-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for model in [TestModel::OscillatorMass, TestModel::OscillatorSpring] {
        fedtwin_test_fmus::pack(model, &dir).unwrap();
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/oscillator");
    for file in ["mass.toml", "spring.toml"] {
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    dir
}

fn fedtwin(args: &[&Path]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fedtwin"));
    command.arg("fmu");
    for config in args {
        command.arg("--config").arg(config);
    }
    command.output().unwrap()
}

#[test]
fn the_oscillator_example_runs_both_fmus_and_refuses_an_unstable_step() {
    let dir = example_dir("example");
    let out = dir.join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_fedtwin"))
        .arg("fmu")
        .args(["--config".as_ref(), dir.join("mass.toml").as_os_str()])
        .args(["--config".as_ref(), dir.join("spring.toml").as_os_str()])
        .args(["--out".as_ref(), out.as_os_str()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("mass: 500 steps of 0.01s, reached 5s; x = "),
        "{stdout}"
    );
    // --out: every published output over time, one row per step.
    let csv = std::fs::read_to_string(out.join("signals.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time_s,mass.v,mass.x,spring.force"),
        "{csv}"
    );
    assert_eq!(lines.count(), 501);
    assert!(
        stdout.contains("recorded 501 rows of 3 signals"),
        "{stdout}"
    );
    assert!(
        stdout.contains("spring: 500 steps of 0.01s, reached 5s; force = "),
        "{stdout}"
    );

    let text = std::fs::read_to_string(dir.join("mass.toml")).unwrap();
    let unstable = dir.join("unstable.toml");
    std::fs::write(
        &unstable,
        text.replace("size = \"10ms\"", "size = \"250ms\""),
    )
    .unwrap();
    let output = fedtwin(&[&unstable]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unstable step: step 0.25s"), "{stderr}");
    assert!(stderr.contains("0.18s"), "{stderr}");
}

/// Adapters started by one `fedtwin fmu` know each other's declared dynamics: with the spring
/// at |lambda| = 100 and no `size`, both choose its bound (18 ms); and two files that would
/// run under one name are refused before anything starts.
#[test]
fn adapters_run_together_share_their_dynamics_and_need_their_own_names() {
    let dir = example_dir("together");
    common::leave_the_step_to_the_controller_with_a_fast_spring(&dir);
    let output = fedtwin(&[&dir.join("mass.toml"), &dir.join("spring.toml")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("mass: 278 steps of 0.018s"), "{stdout}");
    assert!(stdout.contains("spring: 278 steps of 0.018s"), "{stdout}");

    let output = fedtwin(&[&dir.join("mass.toml"), &dir.join("mass.toml")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("both run as `mass` in federation `oscillator`"),
        "{stderr}"
    );
}

/// A process killed before it could remove its unpacked FMU leaves a folder behind; the next
/// run removes the folders of processes that are gone, and never a live one's.
#[test]
fn unpacked_fmus_of_dead_processes_are_swept_away() {
    let dir = example_dir("sweep");
    let tmp = dir.join("tmp");
    let mut finished = Command::new("true").spawn().unwrap();
    finished.wait().unwrap();
    let dead = tmp.join(format!("fedtwin-fmu-{}-0-0", finished.id()));
    let alive = tmp.join(format!("fedtwin-fmu-{}-0-0", std::process::id()));
    for leftover in [&dead, &alive] {
        std::fs::create_dir_all(leftover.join("binaries")).unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_fedtwin"))
        .env("TMPDIR", &tmp)
        .arg("fmu")
        .args(["--config".as_ref(), dir.join("mass.toml").as_os_str()])
        .args(["--config".as_ref(), dir.join("spring.toml").as_os_str()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(!dead.exists(), "the dead process's folder is still there");
    assert!(alive.exists(), "a live process's folder was removed");
    // The run's own folders went with it.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, [alive.file_name().unwrap().to_owned()]);
}

/// Ctrl-C (SIGINT) stops a long run of `fedtwin fmu` politely: each FMU ends after its current
/// step, the recorded outputs are written, the unpacked FMUs removed, and the exit code is 130.
#[test]
fn an_interrupted_fmu_run_stops_after_the_step_and_exits_with_130() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = example_dir("interrupt");
    for file in ["mass.toml", "spring.toml"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("stop = \"5s\""), "{text}");
        std::fs::write(&path, text.replace("stop = \"5s\"", "stop = \"100000s\"")).unwrap();
    }
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedtwin"))
        .env("TMPDIR", &tmp)
        .args(["--log", "info", "fmu"])
        .args(["--config".as_ref(), dir.join("mass.toml").as_os_str()])
        .args(["--config".as_ref(), dir.join("spring.toml").as_os_str()])
        .args(["--out".as_ref(), dir.join("out").as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once both FMUs are stepping.
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut ready = 0;
    for line in stderr.by_ref() {
        if line.unwrap().contains("FMU ready") {
            ready += 1;
            if ready == 2 {
                break;
            }
        }
    }
    assert_eq!(ready, 2, "the FMUs never got ready");
    let rest = std::thread::spawn(move || stderr.map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let messages = rest.join().unwrap().join("\n");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{messages}");
    assert!(
        messages.contains("interrupted: stopping the FMUs"),
        "{messages}"
    );
    assert!(!messages.contains("did not stop"), "{messages}");
    for instance in ["mass", "spring"] {
        assert!(
            stdout.contains(&format!("{instance}: stopped at ")),
            "{stdout}\n{messages}"
        );
    }
    // What was recorded is written: the start row and at least one step.
    let csv = std::fs::read_to_string(dir.join("out/signals.csv")).unwrap();
    assert!(csv.lines().count() >= 3, "{csv}");
    // Both unpacked FMUs went with the run.
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}
