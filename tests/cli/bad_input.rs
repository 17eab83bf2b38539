//! Bad input: exit 3 (never 2) with a message that says what was wrong.

use crate::support::{guest, healthprobe, temp_file};

#[test]
fn missing_file_is_exit_3() {
    healthprobe(["run", "/nonexistent/probe.wasm"]).expect(
        3,
        "error: ",
        &["cannot read", "/nonexistent/probe.wasm"],
    );
}

#[test]
fn unknown_bundled_name_is_exit_3() {
    healthprobe(["run", "nosuchprobe"]).expect(
        3,
        "error: ",
        &["unknown probe 'nosuchprobe'", "http", "tcp"],
    );
}

#[test]
fn corrupt_bytes_are_exit_3() {
    let (_d, path) = temp_file("corrupt.wasm", b"\0asm\x0d\0\x01\0garbage-garbage-garbage");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["not a valid WebAssembly component"],
    );
    let (_d, path) = temp_file("text.wasm", b"#!/bin/sh\necho hi\n");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["not a WebAssembly file"],
    );
}

#[test]
fn core_module_is_exit_3() {
    // The smallest valid core module: magic and version 1, no sections.
    let (_d, path) = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["core WebAssembly module, not a component"],
    );
}

#[test]
fn component_of_another_world_is_exit_3() {
    let wasm = guest("other-world");
    healthprobe(["run".as_ref(), wasm.as_os_str()]).expect(
        3,
        "error: ",
        &["not a healthprobe probe"],
    );
}

#[test]
fn component_importing_an_interface_the_host_lacks_is_exit_3() {
    let wasm = guest("bad-import");
    healthprobe(["run".as_ref(), wasm.as_os_str()]).expect(
        3,
        "error: ",
        &["cannot be linked", "test:missing/api"],
    );
    let out = healthprobe(["inspect".as_ref(), wasm.as_os_str()]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(
        out.stdout.contains("test:missing/api@0.1.0  NOT PROVIDED"),
        "{out:#?}"
    );
}

#[test]
fn unknown_parameter_is_exit_3_and_lists_the_known_ones() {
    healthprobe(["run", "http", "url=http://127.0.0.1:1/", "colour=blue"]).expect(
        3,
        "error: http: ",
        &["unknown parameter 'colour'", "url", "expect-status"],
    );
}

#[test]
fn missing_required_parameter_is_exit_3() {
    healthprobe(["run", "http"]).expect(3, "error: http: ", &["missing required parameter 'url'"]);
}

#[test]
fn malformed_parameter_value_is_exit_3() {
    healthprobe([
        "run",
        "http",
        "url=http://127.0.0.1:1/",
        "expect-status=abc",
    ])
    .expect(3, "error: http: ", &["expect-status"]);
    healthprobe(["run", "http", "url"]).expect(3, "error: ", &["KEY=VALUE"]);
}

#[test]
fn usage_errors_are_exit_3_not_2() {
    healthprobe(["run", "http", "--timeout", "soon"]).expect(3, "error: ", &["--timeout"]);
    healthprobe(["frobnicate"]).expect(3, "error: ", &["frobnicate"]);
    let help = healthprobe(["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("run"));
}
