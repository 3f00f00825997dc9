//! The FMU adapter end to end: test FMUs as lock-step federates on an embedded RTI.

mod common;

use std::path::{Path, PathBuf};
use std::thread;

use federate_sdk::{Connector, EmbeddedRti, Federate, SimDuration, SimTime};
use fedtwin_fmi::{AdapterConfig, AdapterError, ConfigError, Fmu, Instance, RunSummary};
use fedtwin_test_fmus::{TestModel, oscillator_exact, vr};

fn scratch() -> &'static Path {
    common::scratch("fedtwin-fmi-adapter-tests")
}

fn packed(model: TestModel) -> PathBuf {
    common::packed(model, scratch())
}

fn config(text: &str) -> AdapterConfig {
    AdapterConfig::parse(text, "adapter.toml", scratch()).unwrap()
}

type Trace = Vec<(SimTime, Vec<f64>)>;

/// Runs `config` alone on a fresh embedded RTI, recording its outputs.
fn run_alone(config: &AdapterConfig) -> Result<(RunSummary, Trace), AdapterError> {
    let rti = EmbeddedRti::start().unwrap();
    let mut trace = Vec::new();
    let summary = fedtwin_fmi::run_with(config, Connector::from(rti), |t, y| {
        trace.push((t, y.to_vec()))
    })?;
    Ok((summary, trace))
}

/// The critically damped split oscillator (mass 1, stiffness 100, damping 20: a double
/// eigenvalue at -10, so |lambda| = 10 and the stable bound is alpha * 2 / 10).
fn oscillator(federation: &str, size: &str, stop: &str, override_stability: bool) -> [String; 2] {
    let mass = packed(TestModel::OscillatorMass);
    let spring = packed(TestModel::OscillatorSpring);
    let common = format!(
        r#"federation = "{federation}"
expect = ["mass", "spring"]

[experiment]
stop = "{stop}"

[step]
size = "{size}"
alpha = 0.9
fastest_eigenvalue = 10.0
override_stability = {override_stability}

[[object_class]]
name = "Mass.State"
attributes = ["x", "v"]

[[object_class]]
name = "Spring.State"
attributes = ["force"]
"#
    );
    [
        format!(
            r#"fmu = "{}"
instance = "mass"
{common}
[parameters]
mass = 1.0

[[publish]]
variable = "x"
attribute = "Mass.State.x"

[[publish]]
variable = "v"
attribute = "Mass.State.v"

[[subscribe]]
attribute = "Spring.State.force"
variable = "force"
"#,
            mass.display()
        ),
        format!(
            r#"fmu = "{}"
instance = "spring"
{common}
[parameters]
stiffness = 100.0
damping = 20.0

[[publish]]
variable = "force"
attribute = "Spring.State.force"

[[subscribe]]
attribute = "Mass.State.v"
variable = "v"
"#,
            spring.display()
        ),
    ]
}

/// An [`oscillator`] file without its `[[object_class]]` list: the adapter derives its classes
/// from its own mappings.
fn without_classes(text: &str) -> String {
    let (head, _) = text.split_once("[[object_class]]").unwrap();
    let (_, mappings) = text.split_once("[parameters]").unwrap();
    format!("{head}[parameters]{mappings}")
}

/// Runs both halves on two threads sharing one embedded RTI; returns the mass's trace.
fn run_oscillator(texts: &[String; 2]) -> Result<Trace, AdapterError> {
    let rti = Connector::from(EmbeddedRti::start().unwrap());
    let spring = config(&texts[1]);
    let spring_rti = rti.clone();
    let spring = thread::spawn(move || fedtwin_fmi::run(&spring, spring_rti));
    let mut trace = Vec::new();
    let mass = fedtwin_fmi::run_with(&config(&texts[0]), rti, |t, y| trace.push((t, y.to_vec())));
    spring.join().unwrap()?;
    mass?;
    Ok(trace)
}

fn max_error(trace: &Trace) -> f64 {
    trace
        .iter()
        .map(|(t, y)| {
            let (x, _) = oscillator_exact(t.as_secs_f64(), 1.0, 100.0, 20.0, 1.0, 0.0);
            (y[0] - x).abs()
        })
        .fold(0.0, f64::max)
}

