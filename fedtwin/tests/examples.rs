//! The examples as the README runs them: `fedtwin run` on each example's federation file, with
//! the recorded CSV checked for its columns and a physically sensible result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fedtwin");

/// A copy of `examples/<name>` in a fresh folder, so that the runner packs its FMUs there.
fn copy_example(name: &str, files: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fedtwin-example-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    for file in files {
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    dir
}

/// Runs `fedtwin run FILE --out OUT` and returns the recorded columns by header.
fn run(file: &Path, out: &Path) -> BTreeMap<String, Vec<Option<f64>>> {
    let output = Command::new(BIN)
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--plot")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "fedtwin run {} failed:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.join("signals.csv")).unwrap();
    let mut lines = text.lines();
    let headers: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut columns: BTreeMap<String, Vec<Option<f64>>> =
        headers.iter().map(|h| (h.clone(), Vec::new())).collect();
    for line in lines {
        for (header, cell) in headers.iter().zip(line.split(',')) {
            let value = (!cell.is_empty()).then(|| cell.parse::<f64>().unwrap());
            columns.get_mut(header).unwrap().push(value);
        }
    }
    columns
}

fn values(columns: &BTreeMap<String, Vec<Option<f64>>>, header: &str) -> Vec<f64> {
    columns
        .get(header)
        .unwrap_or_else(|| panic!("no column {header} in {:?}", columns.keys()))
        .iter()
        .flatten()
        .copied()
        .collect()
}

fn peak(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::MIN, f64::max)
}

#[test]
fn smart_grid_price_coordination_flattens_the_peak() {
    let dir = copy_example(
        "smart-grid",
        &[
            "federation.toml",
            "federation-uncoordinated.toml",
            "battery.toml",
        ],
    );
    let coordinated = run(&dir.join("federation.toml"), &dir.join("out-price"));
    let flat = run(
        &dir.join("federation-uncoordinated.toml"),
        &dir.join("out-flat"),
    );
    let expected = [
        "time_s",
        "utility/Grid.Load.load_kw",
        "utility/Utility.Tariff.price",
        "home-1.soc",
        "home-2.soc",
        "battery-fmu.soc",
        "ev-charging.net_kw",
    ];
    for header in expected {
        assert!(coordinated.contains_key(header), "{header} recorded");
        assert!(flat.contains_key(header), "{header} recorded");
    }
    let time = values(&coordinated, "time_s");
    assert_eq!(
        time.len(),
        97,
        "a day in 15-minute steps, both ends included"
    );
    assert_eq!(time.last(), Some(&86_400.0));

    let load = "utility/Grid.Load.load_kw";
    let (with_price, without) = (
        peak(&values(&coordinated, load)),
        peak(&values(&flat, load)),
    );
    assert!(
        with_price < 0.85 * without,
        "peak grid load with the price signal {with_price:.1} kW, without {without:.1} kW"
    );
    for soc in ["home-1.soc", "home-2.soc", "battery-fmu.soc"] {
        let soc = values(&coordinated, soc);
        assert!(soc.iter().all(|s| (0.0..=1.0).contains(s)), "{soc:?}");
    }
    // The price moves only with coordination; the FMU battery acts on it.
    let price = values(&coordinated, "utility/Utility.Tariff.price");
    assert!(peak(&price) > 1.5 * price.iter().copied().fold(f64::MAX, f64::min));
    let flat_price = values(&flat, "utility/Utility.Tariff.price");
    assert!(
        flat_price.windows(2).all(|w| w[0] == w[1]),
        "{flat_price:?}"
    );
    let battery = values(&coordinated, "battery-fmu.soc");
    assert!(
        peak(&battery) > battery[0],
        "the FMU battery charged at some point"
    );
    assert!(dir.join("out-price/Grid.Load.load_kw.svg").is_file());
}

#[test]
fn federated_learning_reaches_the_central_baseline_within_three_points() {
    let dir = copy_example("federated-learning", &["federation.toml"]);
    let columns = run(&dir.join("federation.toml"), &dir.join("out"));
    let rounds = values(&columns, "aggregator.round");
    assert_eq!(rounds.last(), Some(&20.0), "every round ran");
    let accuracy = values(&columns, "aggregator.accuracy");
    let baseline = values(&columns, "aggregator.baseline");
    let (first, last) = (accuracy[0], *accuracy.last().unwrap());
    let central = *baseline.last().unwrap();
    assert!(last > first + 0.1, "learning happened: {first} -> {last}");
    assert!(
        (central - last).abs() <= 0.03,
        "federated {last:.3} within 3 points of the central baseline {central:.3}"
    );
}
