//! The whole smart-grid federation on an embedded RTI: the Rust federates on threads and the
//! battery FMU through the FMI adapter, with and without price coordination.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;

use federate_sdk::hosted::Hosted;
use federate_sdk::{Connector, EmbeddedRti, SimTime};
use fedtwin_fmi::AdapterConfig;
use fedtwin_test_fmus::TestModel;
use smart_grid::ev_charging::EvReport;
use smart_grid::prosumer::ProsumerReport;
use smart_grid::utility::UtilityReport;

const NAMES: [&str; 5] = ["utility", "ev-charging", "home-1", "home-2", "battery-fmu"];

fn battery_fmu() -> &'static Path {
    static FMU: OnceLock<PathBuf> = OnceLock::new();
    FMU.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smart-grid-federation");
        fedtwin_test_fmus::pack(TestModel::Battery, &dir).unwrap()
    })
}

fn example_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn hosted(connector: &Connector, name: &str, params: &str) -> Hosted {
    Hosted {
        federation: "smart-grid".to_owned(),
        name: name.to_owned(),
        connector: connector.clone(),
        stop: SimTime::from_secs(86_400).unwrap(),
        expect: NAMES.iter().map(|n| (*n).to_owned()).collect(),
        params: toml::from_str(params).unwrap(),
        model: None,
    }
}

struct Run {
    utility: UtilityReport,
    ev: EvReport,
    homes: Vec<ProsumerReport>,
    /// The battery FMU's (time, net_kw, soc) after every step.
    fmu: Vec<(SimTime, f64, f64)>,
}

fn run(coordination: bool) -> Run {
    let rti = EmbeddedRti::start().unwrap();
    let connector = Connector::from(rti);

    let mut config = AdapterConfig::load(&example_file("battery.toml")).unwrap();
    config.fmu = battery_fmu().to_path_buf();
    let fmu_connector = connector.clone();
    let fmu = thread::spawn(move || {
        let mut trace = Vec::new();
        fedtwin_fmi::run_with(&config, fmu_connector, |t, outputs| {
            trace.push((t, outputs[0], outputs[1]));
        })
        .unwrap();
        trace
    });

    let utility = hosted(
        &connector,
        "utility",
        &format!("coordination = {coordination}\nstep = \"15min\""),
    );
    let utility = thread::spawn(move || smart_grid::utility::run(&utility).unwrap());
    let ev = hosted(&connector, "ev-charging", "cars = 30\nseed = 7");
    let ev = thread::spawn(move || smart_grid::ev_charging::run(&ev).unwrap());
    let homes: Vec<_> = [
        ("home-1", "pv_kwp = 6.0"),
        ("home-2", "pv_kwp = 3.0\nsoc0 = 0.2"),
    ]
    .into_iter()
    .map(|(name, params)| {
        let home = hosted(&connector, name, params);
        thread::spawn(move || smart_grid::prosumer::run(&home).unwrap())
    })
    .collect();

    Run {
        utility: utility.join().unwrap(),
        ev: ev.join().unwrap(),
        homes: homes.into_iter().map(|h| h.join().unwrap()).collect(),
        fmu: fmu.join().unwrap(),
    }
}

#[test]
fn federation_files_name_existing_federates_with_valid_params() {
    for file in ["federation.toml", "federation-uncoordinated.toml"] {
        let text = std::fs::read_to_string(example_file(file)).unwrap();
        let federation: toml::Table = toml::from_str(&text).unwrap();
        let federates = federation["federate"].as_array().unwrap();
        let names: Vec<&str> = federates
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), NAMES.len(), "{file}");
        for name in NAMES {
            assert!(names.contains(&name), "{file} runs {name}");
        }
        for federate in federates {
            let name = federate["name"].as_str().unwrap();
            let params = federate
                .get("params")
                .and_then(|p| p.as_table())
                .cloned()
                .unwrap_or_default();
            let hosted = Hosted {
                params,
                model: None,
                ..hosted(&Connector::from(EmbeddedRti::start().unwrap()), name, "")
            };
            match federate.get("builtin").and_then(|b| b.as_str()) {
                Some("smart-grid/utility") => {
                    hosted
                        .params::<smart_grid::utility::UtilityParams>()
                        .unwrap();
                }
                Some("smart-grid/ev-charging") => {
                    hosted
                        .params::<smart_grid::ev_charging::EvParams>()
                        .unwrap();
                }
                Some("smart-grid/prosumer") => {
                    hosted
                        .params::<smart_grid::prosumer::ProsumerParams>()
                        .unwrap();
                }
                Some(other) => panic!("{file}: unknown builtin {other}"),
                None => assert_eq!(federate["fmu"].as_str(), Some("battery.toml")),
            }
        }
    }
    // The FMU waits for exactly the federates of the federation file.
    let config = AdapterConfig::load(&example_file("battery.toml")).unwrap();
    let mut expect = config.expect.clone();
    expect.sort();
    let mut names = NAMES.to_vec();
    names.sort_unstable();
    assert_eq!(expect, names);
}