/// Jacobi coupling holds each input over a step, a first-order error: the mass's position
/// stays within 2e-2 of the closed form at h = 1 ms (measured: about 3e-3), and halving the
/// step about halves the error.
#[test]
fn split_oscillator_matches_the_closed_form_and_converges_first_order() {
    let fine = run_oscillator(&oscillator("fine", "1ms", "3s", false)).unwrap();
    let coarse = run_oscillator(&oscillator("coarse", "2ms", "3s", false)).unwrap();
    assert_eq!(fine.len(), 3001);
    assert_eq!(fine.last().unwrap().0, SimTime::from_secs(3).unwrap());
    let (fine_error, coarse_error) = (max_error(&fine), max_error(&coarse));
    eprintln!("max |x - exact|: {fine_error:e} at 1 ms, {coarse_error:e} at 2 ms");
    assert!(fine_error < 2e-2, "max |x - exact| = {fine_error}");
    let ratio = coarse_error / fine_error;
    assert!(
        (1.6..2.4).contains(&ratio),
        "{coarse_error} / {fine_error} = {ratio}"
    );
}

/// Adapters started separately each derive their classes from their own mappings: the mass
/// knows `Mass.State` with `x` and `v`, the spring only `v`. The RTI merges the two models, and
/// the run is the one with a shared `[[object_class]]` list.
#[test]
fn adapters_that_derive_different_models_merge_them_and_run_as_with_a_shared_one() {
    let shared = oscillator("shared-classes", "1ms", "1s", false);
    let derived = oscillator("own-classes", "1ms", "1s", false).map(|t| without_classes(&t));
    assert!(!derived[0].contains("object_class") && !derived[1].contains("object_class"));
    assert_ne!(
        config(&derived[0]).object_model(),
        config(&derived[1]).object_model()
    );
    let expected = run_oscillator(&shared).unwrap();
    assert_eq!(expected.len(), 1001);
    assert_eq!(run_oscillator(&derived).unwrap(), expected);
}

