//! The scenario bench still runs: a few short scenarios of each kind, each asserted to finish
//! and print a well-formed line. No figure is checked (they depend on the machine).

use std::process::Command;

/// Runs `fedtwin-bench FILTER --quick --steps 40` and returns its scenario lines.
fn run(filter: &str) -> Vec<Vec<String>> {
    let output = Command::new(env!("CARGO_BIN_EXE_fedtwin-bench"))
        .args([filter, "--quick", "--steps", "40"])
        .output()
        .expect("fedtwin-bench starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fedtwin-bench {filter} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("scenario transport N steps seconds grants_per_s us_per_step median_us p90_us")
    );
    lines
        .map(|line| line.split(' ').map(str::to_owned).collect())
        .collect()
}

/// Checks a line's shape: the label asked for, 9 columns, positive counts, rates and times.
fn check(line: &[String], scenario: &str, transport: &str, n: &str) {
    assert_eq!(line.len(), 9, "{line:?}");
    assert_eq!((&*line[0], &*line[1], &*line[2]), (scenario, transport, n));
    let steps: u64 = line[3].parse().expect("steps is a count");
    assert!(steps > 0, "{line:?}");
    // `seconds` is printed to 1/100 s, so a short run shows 0.00; the rates and times are
    // computed from the unrounded figure.
    for (index, column) in line.iter().enumerate().skip(4) {
        let value: f64 = column.parse().expect("a number");
        let least = if index == 4 { 0.0 } else { f64::MIN_POSITIVE };
        assert!(value.is_finite() && value >= least, "{line:?}");
    }
}

#[test]
fn floors_run() {
    let lines = run("raw-barrier/quic/2");
    assert_eq!(lines.len(), 1, "{lines:?}");
    check(&lines[0], "raw-barrier", "quic", "2");
    let lines = run("raw-barrier/udp/8");
    assert_eq!(lines.len(), 1, "{lines:?}");
    check(&lines[0], "raw-barrier", "udp", "8");
}

#[test]
fn federations_run_over_quic_and_embedded() {
    for (filter, scenario, transport, n) in [
        ("lockstep/quic/2", "lockstep", "quic", "2"),
        ("pingpong/quic", "pingpong", "quic", "2"),
        ("events/embedded/8", "events", "embedded", "8"),
        ("phold/embedded", "phold", "embedded", "8"),
    ] {
        let lines = run(filter);
        assert_eq!(lines.len(), 1, "{filter}: {lines:?}");
        check(&lines[0], scenario, transport, n);
    }
}

#[test]
fn an_unknown_scenario_is_refused_by_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_fedtwin-bench"))
        .arg("no-such-scenario")
        .output()
        .expect("fedtwin-bench starts");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-scenario"), "{stderr}");
    assert!(stderr.contains("lockstep/quic/8"), "{stderr}");
}
