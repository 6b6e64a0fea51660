//! Running the `medtune` binary from the integration tests.
// Each test file uses the part it needs.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn medtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(args)
        .output()
        .expect("run medtune")
}

/// Runs `medtune args`, requires success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = medtune(args);
    assert!(
        out.status.success(),
        "medtune {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
