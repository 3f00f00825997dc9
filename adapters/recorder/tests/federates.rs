//! The player and the recorder on an embedded RTI, without the runner.

use std::path::Path;
use std::sync::Mutex;
use std::thread;

use federate_sdk::{Connector, EmbeddedRti, SimDuration, SimTime};
use fedtwin_recorder::{
    PlayerConfig, PlayerError, PlayerTable, RecordSpec, RecorderConfig, RecorderError, Recording,
    player, recorder,
};

fn table(text: &str) -> PlayerTable {
    PlayerTable::parse(text, Path::new("load.csv")).unwrap()
}

fn player_config(rti: &EmbeddedRti, expect: &[&str]) -> PlayerConfig {
    PlayerConfig {
        federation: "replay".into(),
        name: "house".into(),
        connector: Connector::from(rti),
        class: "Household.Load".into(),
        start: SimTime::ZERO,
        stop: SimTime::from_secs(2).unwrap(),
        lookahead: None,
        expect: expect.iter().map(|s| s.to_string()).collect(),
        model: None,
    }
}

fn recorder_config(rti: &EmbeddedRti, attributes: &[&str]) -> RecorderConfig {
    RecorderConfig {
        federation: "replay".into(),
        name: "recorder".into(),
        connector: Connector::from(rti),
        stop: SimTime::from_secs(2).unwrap(),
        expect: vec!["house".into(), "recorder".into()],
        model: None,
        spec: RecordSpec {
            attributes: attributes.iter().map(|s| s.to_string()).collect(),
            interactions: Vec::new(),
        },
    }
}

#[test]
fn the_recorder_joins_the_players_federation_and_gets_every_row_at_its_time() {
    let rti = EmbeddedRti::start().unwrap();
    let rows = table("time_s,load_kw\n0,1\n0.5,2\n1.25,3\n3,4\n");
    let config = player_config(&rti, &["house", "recorder"]);
    let player = thread::spawn(move || player::run(&config, &rows));

    let recording = Mutex::new(Recording::new());
    let mut grants = Vec::new();
    // No model: the recorder waits for the player to create the federation, then joins it.
    let summary = recorder::run(
        &recorder_config(&rti, &["Household.Load.load_kw"]),
        &recording,
        |t| grants.push(t),
    )
    .unwrap();
    let played = player.join().unwrap().unwrap();
    assert!(played.starts_with("played 3 rows"), "{played}");
    assert!(
        summary.starts_with("recorded 3 rows of 1 columns"),
        "{summary}"
    );

    let recording = recording.into_inner().unwrap();
    let ms = |m| SimTime::from_millis(m).unwrap();
    assert_eq!(
        recording.series("house.load_kw"),
        [(ms(0), 1.0), (ms(500), 2.0), (ms(1250), 3.0)]
    );
    // One grant per row after the start, then the stop time; never past it.
    assert_eq!(grants, [ms(0), ms(500), ms(1250), ms(2000)]);
}

#[test]
fn a_lookahead_longer_than_a_row_gap_is_refused_before_joining() {
    let rti = EmbeddedRti::start().unwrap();
    let mut config = player_config(&rti, &[]);
    config.lookahead = Some(SimDuration::from_secs(1).unwrap());
    let error = player::run(&config, &table("time_s,x\n0,1\n0.5,2\n")).unwrap_err();
    assert!(matches!(error, PlayerError::Lookahead { .. }), "{error}");
    assert!(error.to_string().contains("smallest gap 0.5s"), "{error}");
}

#[test]
fn recording_an_attribute_the_model_lacks_names_it() {
    let rti = EmbeddedRti::start().unwrap();
    let mut config = recorder_config(&rti, &["Household.Load.voltage"]);
    config.expect.clear();
    config.model = Some(table("time_s,load_kw\n0,1\n").model("Household.Load"));
    let recording = Mutex::new(Recording::new());
    let error = recorder::run(&config, &recording, |_| {}).unwrap_err();
    assert!(matches!(error, RecorderError::Unknown { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("cannot record `Household.Load.voltage`"),
        "{error}"
    );
}