/// Adapters started apart each check their step against their own file first; once both have
/// joined and subscribed, the RTI tells each the fastest dynamics declared among the
/// federates coupled with it, and the mass's 50 ms step, stable for its own |lambda| = 10,
/// is refused for the spring's 100 (bound 0.9 * 2 / 100 = 18 ms).
#[test]
fn a_step_unstable_for_a_coupled_fmu_is_refused_naming_it() {
    let [mass, spring] = oscillator("coupled-dynamics", "10ms", "1s", false);
    let spring = spring.replace("fastest_eigenvalue = 10.0", "fastest_eigenvalue = 100.0");
    // Both at 10 ms: stable for both.
    run_oscillator(&[mass.clone(), spring.clone()]).unwrap();
    let mass = mass.replace("size = \"10ms\"", "size = \"50ms\"");
    let error = run_oscillator(&[mass, spring]).unwrap_err();
    assert!(matches!(error, AdapterError::Unstable(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("`spring`") && message.contains("0.018s"),
        "{message}"
    );
}

/// Adapters started apart that leave the step to the controller choose it at the start
/// barrier, from the fastest dynamics the RTI knows among the federates coupled with them:
/// the mass (|lambda| = 10) takes the spring's 18 ms (|lambda| = 100), not its own 180 ms.
#[test]
fn adapters_started_apart_choose_one_stable_step_at_the_barrier() {
    let [mass, spring] = oscillator("barrier-step", "10ms", "1s", false).map(|text| {
        let text = text.replace("size = \"10ms\"\n", "");
        assert!(!text.lines().any(|l| l.starts_with("size")), "{text}");
        text
    });
    let spring = spring.replace("fastest_eigenvalue = 10.0", "fastest_eigenvalue = 100.0");
    let rti = Connector::from(EmbeddedRti::start().unwrap());
    let spring = config(&spring);
    let spring_rti = rti.clone();
    let spring = thread::spawn(move || fedtwin_fmi::run(&spring, spring_rti));
    let mass = fedtwin_fmi::run(&config(&mass), rti).unwrap();
    let spring = spring.join().unwrap().unwrap();
    let step = SimDuration::from_millis(18).unwrap();
    assert_eq!((mass.step, spring.step), (step, step));
    assert_eq!((mass.steps, spring.steps), (56, 56));
    // Stable: the position decays as the critically damped oscillator's does.
    assert!(mass.outputs[0].1.abs() < 0.1, "{mass}");
}

#[test]
fn a_step_above_the_stability_bound_is_refused_with_the_numbers() {
    let texts = oscillator("refused", "250ms", "10s", false);
    let rti = EmbeddedRti::start().unwrap();
    let error = fedtwin_fmi::run(&config(&texts[0]), Connector::from(rti)).unwrap_err();
    let AdapterError::Unstable(_) = &error else {
        panic!("expected Unstable, got {error}");
    };
    let message = error.to_string();
    assert!(message.contains("0.25s"), "{message}");
    assert!(message.contains("0.18s"), "{message}");
    assert!(message.contains("`mass`"), "{message}");
}

/// With the override the same step runs, and the coupled solution visibly diverges while the
/// true one decays: the bound is real.
///
/// It is also not sufficient here: the spring's force depends directly on its input `v`
/// (direct feedthrough), so the force published at `T + h` was computed with `v(T)`, one more
/// step of delay in the damping path. The split then stays stable only up to about 40 ms
/// (explicit Euler model of the coupling: bounded at 35 ms, growing at 45 ms), well below the
/// 180 ms the rule allows; 20 ms is safely inside.
#[test]
fn overriding_the_bound_diverges() {
    let trace = run_oscillator(&oscillator("override", "250ms", "10s", true)).unwrap();
    let largest = trace.iter().map(|(_, y)| y[0].abs()).fold(0.0, f64::max);
    assert!(largest > 10.0, "max |x| = {largest}");
    // The stable step stays bounded by the initial displacement over the same time.
    let stable = run_oscillator(&oscillator("override-ok", "20ms", "10s", true)).unwrap();
    let largest = stable.iter().map(|(_, y)| y[0].abs()).fold(0.0, f64::max);
    assert!(largest <= 1.5, "max |x| = {largest}");
}

fn dahlquist_config(model: TestModel, size: &str, stop: &str) -> String {
    format!(
        r#"fmu = "{}"
instance = "{}"
federation = "{}"

[experiment]
stop = "{stop}"

[step]
size = "{size}"
min = "1ms"

[[publish]]
variable = "x"
attribute = "Decay.State.x"
"#,
        packed(model).display(),
        model.name(),
        model.name(),
    )
}

/// `x` of `model` stepped directly with steps of `h` seconds, `steps` times, from x(0) = 1.
fn direct(model: TestModel, h: f64, steps: u32) -> Vec<f64> {
    let fmu = Fmu::open(&packed(model)).unwrap();
    let mut instance = Instance::new(&fmu, "direct", false).unwrap();
    instance
        .setup_experiment(None, 0.0, Some(h * f64::from(steps)))
        .unwrap();
    instance.enter_initialization_mode().unwrap();
    instance.exit_initialization_mode().unwrap();
    let mut xs = vec![instance.get_real(&[vr::dahlquist::X]).unwrap()[0]];
    for n in 0..steps {
        instance.do_step(f64::from(n) * h, h).unwrap();
        xs.push(instance.get_real(&[vr::dahlquist::X]).unwrap()[0]);
    }
    xs
}

#[test]
fn the_adapter_adds_no_numerical_error() {
    let (summary, trace) = run_alone(&config(&dahlquist_config(
        TestModel::Dahlquist,
        "10ms",
        "1s",
    )))
    .unwrap();
    assert_eq!(summary.steps, 100);
    assert_eq!(summary.final_time, SimTime::from_secs(1).unwrap());
    let expected = direct(TestModel::Dahlquist, 0.01, 100);
    let got: Vec<f64> = trace.iter().map(|(_, y)| y[0]).collect();
    assert_eq!(got, expected, "bit for bit");
    assert!((summary.outputs[0].1 - (-1.0f64).exp()).abs() < 1e-12);
}

#[test]
fn discarded_steps_are_retried_in_halves() {
    let (summary, trace) = run_alone(&config(&dahlquist_config(
        TestModel::DiscardAbove,
        "20ms",
        "1s",
    )))
    .unwrap();
    assert_eq!(summary.step, SimDuration::from_millis(20).unwrap());
    assert_eq!(summary.steps, 50);
    let expected = direct(TestModel::Dahlquist, 0.01, 100);
    for (n, (t, y)) in trace.iter().enumerate() {
        assert_eq!(*t, SimTime::from_millis(20 * n as i64).unwrap());
        assert!(
            (y[0] - expected[2 * n]).abs() < 1e-12,
            "{n}: {} vs {}",
            y[0],
            expected[2 * n]
        );
    }

    // Retrying below the minimum step is a clear error.
    let text = dahlquist_config(TestModel::DiscardAbove, "20ms", "1s").replace("1ms", "15ms");
    let error = run_alone(&config(&text)).unwrap_err();
    assert!(matches!(error, AdapterError::Discarded { .. }), "{error}");
    // The FMU's own reason is quoted.
    assert!(
        error.to_string().contains("minimum step")
            && error
                .to_string()
                .contains("(the FMU said: fmi2DoStep: communication step 0.02 s exceeds max_step"),
        "{error}"
    );
}

#[test]
fn early_termination_resigns_cleanly() {
    let rti = EmbeddedRti::start().unwrap();
    let config = config(&dahlquist_config(TestModel::TerminateEarly, "100ms", "1s"));
    let summary = fedtwin_fmi::run(&config, Connector::from(rti.clone())).unwrap();
    assert_eq!(
        summary.terminated_early,
        Some(SimTime::from_millis(500).unwrap())
    );
    assert_eq!(summary.steps, 5);
    assert!((summary.outputs[0].1 - (-0.5f64).exp()).abs() < 1e-12);
    // Resigned: the name is free again.
    let again = Federate::builder("terminate_early", "terminate_early")
        .create_federation(config.object_model())
        .join_blocking(&rti)
        .unwrap();
    again.resign().unwrap();
}

/// An FMU that stops the simulation itself still hands its last outputs to its subscribers,
/// stamped at the end of the step it stopped in, as after any other step.
#[test]
fn the_last_outputs_of_an_fmu_that_stops_early_reach_its_subscribers() {
    let rti = EmbeddedRti::start().unwrap();
    let config = config(&dahlquist_config(TestModel::TerminateEarly, "100ms", "1s"));
    // Regulating, so that the adapter waits for it; constrained, to get timestamps.
    let mut observer = Federate::builder("terminate_early", "observer")
        .create_federation(config.object_model())
        .time_regulating(SimDuration::from_millis(100).unwrap())
        .time_constrained()
        .join_blocking(&rti)
        .unwrap();
    observer.subscribe(&["Decay.State.x"]).unwrap();
    let connector = Connector::from(rti.clone());
    let adapter = thread::spawn(move || fedtwin_fmi::run(&config, connector));
    // Advance only once the adapter regulates, or the observer would be granted the end at
    // once and the adapter would join after it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while observer.galt().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the adapter never joined"
        );
        thread::sleep(std::time::Duration::from_millis(1));
    }
    let end = SimTime::from_secs(1).unwrap();
    let mut last = None;
    while observer.time() < end {
        let grant = observer.next_event(end).unwrap();
        for reflection in grant.reflections() {
            let x: f64 = reflection.values.get("x").unwrap();
            last = Some((reflection.timestamp, x));
        }
    }
    let summary = adapter.join().unwrap().unwrap();
    assert_eq!(
        last,
        Some((
            Some(SimTime::from_millis(600).unwrap()),
            summary.outputs[0].1
        ))
    );
    observer.resign().unwrap();
}