#[test]
fn battery_toml_declares_the_federation_model() {
    let config = AdapterConfig::load(&example_file("battery.toml")).unwrap();
    assert_eq!(config.object_model(), smart_grid::model());
    assert_eq!(config.instance, "battery-fmu");
    assert_eq!(config.step_size.map(|s| s.as_secs_f64()), Some(900.0));
}

#[test]
fn price_coordination_flattens_the_peak_and_everyone_gets_their_energy() {
    let coordinated = run(true);
    let uncoordinated = run(false);
    let end = SimTime::from_secs(86_400).unwrap();

    for (label, run) in [
        ("coordinated", &coordinated),
        ("uncoordinated", &uncoordinated),
    ] {
        println!("{label}: utility: {}", run.utility.summary());
        println!("{label}: ev: {}", run.ev.summary());
        for home in &run.homes {
            println!("{label}: home: {}", home.summary());
        }
        let samples = &run.utility.samples;
        assert_eq!(
            samples.len(),
            96,
            "{label}: one measurement per quarter hour"
        );
        // Every car that left got its energy.
        assert!(
            run.ev.unmet_kwh(end) < 1e-6,
            "{label}: {}",
            run.ev.summary()
        );
        assert!(run.ev.cars.iter().all(|car| car.departure <= end));
        // Energy balance: what the fleet drew is what the cars stored, and what it needed.
        let hours = 0.25;
        let drawn: f64 = run.ev.power.iter().map(|(_, kw)| kw * hours).sum();
        let needed: f64 = run.ev.cars.iter().map(|car| car.need_kwh).sum();
        assert!((drawn - run.ev.charged_kwh()).abs() < 1e-6);
        assert!(
            (drawn - needed).abs() < 1e-6,
            "{label}: drew {drawn}, needed {needed}"
        );
        // Batteries stay within their bounds, and their energy adds up.
        for home in &run.homes {
            assert!(
                home.steps
                    .iter()
                    .all(|(_, _, soc)| (0.0..=1.0).contains(soc))
            );
            let stored = (home.final_soc() - home.soc0) * home.capacity_kwh;
            assert!((stored - home.battery_kwh).abs() < 1e-6);
        }
        assert_eq!(
            run.fmu.len(),
            97,
            "{label}: the FMU's outputs at 0 and after 96 steps"
        );
        assert!(run.fmu.iter().all(|(_, _, soc)| (0.0..=1.0).contains(soc)));
        // The utility's load over each step is its own households plus exactly what every
        // federate reported for that step: nothing lost, nothing counted twice or late.
        for sample in samples {
            let at = |trace: &[(SimTime, f64)]| {
                trace
                    .iter()
                    .find(|(t, _)| *t == sample.time)
                    .map(|(_, kw)| *kw)
                    .unwrap()
            };
            let mut reported = at(&run.ev.power);
            for home in &run.homes {
                let net: Vec<_> = home.steps.iter().map(|(t, kw, _)| (*t, *kw)).collect();
                reported += at(&net);
            }
            let fmu: Vec<_> = run.fmu.iter().map(|(t, kw, _)| (*t, *kw)).collect();
            reported += at(&fmu);
            let measured = sample.load_kw - sample.base_kw;
            assert!(
                (measured - reported).abs() < 1e-9,
                "{label} at {}",
                sample.time
            );
        }
    }

    // The FMU battery responds to the price: idle at the flat price, cycling with coordination.
    assert!(uncoordinated.fmu.iter().all(|(_, net, _)| *net == 0.0));
    assert!(coordinated.fmu.iter().any(|(_, net, _)| *net > 0.0));
    assert!(coordinated.fmu.iter().any(|(_, net, _)| *net < 0.0));

    let (_, peak_on) = coordinated.utility.peak().unwrap();
    let (_, peak_off) = uncoordinated.utility.peak().unwrap();
    assert!(
        peak_on < 0.85 * peak_off,
        "coordinated peak {peak_on:.1} kW should be well below the uncoordinated {peak_off:.1} kW"
    );

    // Deterministic: the same inputs give the same results, to the bit.
    let again = run(true);
    assert_eq!(again.utility, coordinated.utility);
    assert_eq!(again.ev, coordinated.ev);
    assert_eq!(again.homes, coordinated.homes);
    assert_eq!(again.fmu, coordinated.fmu);
}
