//! The whole federated-learning federation on an embedded RTI: three hospitals with
//! differently shifted private data and the aggregator, on threads.

use std::thread;

use federate_sdk::hosted::Hosted;
use federate_sdk::{Connector, EmbeddedRti, SimTime};
use federated_learning::aggregator::AggregatorReport;
use federated_learning::hospital::HospitalReport;

const HOSPITALS: [(&str, &str); 3] = [
    ("hospital-a", "seed = 11\nsamples = 400\nshift = 0.5"),
    ("hospital-b", "seed = 12\nsamples = 600\nshift = 1.0"),
    ("hospital-c", "seed = 13\nsamples = 800\nshift = 1.5"),
];

fn hosted(connector: &Connector, name: &str, params: &str, stop_secs: i64) -> Hosted {
    let mut expect: Vec<String> = HOSPITALS.iter().map(|(n, _)| (*n).to_owned()).collect();
    expect.push("aggregator".to_owned());
    Hosted {
        federation: "federated-learning".to_owned(),
        name: name.to_owned(),
        connector: connector.clone(),
        stop: SimTime::from_secs(stop_secs).unwrap(),
        expect,
        params: toml::from_str(params).unwrap(),
        model: None,
    }
}

fn run(aggregator_params: &str, stop_secs: i64) -> (AggregatorReport, Vec<HospitalReport>) {
    let connector = Connector::from(EmbeddedRti::start().unwrap());
    let hospitals: Vec<_> = HOSPITALS
        .iter()
        .map(|(name, params)| {
            let hosted = hosted(&connector, name, params, stop_secs);
            thread::spawn(move || federated_learning::hospital::run(&hosted).unwrap())
        })
        .collect();
    let aggregator = hosted(&connector, "aggregator", aggregator_params, stop_secs);
    let aggregator = federated_learning::aggregator::run(&aggregator).unwrap();
    let hospitals = hospitals.into_iter().map(|h| h.join().unwrap()).collect();
    (aggregator, hospitals)
}

/// The federated model may trail the central baseline by at most this much accuracy.
const MARGIN: f64 = 0.03;

#[test]
fn fedavg_reaches_the_central_baseline_within_three_points() {
    let (report, hospitals) = run("rounds = 20\nseed = 5", 20);
    println!("aggregator: {}", report.summary());
    for hospital in &hospitals {
        println!("hospital: {}", hospital.summary());
    }
    assert_eq!(report.rounds.len(), 20, "{}", report.summary());
    for (i, round) in report.rounds.iter().enumerate() {
        assert_eq!(round.round as usize, i + 1);
        assert_eq!(round.hospitals, ["hospital-a", "hospital-b", "hospital-c"]);
        assert_eq!(round.samples, 1800);
    }
    assert!(hospitals.iter().all(|h| h.rounds == 20));
    let baseline = report.baseline_accuracy.unwrap();
    let first = report.rounds[0].accuracy;
    let last = report.final_accuracy();
    assert!(baseline > 0.8, "the task is learnable: baseline {baseline}");
    assert!(
        last > report.initial_accuracy + 0.2,
        "learning happened: {}",
        report.summary()
    );
    assert!(
        last >= first - 0.01,
        "no collapse over the rounds: {}",
        report.summary()
    );
    assert!(
        last >= baseline - MARGIN,
        "federated {last:.3} vs central {baseline:.3}: {}",
        report.summary()
    );

    // Deterministic: the same federation gives the same models, to the bit.
    let (again, hospitals_again) = run("rounds = 20\nseed = 5", 20);
    assert_eq!(again, report);
    assert_eq!(hospitals_again, hospitals);
}

#[test]
fn with_noise_it_still_runs_and_reports_accuracy() {
    let (quiet, _) = run("rounds = 5\nseed = 5", 5);
    let (noisy, _) = run("rounds = 5\nseed = 5\ndp_noise = 0.1", 5);
    println!("noisy aggregator: {}", noisy.summary());
    assert_eq!(noisy.rounds.len(), 5);
    assert!(
        noisy
            .rounds
            .iter()
            .all(|r| (0.0..=1.0).contains(&r.accuracy))
    );
    assert_ne!(noisy.weights, quiet.weights, "the noise changes the model");
    assert!(noisy.summary().contains("central baseline"));
}

#[test]
fn a_short_run_says_how_many_rounds_it_completed() {
    // Three seconds hold three rounds, not the ten asked for.
    let (report, _) = run("rounds = 10", 3);
    assert_eq!(report.rounds.len(), 3);
    assert!(
        report.summary().starts_with("3 of 10 rounds"),
        "{}",
        report.summary()
    );
}

#[test]
fn the_federation_file_names_existing_federates_with_valid_params() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("federation.toml");
    let federation: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let connector = Connector::from(EmbeddedRti::start().unwrap());
    let mut names = Vec::new();
    for federate in federation["federate"].as_array().unwrap() {
        let name = federate["name"].as_str().unwrap();
        names.push(name);
        let hosted = Hosted {
            params: federate["params"].as_table().unwrap().clone(),
            model: None,
            ..hosted(&connector, name, "", 20)
        };
        match federate["builtin"].as_str().unwrap() {
            "federated-learning/hospital" => {
                hosted
                    .params::<federated_learning::hospital::HospitalParams>()
                    .unwrap();
            }
            "federated-learning/aggregator" => {
                let params = hosted
                    .params::<federated_learning::aggregator::AggregatorParams>()
                    .unwrap();
                // One round per second: the stop time holds them all.
                assert!(f64::from(params.rounds) <= 20.0);
            }
            other => panic!("unknown builtin {other}"),
        }
    }
    assert_eq!(
        names,
        ["aggregator", "hospital-a", "hospital-b", "hospital-c"]
    );
}