#[test]
fn an_fmu_error_ends_the_run_with_its_message() {
    let rti = EmbeddedRti::start().unwrap();
    let config = config(&dahlquist_config(TestModel::Faulty, "100ms", "1s"));
    let error = fedtwin_fmi::run(&config, Connector::from(rti.clone())).unwrap_err();
    assert!(matches!(error, AdapterError::Fmu { .. }), "{error}");
    assert!(
        error.to_string().contains("simulated solver failure"),
        "{error}"
    );
    let again = Federate::builder("faulty", "faulty")
        .create_federation(config.object_model())
        .join_blocking(&rti)
        .unwrap();
    again.resign().unwrap();
}

fn resolve_error(text: &str) -> String {
    let config = config(text);
    let fmu = Fmu::open(&config.fmu).unwrap();
    let error = config.resolve(fmu.description()).unwrap_err();
    assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");
    error.to_string()
}

#[test]
fn mapping_errors_name_the_line_and_the_variable() {
    let [mass, _] = oscillator("errors", "1ms", "1s", false);
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let text = mass.replace("variable = \"x\"", "variable = \"position\"");
    let line = line_of(&text, "\"position\"");
    let message = resolve_error(&text);
    assert!(message.contains(&format!("line {line}:")), "{message}");
    assert!(
        message.contains("`position` is not a variable of oscillator_mass.fmu"),
        "{message}"
    );

    let text = mass.replace("variable = \"x\"", "variable = \"force\"");
    let line = line_of(&text, "variable = \"force\"");
    let message = resolve_error(&text);
    assert!(
        message.contains(&format!(
            "line {line}: `force` is an input of oscillator_mass.fmu; only outputs can be \
             published"
        )),
        "{message}"
    );

    let text = mass.replace(
        "attribute = \"Spring.State.force\"\nvariable = \"force\"",
        "attribute = \"Spring.State.force\"\nvariable = \"v\"",
    );
    let line = text
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.contains("variable = \"v\""))
        .unwrap()
        + 1;
    let message = resolve_error(&text);
    assert!(
        message.contains("`v` is an output of oscillator_mass.fmu"),
        "{message}"
    );
    assert!(message.contains(&format!("line {line}:")), "{message}");

    let text = mass.replace("mass = 1.0", "mass = 1.0\nweight = 2.0");
    let message = resolve_error(&text);
    assert!(message.contains("`weight` is not a variable"), "{message}");
}

