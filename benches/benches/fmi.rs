//! Overhead of the FMU adapter per communication step, over a direct `fmi2DoStep`.
//!
//! * `direct_do_step`: one `do_step` of the Dahlquist test FMU plus one `get_real` of its
//!   output, on an instance kept across iterations.
//! * `adapter_run/<n>`: a whole `fedtwin_fmi::run` of the same FMU alone on an embedded RTI for
//!   `n` steps of 1 ms: open the archive, instantiate, join, and per step set inputs, `do_step`,
//!   get outputs, update the attribute and advance (TAR and grant). Criterion reports the time
//!   per step (throughput in elements); the difference between `n = 2000` and `n = 1` divided by
//!   1999 is the per-step cost, and that minus `direct_do_step` is the adapter's overhead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use federate_sdk::{Connector, EmbeddedRti};
use fedtwin_fmi::{AdapterConfig, Fmu, Instance};
use fedtwin_test_fmus::{TestModel, vr};

fn packed() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fedtwin-fmi-bench-{}", std::process::id()));
    fedtwin_test_fmus::pack(TestModel::Dahlquist, &dir).expect("pack the Dahlquist FMU")
}

fn config(fmu: &Path, steps: u32) -> AdapterConfig {
    let text = format!(
        r#"fmu = "{}"
instance = "dahlquist"
federation = "bench"

[experiment]
stop = "{steps}ms"

[step]
size = "1ms"
min = "1us"

[[publish]]
variable = "x"
attribute = "Decay.State.x"
"#,
        fmu.display()
    );
    AdapterConfig::parse(&text, "bench.toml", Path::new("")).expect("valid configuration")
}

fn bench(c: &mut Criterion) {
    let fmu_path = packed();
    let mut group = c.benchmark_group("fmi");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let fmu = Fmu::open(&fmu_path).expect("open");
    let mut instance = Instance::new(&fmu, "direct", false).expect("instantiate");
    instance.setup_experiment(None, 0.0, None).expect("setup");
    instance.enter_initialization_mode().expect("init");
    instance.exit_initialization_mode().expect("init");
    let mut time = 0.0;
    group.throughput(Throughput::Elements(1));
    group.bench_function("direct_do_step", |b| {
        b.iter(|| {
            instance.do_step(time, 1e-3).expect("step");
            time += 1e-3;
            instance.get_real(&[vr::dahlquist::X]).expect("x")[0]
        })
    });

    for steps in [1, 2000] {
        let config = config(&fmu_path, steps);
        group.throughput(Throughput::Elements(u64::from(steps)));
        group.bench_function(format!("adapter_run/{steps}"), |b| {
            b.iter(|| {
                let rti = EmbeddedRti::start().expect("embedded RTI");
                fedtwin_fmi::run(&config, Connector::from(rti)).expect("run")
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(fmu_path.parent().unwrap_or(Path::new("")));
}

criterion_group!(benches, bench);
criterion_main!(benches);
