//! TLS with the operator's trust (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`,
//! `--allow-insecure-tls`), against real servers with TLS on: certificates made fresh by
//! each test (a CA, server certificates that are good, expired or for another name, a
//! client certificate), the probes speaking TLS through `wasi:tls`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{SLACK, SilentServer, healthprobe, temp_file};

/// A certificate and its key, as PEM files.
pub(crate) struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything a test needs: two CAs (the servers' and one nobody trusts) and certificates.
pub(crate) struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA that signed the certificates below.
    pub ca: PathBuf,
    /// Another CA, which signed nothing here.
    pub other_ca: PathBuf,
    /// For 127.0.0.1 and localhost, valid now.
    pub server: Pem,
    /// For 127.0.0.1, expired at the start of 2021.
    pub expired: Pem,
    /// For db.example.com only.
    pub wrong_name: Pem,
    /// A client certificate (for mutual TLS).
    pub client: Pem,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca_params = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p.distinguished_name.push(DnType::CommonName, name);
            p
        };
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params("healthprobe test CA")
            .self_signed(&ca_key)
            .unwrap();
        let issuer = Issuer::new(ca_params("healthprobe test CA"), ca_key);
        let other_key = KeyPair::generate().unwrap();
        let other_cert = ca_params("another CA").self_signed(&other_key).unwrap();

        let leaf = |name: &str, sans: &[&str], client: bool, expired: bool| {
            let mut p =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            p.distinguished_name.push(DnType::CommonName, sans[0]);
            p.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            if expired {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &issuer).unwrap();
            let pem = Pem {
                cert: write(&format!("{name}.pem"), &cert.pem()),
                key: write(&format!("{name}-key.pem"), &key.serialize_pem()),
            };
            // Servers that drop privileges must still read them.
            for path in [&pem.cert, &pem.key] {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            pem
        };
        let server = leaf("server", &["127.0.0.1", "localhost"], false, false);
        let expired = leaf("expired", &["127.0.0.1"], false, true);
        let wrong_name = leaf("wrong-name", &["db.example.com"], false, false);
        let client = leaf("client", &["monitor"], true, false);
        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            other_ca: write("other-ca.pem", &other_cert.pem()),
            server,
            expired,
            wrong_name,
            client,
            dir,
        }
    }

    /// `--tls-ca CA`, as arguments.
    pub fn trust(&self) -> [String; 2] {
        ["--tls-ca".into(), self.ca.display().to_string()]
    }

    /// `--tls-client-cert` and `--tls-client-key` of the client certificate.
    pub fn identity(&self) -> [String; 4] {
        [
            "--tls-client-cert".into(),
            self.client.cert.display().to_string(),
            "--tls-client-key".into(),
            self.client.key.display().to_string(),
        ]
    }
}

/// `redis-server` with TLS only, on a free port, with `pem` as its certificate; clients
/// must present a certificate the test CA signed if `clients` is set. `None` (skip)
/// without Redis.
fn redis_tls(pki: &Pki, pem: &Pem, clients: bool) -> Option<Server> {
    let bin = find_binary("redis-server", &in_path("redis-server"))?;
    let dir = server_dir();
    let data = dir.path().to_path_buf();
    Some(Server::start(dir, Signal::SIGTERM, |port| {
        let mut cmd = Command::new(&bin);
        cmd.args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&data)
            .arg("--tls-cert-file")
            .arg(&pem.cert)
            .arg("--tls-key-file")
            .arg(&pem.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args(["--tls-auth-clients", if clients { "yes" } else { "no" }]);
        cmd
    }))
}

fn run<S: AsRef<str>>(probe: &str, params: &[&str], flags: &[S]) -> crate::support::Outcome {
    let mut args = vec!["run".to_string(), probe.to_string()];
    args.extend(params.iter().map(|s| s.to_string()));
    args.extend(flags.iter().map(|s| s.as_ref().to_string()));
    healthprobe(args)
}

#[test]
fn redis_over_tls_is_healthy_with_the_operators_ca_and_refused_without() {
    let pki = Pki::new();
    let Some(server) = redis_tls(&pki, &pki.server, false) else {
        return;
    };
    let address = server.address_param();
    run("redis", &[&address, "tls=true"], &pki.trust()).expect(
        0,
        "healthy: redis: ",
        &[&format!("PONG from {}", server.address())],
    );
    // The built-in roots do not know the test CA, nor does another CA.
    run::<&str>("redis", &[&address, "tls=true"], &[]).expect(
        1,
        "unhealthy: redis: ",
        &["TLS with", "unknown issuer", "--tls-ca"],
    );
    let other = ["--tls-ca".to_string(), pki.other_ca.display().to_string()];
    run("redis", &[&address, "tls=true"], &other).expect(
        1,
        "unhealthy: redis: ",
        &["unknown issuer"],
    );
    // Verification off by the operator's grant: still TLS, so Redis answers.
    run("redis", &[&address, "tls=true"], &["--allow-insecure-tls"]).expect(
        0,
        "healthy: redis: ",
        &["PONG"],
    );
    // Plain TCP to a TLS port: Redis closes it or answers nonsense, never PONG.
    run::<&str>("redis", &[&address], &[]).expect_code(1);
}