/// Two counters: `a` counts 1 per step and publishes its Integer `count` and Boolean `odd`;
/// `b` adds `a`'s count whenever `a`'s count is odd (`increment` and `enabled`, Integer and
/// Boolean inputs). `extra` is appended to `b`'s file.
fn counters(federation: &str, b_extra: &str) -> [String; 2] {
    let fmu = packed(TestModel::Counter);
    let common = |instance: &str| {
        format!(
            r#"fmu = "{}"
instance = "{instance}"
federation = "{federation}"
expect = ["a", "b"]

[experiment]
stop = "10ms"

[step]
size = "1ms"

[[object_class]]
name = "A.State"
attributes = ["count", "odd"]

[[object_class]]
name = "B.State"
attributes = ["count"]
"#,
            fmu.display()
        )
    };
    [
        format!(
            r#"{}
[[publish]]
variable = "count"
attribute = "A.State.count"

[[publish]]
variable = "odd"
attribute = "A.State.odd"
"#,
            common("a")
        ),
        format!(
            r#"{}
[[publish]]
variable = "count"
attribute = "B.State.count"

[[subscribe]]
attribute = "A.State.count"
variable = "increment"

[[subscribe]]
attribute = "A.State.odd"
variable = "enabled"
{b_extra}"#,
            common("b")
        ),
    ]
}

/// The message of the [`AdapterError::UnfitInput`] a run ended with; any other end fails.
fn unfit_input(result: Result<RunSummary, AdapterError>) -> String {
    let error = result.unwrap_err();
    assert!(
        matches!(error, AdapterError::UnfitInput { .. }),
        "{error:?}"
    );
    error.to_string()
}

