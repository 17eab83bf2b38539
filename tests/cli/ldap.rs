//! Integration tests of the `ldap` probe against the real OpenLDAP (Debian's `slapd` 2.5),
//! run by each test with a configuration of its own: plain LDAP with StartTLS on one
//! port, LDAPS on another.

use std::process::Command;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, free_port, in_path, server_dir};
use crate::support::{closed_port, healthprobe};

const ADMIN: &str = "cn=admin,dc=test";
const PASSWORD: &str = "s3cret-ldap";

/// slapd with the suffix `dc=test` (no entries; `ADMIN` is its root DN) on a free port
/// (LDAP, with StartTLS) and the port returned (LDAPS). `None` (skip) without slapd.
fn slapd(pki: &crate::tls::Pki) -> Option<(Server, u16)> {
    let bin = find_binary("slapd", &in_path("slapd"))?;
    let dir = server_dir();
    let db = dir.path().join("db");
    std::fs::create_dir(&db).unwrap();
    let config = dir.path().join("slapd.conf");
    std::fs::write(
        &config,
        format!(
            "include /etc/ldap/schema/core.schema\npidfile {}\nmodulepath /usr/lib/ldap\n\
             moduleload back_mdb\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n\
             database mdb\nsuffix \"dc=test\"\nrootdn \"{ADMIN}\"\nrootpw {PASSWORD}\n\
             directory {}\n",
            dir.path().join("slapd.pid").display(),
            pki.server.cert.display(),
            pki.server.key.display(),
            db.display()
        ),
    )
    .unwrap();
    let ldaps = Arc::new(Mutex::new(0));
    let chosen = ldaps.clone();
    let server = Server::start(dir, Signal::SIGTERM, move |port| {
        let other = free_port();
        *chosen.lock().unwrap() = other;
        let mut cmd = Command::new(&bin);
        cmd.args(["-d", "0", "-f"])
            .arg(&config)
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{other}/"
            ));
        cmd
    });
    let port = *ldaps.lock().unwrap();
    Some((server, port))
}

fn run(address: &str, args: &[&str], trust: &[String]) -> crate::support::Outcome {
    let mut all = vec![
        "run".to_string(),
        "ldap".into(),
        format!("address={address}"),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(trust.iter().cloned());
    healthprobe(&all)
}

#[test]
fn ldap_binds_searches_and_speaks_tls() {
    let pki = crate::tls::Pki::new();
    let Some((server, ldaps)) = slapd(&pki) else {
        return;
    };
    let addr = server.address();
    let ca = pki.trust();
    let (dn, password) = (format!("bind-dn={ADMIN}"), format!("password={PASSWORD}"));
    run(&addr, &[], &[]).expect(0, "healthy: ldap: bound to ", &["anonymously"]);
    run(&addr, &[&dn, &password, "base="], &[]).expect(
        0,
        "healthy: ldap: ",
        &[&format!("as {ADMIN}, read the root DSE")],
    );
    run(&addr, &[&dn, "password=wrong"], &[]).expect(
        1,
        "unhealthy: ldap: the bind at ",
        &["failed: invalidCredentials (49)"],
    );
    run(&addr, &["base=dc=nosuch"], &[]).expect(
        1,
        "unhealthy: ldap: the search at ",
        &["failed: noSuchObject (32)"],
    );
    // StartTLS with the operator's CA, and without it.
    run(
        &addr,
        &["tls=require", &dn, &password, "--format=json"],
        &ca,
    )
    .expect(
        0,
        "{",
        &["over TLS", "\"tls\":true", "\"ssl-earliest-cert-expiry\":"],
    );
    run(&addr, &["tls=require"], &[]).expect(
        1,
        "unhealthy: ldap: ",
        &["unknown issuer", "--tls-ca"],
    );
    // LDAPS: TLS from the first byte.
    let ldaps = format!("127.0.0.1:{ldaps}");
    run(&ldaps, &["implicit-tls=true", &dn, &password], &ca).expect(
        0,
        "healthy: ldap: ",
        &["over TLS"],
    );
}

#[test]
fn ldap_down_hung_and_wrong_service_are_unhealthy() {
    run(&closed_port().to_string(), &[], &[]).expect(1, "unhealthy: ldap: ", &["refused"]);
    let pki = crate::tls::Pki::new();
    if let Some((server, _)) = slapd(&pki) {
        server.pause();
        run(&server.address(), &["--timeout", "2s"], &[]).expect(
            1,
            "unhealthy: ldap: ",
            &["timeout", "waiting for the bind"],
        );
    }
    if let Some(nats) = crate::nats::nats_server(&[]) {
        run(&nats.address(), &[], &[]).expect(
            1,
            "unhealthy: ldap: ",
            &[
                "expected an LDAP message",
                "\"INFO {",
                "is this an LDAP server?",
            ],
        );
    }
}