#[test]
fn certificate_errors_name_their_cause() {
    let pki = Pki::new();
    let Some(expired) = redis_tls(&pki, &pki.expired, false) else {
        return;
    };
    run(
        "redis",
        &[&expired.address_param(), "tls=true"],
        &pki.trust(),
    )
    .expect(
        1,
        "unhealthy: redis: ",
        &["certificate expired on 2021-01-01"],
    );
    let wrong = redis_tls(&pki, &pki.wrong_name, false).unwrap();
    run("redis", &[&wrong.address_param(), "tls=true"], &pki.trust()).expect(
        1,
        "unhealthy: redis: ",
        &["name mismatch: certificate is for db.example.com, not 127.0.0.1"],
    );
    // The name the certificate is for, given as server-name, is accepted (the address
    // stays 127.0.0.1).
    run(
        "redis",
        &[
            &wrong.address_param(),
            "tls=true",
            "server-name=db.example.com",
        ],
        &pki.trust(),
    )
    .expect(0, "healthy: redis: ", &["PONG"]);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let Some(server) = redis_tls(&pki, &pki.server, true) else {
        return;
    };
    let address = server.address_param();
    let mut flags = pki.trust().to_vec();
    flags.extend(pki.identity());
    run("redis", &[&address, "tls=true"], &flags).expect(0, "healthy: redis: ", &["PONG"]);
    run("redis", &[&address, "tls=true"], &pki.trust()).expect(
        1,
        "unhealthy: redis: ",
        &["client certificate", "--tls-client-cert"],
    );
}

#[test]
fn postgres_asks_for_tls_and_logs_in_over_it() {
    let pki = Pki::new();
    let Some(server) = crate::postgres::postgres_with(Some(&pki.server)) else {
        return;
    };
    let address = server.address_param();
    let login = [
        address.as_str(),
        "tls=require",
        "username=probe",
        "password=probe-secret",
        "database=postgres",
    ];
    let mut flags = pki.trust().to_vec();
    flags.extend(["--format".to_string(), "json".to_string()]);
    let out = run("postgres", &login, &flags);
    out.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["details"]["tls"], "true", "{json:#}");
    run::<&str>("postgres", &[&address, "tls=require"], &[]).expect(
        1,
        "unhealthy: postgres: ",
        &["unknown issuer"],
    );
    // prefer takes TLS when offered, and so needs the CA as much.
    run("postgres", &[&address, "tls=prefer"], &pki.trust()).expect(
        0,
        "healthy: postgres: ",
        &["accepting connections"],
    );
}

#[test]
fn memcached_over_tls() {
    let pki = Pki::new();
    let option = format!(
        "ssl_chain_cert={},ssl_key={}",
        pki.server.cert.display(),
        pki.server.key.display()
    );
    let Some(server) = crate::memcached::memcached(&["-Z", "-o", &option]) else {
        return;
    };
    let address = server.address_param();
    run("memcached", &[&address, "tls=true"], &pki.trust()).expect(
        0,
        "healthy: memcached: VERSION ",
        &[],
    );
    run::<&str>("memcached", &[&address, "tls=true"], &[]).expect(
        1,
        "unhealthy: memcached: ",
        &["unknown issuer"],
    );
}

#[test]
fn grpc_over_tls_with_alpn_h2() {
    let pki = Pki::new();
    let server = crate::grpc::HealthServer::start_with(None, Some(&pki.server));
    let address = server.address();
    let mut flags = pki.trust().to_vec();
    flags.extend(["--format".to_string(), "json".to_string()]);
    let out = run("grpc", &[&address, "tls=true"], &flags);
    out.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        json["message"].as_str().unwrap().contains("SERVING"),
        "{json:#}"
    );
    // The certificate's expiry, in seconds since the epoch, as blackbox_exporter names it
    // (rcgen's default is far in the future).
    let expiry: u64 = json["details"]["ssl-earliest-cert-expiry"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expiry > now + 86_400, "{json:#}");
    run::<&str>("grpc", &[&address, "tls=true"], &[]).expect(
        1,
        "unhealthy: grpc: ",
        &["unknown issuer"],
    );
    // Cleartext to a TLS server: the probe sees a TLS record and says what to do.
    run::<&str>("grpc", &[&address], &[]).expect(1, "unhealthy: grpc: ", &["tls=true"]);
    // A TLS server that does not choose h2 (Redis offers no ALPN) is not gRPC.
    if let Some(redis) = redis_tls(&pki, &pki.server, false) {
        run("grpc", &[&redis.address_param(), "tls=true"], &pki.trust()).expect(
            1,
            "unhealthy: grpc: ",
            &["did not choose HTTP/2", "ALPN h2"],
        );
    }
}

#[test]
fn tcp_send_and_expect_over_tls() {
    let pki = Pki::new();
    let Some(server) = redis_tls(&pki, &pki.server, false) else {
        return;
    };
    run(
        "tcp",
        &[
            &server.address_param(),
            "tls=true",
            "send=PING\\r\\n",
            "expect=^\\+PONG",
        ],
        &pki.trust(),
    )
    .expect(0, "healthy: tcp: ", &["+PONG"]);
}