/// Runs `a` and `b` on one embedded RTI; returns both results and `b`'s trace.
fn run_counters(
    texts: &[String; 2],
) -> (
    Result<RunSummary, AdapterError>,
    Result<RunSummary, AdapterError>,
    Trace,
) {
    let rti = Connector::from(EmbeddedRti::start().unwrap());
    let a = config(&texts[0]);
    let a_rti = rti.clone();
    let a = thread::spawn(move || fedtwin_fmi::run(&a, a_rti));
    let mut trace = Vec::new();
    let b = fedtwin_fmi::run_with(&config(&texts[1]), rti, |t, y| trace.push((t, y.to_vec())));
    (a.join().unwrap(), b, trace)
}

#[test]
fn integer_and_boolean_variables_travel_as_whole_numbers_and_zero_or_one() {
    let (a, b, trace) = run_counters(&counters("counters", ""));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.outputs,
        [("count".to_owned(), 10.0), ("odd".to_owned(), 0.0)]
    );
    // Jacobi: the step from k ms sees `a`'s count k, and counts it when k is odd.
    let mut expected = vec![0.0];
    for k in 0..10 {
        let last = expected[expected.len() - 1];
        expected.push(if k % 2 == 1 {
            last + f64::from(k)
        } else {
            last
        });
    }
    let got: Vec<f64> = trace.iter().map(|(_, y)| y[0]).collect();
    assert_eq!(got, expected);
    assert_eq!(b.outputs, [("count".to_owned(), 25.0)]);
}

#[test]
fn a_value_an_integer_or_boolean_input_cannot_hold_is_refused_by_name() {
    // `a` is the Dahlquist FMU: its Real `x` = exp(-t) is whole only at the start, and goes
    // into `b`'s Integer input `increment`.
    let [a, b] = counters("unfit", "");
    let decay = a
        .replace(
            &packed(TestModel::Counter).display().to_string(),
            &packed(TestModel::Dahlquist).display().to_string(),
        )
        .replace(
            "variable = \"count\"\nattribute = \"A.State.count\"",
            "variable = \"x\"\nattribute = \"A.State.count\"",
        )
        .replace(
            "variable = \"odd\"\nattribute = \"A.State.odd\"",
            "variable = \"x\"\nattribute = \"A.State.odd\"",
        );
    let (a, b, _) = run_counters(&[decay, b]);
    let message = unfit_input(b);
    assert!(
        message.contains("FMU `b`: attribute `A.State.count` = 0.99")
            && message.contains(
                "cannot go into its Integer input `increment`, which takes whole \
                 numbers"
            ),
        "{message}"
    );
    // `b` resigned on the error: `a` runs to its stop time alone.
    assert_eq!(a.unwrap().steps, 10);

    // A start value the input cannot hold is a configuration error naming its line.
    let [_, b] = counters("start", "start = 2.5\n");
    let message = resolve_error(&b);
    let line = b
        .lines()
        .position(|l| l == "variable = \"enabled\"")
        .unwrap()
        + 1;
    assert!(
        message.contains(&format!("line {line}:"))
            && message.contains(
                "`enabled` is a Boolean input of counter.fmu and takes 0 (false) \
                 or 1 (true); its start 2.5 does not fit"
            ),
        "{message}"
    );
}

/// One counter alone, with `parameters` as its `[parameters]` table.
fn lone_counter(parameters: &str) -> String {
    format!(
        r#"fmu = "{}"
instance = "lone"
federation = "lone-counter"

[experiment]
stop = "10ms"

[step]
size = "1ms"

[parameters]
{parameters}

[[publish]]
variable = "count"
attribute = "Counter.State.count"

[[publish]]
variable = "label_length"
attribute = "Counter.State.label_length"
"#,
        packed(TestModel::Counter).display()
    )
}

