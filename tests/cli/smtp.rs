//! Integration tests of the `smtp` probe against the real Exim (Debian's
//! `exim4-daemon-light` 4.96), run by each test with a configuration of its own: a port
//! with STARTTLS and AUTH PLAIN offered only over TLS, and a port with TLS from the first
//! byte (SMTPS).

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, free_port, in_path, server_dir};
use crate::support::{closed_port, healthprobe};

const USER: &str = "monitor";
const PASSWORD: &str = "s3cret-smtp";

/// Exim listening on a free port (STARTTLS) and on the port returned (SMTPS), with the
/// test CA's server certificate. `None` (skip) when Exim is not installed.
fn exim(pki: &crate::tls::Pki) -> Option<(Server, u16)> {
    let bin = find_binary("exim", &in_path("exim"))?;
    let dir = server_dir();
    // Exim writes its spool and logs as its own user.
    let user = nix::unistd::User::from_name("Debian-exim")
        .unwrap()
        .expect("exim's user");
    for sub in ["spool", "log"] {
        let path = dir.path().join(sub);
        std::fs::create_dir(&path).unwrap();
        nix::unistd::chown(&path, Some(user.uid), Some(user.gid)).unwrap();
    }
    let root = dir.path().to_path_buf();
    let config = root.join("exim.conf");
    let (cert, key) = (pki.server.cert.clone(), pki.server.key.clone());
    let smtps = Arc::new(Mutex::new(0));
    let chosen = smtps.clone();
    let server = Server::start(dir, Signal::SIGTERM, move |port| {
        let other = free_port();
        *chosen.lock().unwrap() = other;
        std::fs::write(&config, config_text(&root, port, other, &cert, &key)).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-C").arg(&config).arg("-bdf");
        cmd
    });
    let port = *smtps.lock().unwrap();
    Some((server, port))
}

fn config_text(root: &Path, port: u16, smtps: u16, cert: &Path, key: &Path) -> String {
    format!(
        r#"primary_hostname = mail.test
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/exim.pid
keep_environment =
exim_user = Debian-exim
exim_group = Debian-exim
local_interfaces = 127.0.0.1
daemon_smtp_ports = {port} : {smtps}
tls_on_connect_ports = {smtps}
tls_advertise_hosts = *
tls_certificate = {cert}
tls_privatekey = {key}
acl_smtp_rcpt = refuse
begin acl
refuse:
  deny
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${{if and {{{{eq{{$auth2}}{{{USER}}}}}{{eq{{$auth3}}{{{PASSWORD}}}}}}}}}
  server_advertise_condition = ${{if def:tls_in_cipher}}
"#,
        root = root.display(),
        cert = cert.display(),
        key = key.display(),
    )
}

fn run(address: &str, args: &[&str], trust: &[String]) -> crate::support::Outcome {
    let mut all = vec![
        "run".to_string(),
        "smtp".into(),
        format!("address={address}"),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(trust.iter().cloned());
    healthprobe(&all)
}

#[test]
fn smtp_greeting_starttls_and_auth() {
    let pki = crate::tls::Pki::new();
    let Some((server, _)) = exim(&pki) else {
        return;
    };
    let addr = server.address();
    let ca = pki.trust();
    let (user, password) = (format!("username={USER}"), format!("password={PASSWORD}"));
    run(&addr, &[], &[]).expect(0, "healthy: smtp: 220 mail.test ESMTP Exim ", &[]);
    run(
        &addr,
        &["tls=require", &user, &password, "--format=json"],
        &ca,
    )
    .expect(
        0,
        "{",
        &[
            "over TLS, logged in",
            "\"tls\":true",
            "\"ssl-earliest-cert-expiry\":",
        ],
    );
    // prefer: STARTTLS when offered.
    run(&addr, &["tls=prefer"], &ca).expect(0, "healthy: smtp: ", &["over TLS"]);
    run(&addr, &["tls=require", &user, "password=wrong"], &ca).expect(
        1,
        "unhealthy: smtp: ",
        &["answered AUTH with 535"],
    );
    // Exim offers AUTH only over TLS here; the probe says what to give.
    run(&addr, &[&user, &password], &[]).expect(
        1,
        "unhealthy: smtp: ",
        &["offers no AUTH; servers often offer it only over TLS: give tls=require"],
    );
    // STARTTLS without the operator's CA.
    run(&addr, &["tls=require"], &[]).expect(
        1,
        "unhealthy: smtp: ",
        &["unknown issuer", "--tls-ca"],
    );
}

#[test]
fn smtps_is_tls_from_the_first_byte() {
    let pki = crate::tls::Pki::new();
    let Some((_server, smtps)) = exim(&pki) else {
        return;
    };
    let addr = format!("127.0.0.1:{smtps}");
    let (user, password) = (format!("username={USER}"), format!("password={PASSWORD}"));
    run(
        &addr,
        &["implicit-tls=true", &user, &password],
        &pki.trust(),
    )
    .expect(0, "healthy: smtp: 220 ", &["over TLS, logged in"]);
    // The certificate checked for another name than the address's host.
    run(
        &addr,
        &["implicit-tls=true", "server-name=localhost"],
        &pki.trust(),
    )
    .expect(0, "healthy: smtp: 220 ", &["over TLS"]);
    run(&addr, &["implicit-tls=true", "tls=require"], &pki.trust()).expect(
        3,
        "error: smtp: ",
        &["leave out tls="],
    );
    // Without TLS, a TLS port says nothing a client could read as SMTP: bounded.
    run(&addr, &["--timeout", "2s"], &[]).expect(
        1,
        "unhealthy: smtp: ",
        &["timeout", "the greeting"],
    );
}

#[test]
fn smtp_down_hung_and_wrong_service_are_unhealthy() {
    run(&closed_port().to_string(), &[], &[]).expect(1, "unhealthy: smtp: ", &["refused"]);
    let pki = crate::tls::Pki::new();
    if let Some((server, _)) = exim(&pki) {
        server.pause();
        run(&server.address(), &["--timeout", "2s"], &[]).expect(
            1,
            "unhealthy: smtp: ",
            &["timeout", "waiting for the greeting"],
        );
    }
    if let Some(nats) = crate::nats::nats_server(&[]) {
        run(&nats.address(), &[], &[]).expect(
            1,
            "unhealthy: smtp: ",
            &[
                "expected an SMTP reply",
                "\"INFO {",
                "is this an SMTP server?",
            ],
        );
    }
}