#[test]
fn a_server_that_stalls_in_the_handshake_ends_within_the_timeout() {
    // Accepts the connection and never answers the ClientHello.
    let silent = SilentServer::start();
    let address = format!("address={}", silent.addr);
    run("tcp", &[&address, "tls=true"], &["--timeout", "2s"])
        .expect(1, "unhealthy: tcp: ", &["timeout"])
        .within(Duration::from_secs(2) + SLACK);
}

#[test]
fn a_plain_server_is_not_taken_for_tls() {
    // A plain-text server: whatever arrives, it answers in words and hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("address={}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let _ = conn.read(&mut [0; 512]);
            let _ = conn.write_all(b"-ERR unknown command\r\n");
        }
    });
    run::<&str>("tcp", &[&address, "tls=true"], &[]).expect(
        1,
        "unhealthy: tcp: ",
        &["TLS with", "does not speak TLS"],
    );
}

#[test]
fn trust_files_that_cannot_be_used_are_exit_3_naming_the_file() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("missing.pem");
    let (_d, not_pem) = temp_file("notes.txt", b"not a certificate\n");
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["--tls-ca".into(), missing.display().to_string()],
            vec![format!("--tls-ca {}: cannot read it", missing.display())],
        ),
        (
            vec!["--tls-ca".into(), not_pem.display().to_string()],
            vec![format!(
                "--tls-ca {}: no certificate in it",
                not_pem.display()
            )],
        ),
        (
            vec![
                "--tls-client-cert".into(),
                pki.client.cert.display().to_string(),
            ],
            vec!["--tls-client-key too".into()],
        ),
        (
            vec![
                "--tls-client-cert".into(),
                pki.client.cert.display().to_string(),
                "--tls-client-key".into(),
                pki.client.cert.display().to_string(),
            ],
            vec!["no private key in it".into()],
        ),
        (
            // The key of another certificate.
            vec![
                "--tls-client-cert".into(),
                pki.client.cert.display().to_string(),
                "--tls-client-key".into(),
                pki.server.key.display().to_string(),
            ],
            vec!["does not go with the certificate".into()],
        ),
    ];
    for (flags, needles) in cases {
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        run("tcp", &["address=127.0.0.1:1"], &flags).expect(3, "error: ", &needles);
    }
}

#[test]
fn the_http_probe_takes_the_same_trust() {
    let pki = Pki::new();
    let Some(server) = HttpsServer::start(&pki.server, Some(&pki.ca)) else {
        return;
    };
    let url = format!("url=https://127.0.0.1:{}/", server.port);
    let mut flags = pki.trust().to_vec();
    flags.extend(pki.identity());
    run("http", &[&url], &flags).expect(0, "healthy: http: ", &["HTTP 200"]);
    run::<&str>("http", &[&url], &[]).expect(1, "unhealthy: http: ", &["unknown issuer"]);
    // The server asks for a client certificate: without one it refuses.
    run("http", &[&url], &pki.trust()).expect_code(1);
}

#[test]
fn inspect_names_tls_and_its_trust() {
    let pki = Pki::new();
    let mut args = vec!["inspect".to_string(), "redis".to_string()];
    args.extend(pki.trust());
    args.extend(pki.identity());
    let out = healthprobe(args);
    out.expect_code(0);
    assert!(
        out.stdout.contains("wasi:tls") || out.stdout.contains("TLS over"),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .contains(&format!("1 CA certificate from {}", pki.ca.display())),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .contains(&format!("client certificate {}", pki.client.cert.display())),
        "{out:#?}"
    );
}

/// An HTTPS server (Python's, on loopback) with `pem`, asking for a client certificate
/// signed by `client_ca` if given; answers every GET with 200 "ok". Killed on drop.
struct HttpsServer {
    port: u16,
    child: std::process::Child,
}

impl HttpsServer {
    fn start(pem: &Pem, client_ca: Option<&Path>) -> Option<Self> {
        let python = crate::support::which("python3")?;
        let script = "import http.server, ssl, sys\n\
            class H(http.server.BaseHTTPRequestHandler):\n\
            \x20   def do_GET(self):\n\
            \x20       self.send_response(200); self.send_header('Content-Length', '2')\n\
            \x20       self.end_headers(); self.wfile.write(b'ok')\n\
            \x20   def log_message(self, *a): pass\n\
            s = http.server.HTTPServer(('127.0.0.1', 0), H)\n\
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[1], sys.argv[2])\n\
            if len(sys.argv) > 3:\n\
            \x20   c.verify_mode = ssl.CERT_REQUIRED; c.load_verify_locations(sys.argv[3])\n\
            s.socket = c.wrap_socket(s.socket, server_side=True)\n\
            print(s.server_address[1], flush=True)\n\
            s.serve_forever()\n";
        let mut cmd = Command::new(python);
        cmd.arg("-c").arg(script).arg(&pem.cert).arg(&pem.key);
        if let Some(ca) = client_ca {
            cmd.arg(ca);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let port = line.trim().parse().expect("the server's port");
        Some(Self { port, child })
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