#[test]
fn parameters_take_strings_booleans_and_numbers_by_the_variable_type() {
    let outputs = |parameters: &str| {
        run_alone(&config(&lone_counter(parameters)))
            .unwrap()
            .0
            .outputs
    };
    let out = |count: f64, length: f64| {
        vec![
            ("count".to_owned(), count),
            ("label_length".to_owned(), length),
        ]
    };
    // The FMU's own start values: label "counter", enabled, increment 1.
    assert_eq!(outputs(""), out(10.0, 7.0));
    // A String parameter (not ASCII: characters, not bytes, are counted), an Integer input's
    // start value and a Boolean given as TOML's `true`.
    let set = "label = \"Zähler ✓\"\nincrement = 3\nenabled = true";
    assert_eq!(outputs(set), out(30.0, 8.0));
    // 0/1 for a Boolean still works; `false` stops the count.
    assert_eq!(outputs("enabled = 0"), out(0.0, 7.0));
    assert_eq!(outputs("enabled = false\nlabel = \"\""), out(0.0, 0.0));
}

#[test]
fn a_parameter_of_the_wrong_type_is_refused_naming_variable_type_and_line() {
    let cases = [
        (
            "label = 3",
            "`label` is a String variable of counter.fmu and takes a string, in quotes; 3 \
             does not fit",
        ),
        (
            "enabled = \"yes\"",
            "`enabled` is a Boolean variable of counter.fmu and takes true or false (or 1 or \
             0); \"yes\" does not fit",
        ),
        (
            "enabled = 2",
            "`enabled` is a Boolean variable of counter.fmu and takes true or false (or 1 or \
             0); 2 does not fit",
        ),
        (
            "increment = true",
            "`increment` is an Integer variable of counter.fmu and takes a whole number",
        ),
        (
            "increment = 2.5",
            "`increment` is an Integer variable of counter.fmu and takes whole numbers",
        ),
        (
            "label = \"a\\u0000b\"",
            "takes a string without NUL characters",
        ),
    ];
    for (parameter, expected) in cases {
        let text = lone_counter(parameter);
        let line = text.lines().position(|l| l == parameter).unwrap() + 1;
        let message = resolve_error(&text);
        assert!(
            message.contains(expected) && message.contains(&format!("line {line}:")),
            "{parameter}: {message}"
        );
    }
}

/// A writer into a shared buffer, for capturing log output.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `run` returns, and what was logged on this thread meanwhile (debug and above).
fn logged<T>(run: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, run);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (result, log)
}

/// Runs `text` (a lone FMU's file) with the FMU's logging on; the summary and the log.
fn run_logged(text: &str) -> (RunSummary, String) {
    let text = text.replace(
        "federation = \"lone-counter\"",
        "federation = \"lone-counter\"\nfmu_logging = true",
    );
    let (run, log) = logged(|| run_alone(&config(&text)));
    (run.unwrap().0, log)
}

/// The adapter ends a completed run with fmi2Terminate, so an FMU can finish its work (flush
/// files, close connections) before it is freed.
#[test]
fn a_finished_run_terminates_the_fmu() {
    let (summary, log) = run_logged(&lone_counter(""));
    assert_eq!(summary.steps, 10);
    assert!(log.contains("fmi2Terminate: simulation over"), "{log}");
}

/// A stop asked for while the adapter waits at the start barrier for a partner that never
/// comes ends the wait at once, as an interruption, whether the step is given or chosen there.
#[test]
fn a_stop_at_the_start_barrier_ends_the_wait() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let waiting = lone_counter("").replace(
        "federation = \"lone-counter\"",
        "federation = \"lone-barrier\"\nfmu_logging = true\nexpect = [\"lone\", \"ghost\"]",
    );
    let chosen_there = waiting.replace("[step]\nsize = \"1ms\"\n", "");
    assert_ne!(waiting, chosen_there);
    // With its step given, the FMU was initialized before the barrier: it is terminated.
    for (text, initialized) in [(waiting, true), (chosen_there, false)] {
        let stop = Arc::new(AtomicBool::new(false));
        let setter = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                thread::sleep(std::time::Duration::from_millis(200));
                stop.store(true, Ordering::SeqCst);
            }
        });
        let rti = Connector::from(EmbeddedRti::start().unwrap());
        let (run, log) = logged(|| fedtwin_fmi::run_until(&config(&text), rti, |_, _| {}, &stop));
        setter.join().unwrap();
        let error = run.unwrap_err();
        assert!(matches!(error, AdapterError::Interrupted { .. }), "{error}");
        assert_eq!(
            log.contains("fmi2Terminate: simulation over"),
            initialized,
            "{log}"
        );
    }
}

