//! Compiles the C shim that formats the FMU's variadic log messages (src/logger.c).

fn main() {
    println!("cargo:rerun-if-changed=src/logger.c");
    cc::Build::new()
        .file("src/logger.c")
        .warnings(true)
        .extra_warnings(true)
        .compile("fedtwin_fmi_logger");
}
