//! Integration tests of the `dns` probe. Only names from /etc/hosts (`localhost`) are
//! resolved, and a name that is not granted is refused by the host before any query, so
//! no test needs the Internet.

use crate::support::healthprobe;

#[test]
fn dns_localhost_is_healthy() {
    healthprobe(["run", "dns", "name=localhost"]).expect(
        0,
        "healthy: dns: localhost resolved to ",
        &["127.0.0.1"],
    );
}

#[test]
fn dns_expected_address_is_healthy() {
    healthprobe(["run", "dns", "name=localhost", "expect=127.0.0.1"]).expect(
        0,
        "healthy: dns: ",
        &["including the expected 127.0.0.1"],
    );
}

#[test]
fn dns_missing_expected_address_is_unhealthy_and_lists_what_was_found() {
    healthprobe([
        "run",
        "dns",
        "name=localhost",
        "expect=127.0.0.1",
        "expect=10.9.8.7",
    ])
    .expect(
        1,
        "unhealthy: dns: ",
        &[
            "localhost resolved to 127.0.0.1",
            "not to the expected 10.9.8.7",
        ],
    );
}

#[test]
fn dns_name_not_granted_is_denied_with_the_flag() {
    // `.invalid` never resolves anyway (RFC 6761), should the policy ever let it through.
    let name = "healthprobe-test.invalid";
    healthprobe(["run", "dns", &format!("name={name}")]).expect(
        1,
        "unhealthy: dns: ",
        &["denied", &format!("--allow-net {name}")],
    );
}

#[test]
fn dns_bad_expect_is_exit_3() {
    healthprobe(["run", "dns", "name=localhost", "expect=not-an-ip"]).expect(
        3,
        "error: dns: ",
        &["expect", "IP address"],
    );
}

#[test]
fn dns_bad_name_is_exit_3() {
    healthprobe(["run", "dns", "name=http://localhost/"]).expect(
        3,
        "error: dns: ",
        &["name", "host name"],
    );
}