/// The FMU's solver gets the tolerance the file sets, else the one its DefaultExperiment
/// suggests (the counter suggests 1e-4 and logs what it was given).
#[test]
fn the_fmu_is_set_up_with_the_configured_or_suggested_tolerance() {
    let (_, log) = run_logged(&lone_counter(""));
    assert!(log.contains("fmi2SetupExperiment: tolerance 1e-4"), "{log}");
    let text = lone_counter("").replace("stop = \"10ms\"", "stop = \"10ms\"\ntolerance = 2.5e-7");
    let (_, log) = run_logged(&text);
    assert!(
        log.contains("fmi2SetupExperiment: tolerance 2.5e-7"),
        "{log}"
    );
}

/// What the file does not say comes from the FMU's DefaultExperiment (the counter suggests 0 s
/// to 1 s in steps of 10 ms); what it says wins.
#[test]
fn the_fmus_default_experiment_fills_what_the_file_leaves_out() {
    let text = lone_counter("")
        .replace("[experiment]\nstop = \"10ms\"\n", "")
        .replace("[step]\nsize = \"1ms\"\n", "");
    assert!(
        !text.contains("[experiment]") && !text.contains("[step]"),
        "{text}"
    );
    let (summary, _) = run_alone(&config(&text)).unwrap();
    assert_eq!(
        (summary.steps, summary.step, summary.final_time),
        (
            100,
            SimDuration::from_millis(10).unwrap(),
            SimTime::from_secs(1).unwrap()
        )
    );
    let text = text.replace(
        "[parameters]",
        "[experiment]\nstop = \"50ms\"\n\n[parameters]",
    );
    let (summary, _) = run_alone(&config(&text)).unwrap();
    assert_eq!(summary.steps, 5);
}

/// A partner that stops (here an FMU that terminates early and resigns) takes its object with
/// it; the FMU fed by it goes on with the last values and says so.
#[test]
fn an_fmu_whose_partner_leaves_warns_that_its_inputs_hold() {
    let decay = dahlquist_config(TestModel::TerminateEarly, "100ms", "1s").replace(
        "federation = \"terminate_early\"",
        "federation = \"partner-leaves\"\nexpect = [\"terminate_early\", \"mass\"]",
    );
    let [mass, _] = oscillator("partner-leaves", "100ms", "1s", false);
    let mass = without_classes(&mass)
        .replace(
            "expect = [\"mass\", \"spring\"]",
            "expect = [\"terminate_early\", \"mass\"]",
        )
        .replace(
            "attribute = \"Spring.State.force\"",
            "attribute = \"Decay.State.x\"",
        );
    let rti = Connector::from(EmbeddedRti::start().unwrap());
    let decay = config(&decay);
    let decay_rti = rti.clone();
    let decay = thread::spawn(move || fedtwin_fmi::run(&decay, decay_rti));
    let (mass, log) = logged(|| fedtwin_fmi::run(&config(&mass), rti));
    let mass = mass.unwrap();
    assert_eq!(decay.join().unwrap().unwrap().steps, 5);
    assert_eq!(mass.steps, 10);
    assert!(
        log.contains("an object this FMU's inputs come from is gone"),
        "{log}"
    );
}

/// A reflected value above an input's `max` (the counter's `increment` takes at most 1000)
/// ends the run naming the attribute, the value and the range, before the FMU computes with it.
#[test]
fn a_reflected_value_outside_an_inputs_range_is_refused_by_name() {
    let [a, b] = counters("range", "");
    // `a` counts 600 per step: its second count, 1200, is too large for `b`'s increment.
    let a = a.replacen(
        "\n[[publish]]",
        "\n[parameters]\nincrement = 600\n\n[[publish]]",
        1,
    );
    let (a, b, _) = run_counters(&[a, b]);
    let message = unfit_input(b);
    assert!(
        message.contains("attribute `A.State.count` = 1200")
            && message.contains("Integer input `increment`, which takes values of at most 1000"),
        "{message}"
    );
    assert_eq!(a.unwrap().steps, 10);
}
