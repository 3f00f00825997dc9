//! The loader against real FMUs: the `fedtwin-test-fmus` models, packed into `.fmu` archives
//! around their compiled shared library, and hand-made broken archives.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use fedtwin_core::SimTime;
use fedtwin_fmi::model_description::Causality;
use fedtwin_fmi::{FmiError, Fmu, Instance, Status, StepOutcome, to_sim_time};
use fedtwin_test_fmus::{MODEL_IDENTIFIER, TestModel, vr};

fn scratch() -> &'static Path {
    common::scratch("fedtwin-fmi-tests")
}

fn packed(model: TestModel) -> PathBuf {
    common::packed(model, scratch())
}

/// An instance of `model`, initialized for a run from 0 to 1 s.
fn running(fmu: &Fmu, name: &str) -> Instance {
    let mut instance = Instance::new(fmu, name, true).unwrap();
    instance.setup_experiment(None, 0.0, Some(1.0)).unwrap();
    instance.enter_initialization_mode().unwrap();
    instance.exit_initialization_mode().unwrap();
    instance
}

/// A zip archive at `path` with the given entries.
fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn dahlquist_steps_to_the_exact_solution() {
    let fmu = Fmu::open(&packed(TestModel::Dahlquist)).unwrap();
    let description = fmu.description();
    assert_eq!(description.model_name, TestModel::Dahlquist.name());
    assert_eq!(description.guid, TestModel::Dahlquist.guid());
    assert_eq!(description.co_simulation.model_identifier, MODEL_IDENTIFIER);
    let x = description.variable("x").unwrap();
    assert_eq!(x.value_reference, vr::dahlquist::X);
    assert_eq!(x.causality, Causality::Output);
    assert_eq!(description.outputs, [vr::dahlquist::X as usize]);
    assert!(fmu.library_path().starts_with(fmu.directory()));
    assert!(fmu.resource_location().starts_with("file:///"));

    let mut instance = running(&fmu, "dahlquist");
    instance
        .set_debug_logging(true, &["logStatusError"])
        .unwrap();
    let h = 0.01;
    for i in 0..100 {
        let outcome = instance.do_step(f64::from(i) * h, h).unwrap();
        assert_eq!(outcome, StepOutcome::Completed, "step {i}");
    }
    let x = instance.get_real(&[vr::dahlquist::X]).unwrap()[0];
    let exact = (-1.0f64).exp();
    assert!((x - exact).abs() < 1e-6, "x(1) = {x}, exact {exact}");

    // The end time, converted once at the boundary, is exactly one second of ticks.
    assert_eq!(
        to_sim_time(99.0 * h + h).unwrap(),
        SimTime::from_secs(1).unwrap()
    );
    instance.terminate().unwrap();
}

