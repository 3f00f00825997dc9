//! `pack <dir>`: writes every test model as `<dir>/<model>.fmu`.

use std::path::PathBuf;
use std::process::ExitCode;

use fedtwin_test_fmus::{TestModel, pack};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: pack <dir>   (writes one .fmu per test model into <dir>)");
        return ExitCode::from(2);
    };
    for model in TestModel::ALL {
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
