//! `pack <dir> [model...]`: writes each named test model (all of them when none is named) as
//! `<dir>/<model>.fmu`.

use std::path::PathBuf;
use std::process::ExitCode;

use fedtwin_test_fmus::{TestModel, pack};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!(
            "usage: pack <dir> [model...]   (writes <dir>/<model>.fmu; every model when none is \
             named)"
        );
        return ExitCode::from(2);
    };
    let mut models = Vec::new();
    for name in args {
        let found = name.to_str().and_then(TestModel::from_name);
        let Some(model) = found else {
            let known: Vec<&str> = TestModel::ALL.iter().map(|m| m.name()).collect();
            eprintln!(
                "error: no test model {}; the models are {}",
                name.to_string_lossy(),
                known.join(", ")
            );
            return ExitCode::from(2);
        };
        models.push(model);
    }
    if models.is_empty() {
        models = TestModel::ALL.to_vec();
    }
    for model in models {
        match pack(model, &dir) {
            Ok(path) => println!("{}", path.display()),
            Err(error) => {
                eprintln!("error: {model}: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