#[test]
fn a_discarded_step_is_retried_from_a_saved_state() {
    let fmu = Fmu::open(&packed(TestModel::DiscardAbove)).unwrap();
    let mut instance = running(&fmu, "discard");
    let saved = instance.get_state().unwrap();

    assert_eq!(instance.do_step(0.0, 0.02).unwrap(), StepOutcome::Discarded);
    // FMI forbids stepping on after a discard: the instance says so instead of calling the FMU.
    let err = instance.do_step(0.0, 0.005).unwrap_err();
    assert!(
        matches!(
            err,
            FmiError::InvalidCall {
                function: "fmi2DoStep",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("set_state"), "{err}");

    instance.set_state(&saved).unwrap();
    for i in 0..4 {
        let outcome = instance.do_step(f64::from(i) * 0.005, 0.005).unwrap();
        assert_eq!(outcome, StepOutcome::Completed, "retry step {i}");
    }
    let x = instance.get_real(&[vr::discard_above::X]).unwrap()[0];
    assert!((x - (-0.02f64).exp()).abs() < 1e-6, "x(0.02) = {x}");

    instance.free_state(saved).unwrap();
}

#[test]
fn an_fmu_that_stops_reports_terminated() {
    let fmu = Fmu::open(&packed(TestModel::TerminateEarly)).unwrap();
    let mut instance = running(&fmu, "terminate");
    assert_eq!(instance.do_step(0.0, 0.2).unwrap(), StepOutcome::Completed);
    assert_eq!(instance.do_step(0.2, 0.2).unwrap(), StepOutcome::Completed);
    assert_eq!(instance.do_step(0.4, 0.2).unwrap(), StepOutcome::Terminated);
    let stopped_at = instance.last_successful_time().unwrap();
    assert!((stopped_at - 0.5).abs() < 1e-9, "stopped at {stopped_at}");
    assert_eq!(
        to_sim_time(stopped_at).unwrap(),
        SimTime::from_millis(500).unwrap()
    );

    let err = instance.do_step(stopped_at, 0.1).unwrap_err();
    assert!(matches!(err, FmiError::InvalidCall { .. }), "{err}");
    let x = instance.get_real(&[vr::terminate_early::X]).unwrap()[0];
    assert!((x - (-0.5f64).exp()).abs() < 1e-6, "x(0.5) = {x}");
    instance.terminate().unwrap();
}

#[test]
fn a_failing_fmu_is_quoted() {
    let fmu = Fmu::open(&packed(TestModel::Faulty)).unwrap();
    // Without logging: the FMU reports errors all the same.
    let mut instance = Instance::new(&fmu, "faulty", false).unwrap();
    instance.setup_experiment(None, 0.0, Some(1.0)).unwrap();
    instance.enter_initialization_mode().unwrap();
    instance.exit_initialization_mode().unwrap();
    for i in 0..3 {
        assert_eq!(
            instance.do_step(f64::from(i) * 0.1, 0.1).unwrap(),
            StepOutcome::Completed
        );
    }

    let err = instance.do_step(0.3, 0.1).unwrap_err();
    match &err {
        FmiError::Failed {
            function,
            status,
            message,
        } => {
            assert_eq!(*function, "fmi2DoStep");
            assert_eq!(*status, Status::Error);
            let message = message.as_deref().unwrap_or_default();
            assert!(message.contains("simulated solver failure"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("the FMU says \"fmi2DoStep: simulated solver failure"),
        "{err}"
    );
    let kept = instance.last_error_message().unwrap_or_default();
    assert!(kept.contains("simulated solver failure"), "{kept}");

    // After fmi2Error: values can still be read, steps are refused before reaching the FMU.
    let _ = instance.get_real(&[vr::faulty::X]).unwrap();
    let err = instance.do_step(0.3, 0.1).unwrap_err();
    assert!(matches!(err, FmiError::InvalidCall { .. }), "{err}");
    assert!(err.to_string().contains("fmi2Error"), "{err}");

    // fmi2Reset brings it back.
    instance.reset().unwrap();
    instance.setup_experiment(None, 0.0, Some(1.0)).unwrap();
}

#[test]
fn a_panic_inside_the_fmu_is_fatal() {
    let fmu = Fmu::open(&packed(TestModel::Faulty)).unwrap();
    let mut instance = running(&fmu, "panic");
    instance
        .set_integer(&[vr::faulty::PANIC_NOW], &[1])
        .unwrap();
    let err = instance.do_step(0.0, 0.1).unwrap_err();
    assert!(
        matches!(
            err,
            FmiError::Failed {
                status: Status::Fatal,
                ..
            }
        ),
        "{err}"
    );
    // Nothing may be called anymore, not even fmi2FreeInstance: drop leaks the instance.
    let err = instance.get_real(&[vr::faulty::X]).unwrap_err();
    assert!(matches!(err, FmiError::InvalidCall { .. }), "{err}");
    drop(instance);
}

#[test]
fn calls_out_of_order_and_unknown_references_are_refused() {
    let fmu = Fmu::open(&packed(TestModel::Dahlquist)).unwrap();
    let mut instance = Instance::new(&fmu, "order", false).unwrap();
    let err = instance.do_step(0.0, 0.1).unwrap_err();
    assert!(
        matches!(
            err,
            FmiError::InvalidCall {
                function: "fmi2DoStep",
                ..
            }
        ),
        "{err}"
    );
    let err = instance.get_real(&[vr::dahlquist::X]).unwrap_err();
    assert!(matches!(err, FmiError::InvalidCall { .. }), "{err}");

    instance.setup_experiment(None, 0.0, Some(1.0)).unwrap();
    instance.enter_initialization_mode().unwrap();
    let err = instance
        .set_real(&[vr::dahlquist::K], &[1.0, 2.0])
        .unwrap_err();
    assert!(matches!(err, FmiError::InvalidArgument { .. }), "{err}");
    let err = instance.get_real(&[999]).unwrap_err();
    assert!(
        matches!(
            err,
            FmiError::UnknownValueReference {
                value_reference: 999,
                ..
            }
        ),
        "{err}"
    );
    let err = instance.get_integer(&[vr::dahlquist::X]).unwrap_err();
    assert!(
        matches!(err, FmiError::UnknownValueReference { .. }),
        "{err}"
    );
    instance.set_real(&[vr::dahlquist::K], &[-2.0]).unwrap();
    instance.exit_initialization_mode().unwrap();
    let err = instance.do_step(0.0, -0.1).unwrap_err();
    assert!(matches!(err, FmiError::InvalidArgument { .. }), "{err}");

    // A state from another instance is refused.
    let mut other = running(&fmu, "other");
    let foreign = other.get_state().unwrap();
    let err = instance.set_state(&foreign).unwrap_err();
    assert!(matches!(err, FmiError::InvalidArgument { .. }), "{err}");
}

#[test]
fn string_variables_round_trip_and_are_fixed_after_initialization() {
    use vr::counter::{LABEL, LABEL_LENGTH};
    let fmu = Fmu::open(&packed(TestModel::Counter)).unwrap();
    let mut instance = Instance::new(&fmu, "strings", false).unwrap();
    instance.setup_experiment(None, 0.0, Some(1.0)).unwrap();
    instance.enter_initialization_mode().unwrap();
    assert_eq!(instance.get_string(&[LABEL]).unwrap(), ["counter"]);
    instance.set_string(&[LABEL], &["pompe n°2"]).unwrap();
    assert_eq!(
        instance.get_string(&[LABEL, LABEL]).unwrap(),
        ["pompe n°2"; 2]
    );
    assert_eq!(instance.get_integer(&[LABEL_LENGTH]).unwrap(), [9]);
    let err = instance.set_string(&[LABEL], &["a\0b"]).unwrap_err();
    assert!(matches!(err, FmiError::InvalidArgument { .. }), "{err}");
    let err = instance.get_string(&[LABEL_LENGTH]).unwrap_err();
    assert!(
        matches!(err, FmiError::UnknownValueReference { .. }),
        "{err}"
    );
    instance.exit_initialization_mode().unwrap();
    // A fixed parameter cannot change once initialized; the FMU says so and keeps its value.
    let err = instance.set_string(&[LABEL], &["other"]).unwrap_err();
    assert!(matches!(err, FmiError::Failed { .. }), "{err}");
    assert_eq!(instance.get_string(&[LABEL]).unwrap(), ["pompe n°2"]);
}

#[test]
fn instances_move_between_threads_and_clean_up() {
    fn assert_send<T: Send>() {}
    assert_send::<Instance>();
    assert_send::<Fmu>();

    let fmu = Fmu::open(&packed(TestModel::Dahlquist)).unwrap();
    let dir = fmu.directory().to_owned();
    let mut instance = running(&fmu, "threads");
    drop(fmu);
    let x = std::thread::spawn(move || {
        instance.do_step(0.0, 0.1).unwrap();
        instance.get_real(&[vr::dahlquist::X]).unwrap()[0]
    })
    .join()
    .unwrap();
    assert!((x - (-0.1f64).exp()).abs() < 1e-6);
    assert!(
        !dir.exists(),
        "the unpacked FMU is removed with its last instance"
    );
}

#[test]
fn random_bytes_are_a_malformed_archive() {
    let path = scratch().join("random.fmu");
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let err = Fmu::open(&path).unwrap_err();
    assert!(matches!(err, FmiError::MalformedArchive { .. }), "{err:?}");
    assert!(err.to_string().contains("not a valid FMU"), "{err}");

    let err = Fmu::open(&scratch().join("missing.fmu")).unwrap_err();
    assert!(matches!(err, FmiError::Io { .. }), "{err:?}");
}

#[test]
fn an_archive_for_windows_only_has_no_binary() {
    let path = scratch().join("win64-only/dahlquist.fmu");
    let description = fedtwin_test_fmus::model_description(TestModel::Dahlquist);
    let dll = format!("binaries/win64/{MODEL_IDENTIFIER}.dll");
    write_zip(
        &path,
        &[
            ("modelDescription.xml", description.as_bytes()),
            (&dll, b"MZ not really a dll"),
            ("documentation/index.html", b"<html/>"),
        ],
    );
    let err = Fmu::open(&path).unwrap_err();
    match &err {
        FmiError::NoBinary {
            platform,
            expected_path,
            available,
        } => {
            assert_eq!(platform, fedtwin_fmi::platform().unwrap());
            assert_eq!(
                *expected_path,
                format!(
                    "binaries/{platform}/{MODEL_IDENTIFIER}{}",
                    std::env::consts::DLL_SUFFIX
                )
            );
            assert_eq!(available, &["win64"]);
        }
        other => panic!("expected NoBinary, got {other:?}"),
    }
    assert!(err.to_string().contains("binaries for: win64"), "{err}");
}

#[test]
fn zip_slip_is_refused() {
    let path = scratch().join("evil/evil.fmu");
    let escape = format!("../fedtwin-evil-{}", std::process::id());
    let description = fedtwin_test_fmus::model_description(TestModel::Dahlquist);
    write_zip(
        &path,
        &[
            ("modelDescription.xml", description.as_bytes()),
            (&escape, b"gotcha"),
        ],
    );
    let err = Fmu::open(&path).unwrap_err();
    match &err {
        FmiError::UnsafeEntry { entry, .. } => assert_eq!(*entry, escape),
        other => panic!("expected UnsafeEntry, got {other:?}"),
    }
    assert!(!std::env::temp_dir().join(&escape[3..]).exists());

    let path = scratch().join("evil/absolute.fmu");
    write_zip(
        &path,
        &[
            ("modelDescription.xml", description.as_bytes()),
            ("/tmp/fedtwin-absolute", b"gotcha"),
        ],
    );
    assert!(matches!(
        Fmu::open(&path),
        Err(FmiError::UnsafeEntry { .. })
    ));
}

/// Links that each stay inside lexically but lead out together, or entries written through a
/// link an earlier entry made, are refused; nothing lands outside the unpacked folder.
#[cfg(unix)]
#[test]
fn zip_slip_through_chained_symbolic_links_is_refused() {
    let description = fedtwin_test_fmus::model_description(TestModel::Dahlquist);
    let write = |path: &Path, links: &[(&str, &str)], files: &[&str]| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("modelDescription.xml", options).unwrap();
        zip.write_all(description.as_bytes()).unwrap();
        for (name, target) in links {
            zip.add_symlink(*name, *target, options).unwrap();
        }
        for name in files {
            zip.start_file(*name, options).unwrap();
            zip.write_all(b"gotcha").unwrap();
        }
        zip.finish().unwrap();
    };
    // A file written through `a/l` (here a link to the unpacked folder itself: a chain of
    // such links can lead anywhere, so nothing is written through a link).
    let through = scratch().join("evil/through.fmu");
    write(&through, &[("a/l", "..")], &["a/l/x/escaped"]);
    let err = Fmu::open(&through).unwrap_err();
    assert!(
        matches!(&err, FmiError::UnsafeEntry { entry, .. } if entry.contains("a/l/x/escaped")),
        "{err:?}"
    );
    // `a/m -> l/../..` stays inside as written, but `a/l` is a link to the folder itself.
    let chained = scratch().join("evil/chained.fmu");
    write(&chained, &[("a/l", ".."), ("a/m", "l/../..")], &[]);
    let err = Fmu::open(&chained).unwrap_err();
    assert!(
        matches!(&err, FmiError::UnsafeEntry { entry, .. } if entry.contains("a/m")),
        "{err:?}"
    );
    // A link inside, as versioned libraries have, is fine.
    let fine = scratch().join("evil/fine.fmu");
    write(
        &fine,
        &[("resources/current", "data")],
        &["resources/data/x"],
    );
    assert!(!matches!(
        Fmu::open(&fine),
        Err(FmiError::UnsafeEntry { .. })
    ));
}

#[test]
fn an_archive_without_description_is_no_fmu() {
    let path = scratch().join("nodescription/x.fmu");
    write_zip(&path, &[("readme.txt", b"hello")]);
    let err = Fmu::open(&path).unwrap_err();
    assert!(
        matches!(err, FmiError::MissingModelDescription { .. }),
        "{err:?}"
    );

    let path = scratch().join("baddescription/x.fmu");
    let description = fedtwin_test_fmus::model_description(TestModel::Dahlquist)
        .replace(r#"fmiVersion="2.0""#, r#"fmiVersion="3.0""#);
    write_zip(&path, &[("modelDescription.xml", description.as_bytes())]);
    let err = Fmu::open(&path).unwrap_err();
    assert!(matches!(err, FmiError::ModelDescription { .. }), "{err:?}");
    assert!(err.to_string().contains("fmiVersion=\"3.0\""), "{err}");
}
