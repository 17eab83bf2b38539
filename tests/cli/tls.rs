//! TLS with the operator's trust (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`,
//! `--allow-insecure-tls`), against real servers with TLS on: certificates made fresh by
//! each test (a CA, server certificates that are good, expired or for another name, a
//! client certificate), the probes speaking TLS through `wasi:tls`.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{SilentServer, healthprobe, temp_file};

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
    /// For 127.0.0.1 and localhost, expiring in ten days.
    pub soon: Pem,
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

        let leaf = |name: &str, sans: &[&str], client: bool, ends: Option<(i32, u8, u8)>| {
            let mut p =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            p.distinguished_name.push(DnType::CommonName, sans[0]);
            p.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            if let Some((year, month, day)) = ends {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(year, month, day);
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
        let server = leaf("server", &["127.0.0.1", "localhost"], false, None);
        let expired = leaf("expired", &["127.0.0.1"], false, Some((2021, 1, 1)));
        let soon = leaf(
            "soon",
            &["127.0.0.1", "localhost"],
            false,
            Some(civil_date(now() / 86_400 + 10)),
        );
        let wrong_name = leaf("wrong-name", &["db.example.com"], false, None);
        let client = leaf("client", &["monitor"], true, None);
        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            other_ca: write("other-ca.pem", &other_cert.pem()),
            server,
            expired,
            soon,
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

/// A probe's server with TLS on: `guard` keeps it running; `target` is the parameter
/// that reaches it (`address=…`, or `url=…` for `http`).
struct Running {
    _guard: Box<dyn std::any::Any>,
    target: String,
}

impl Running {
    fn new(guard: impl std::any::Any, target: String) -> Option<Running> {
        Some(Running {
            _guard: Box::new(guard),
            target,
        })
    }
}

/// One probe's TLS cases against its real server.
struct Matrix {
    probe: &'static str,
    /// Parameters besides the target: `tls=…`, a login.
    params: &'static [&'static str],
    /// Starts the server with `pem` as its certificate; if `clients`, it requires a client
    /// certificate the test CA signed. `None`: the server is not installed (skip).
    start: fn(&Pki, &Pem, bool) -> Option<Running>,
    /// What the verdict says when the client presents no certificate to such a server.
    refused: &'static str,
    /// Whether the verdict reports the certificate's expiry (every probe on `wasi:tls`).
    expiry: bool,
}

impl Matrix {
    /// Healthy with the right CA; unhealthy with an unknown CA, an expired certificate and
    /// a certificate for another name, each naming the cause; mutual TLS accepted with the
    /// client certificate and refused without it.
    fn check(&self) {
        let pki = Pki::new();
        let Some(good) = (self.start)(&pki, &pki.server, false) else {
            return;
        };
        let healthy = format!("healthy: {}: ", self.probe);
        let unhealthy = format!("unhealthy: {}: ", self.probe);
        let run_on = |server: &Running, flags: &[String]| {
            let mut params = vec![server.target.as_str()];
            params.extend(self.params);
            run(self.probe, &params, flags)
        };
        let mut json = pki.trust().to_vec();
        json.extend(["--format".into(), "json".into()]);
        let out = run_on(&good, &json);
        out.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        if self.expiry {
            // rcgen's default validity ends far in the future.
            let expiry: u64 = v["details"]["ssl-earliest-cert-expiry"]
                .as_u64()
                .unwrap_or_else(|| panic!("no expiry: {v:#}"));
            assert!(expiry > now() + 86_400 * 365, "{v:#}");
        }
        run_on(&good, &[]).expect(1, &unhealthy, &["unknown issuer", "--tls-ca"]);
        drop(good);

        let expired = (self.start)(&pki, &pki.expired, false).unwrap();
        run_on(&expired, &pki.trust()).expect(
            1,
            &unhealthy,
            &["certificate expired on 2021-01-01"],
        );
        drop(expired);
        let wrong = (self.start)(&pki, &pki.wrong_name, false).unwrap();
        run_on(&wrong, &pki.trust()).expect(
            1,
            &unhealthy,
            &["name mismatch: certificate is for db.example.com, not 127.0.0.1"],
        );
        drop(wrong);

        let mutual = (self.start)(&pki, &pki.server, true).unwrap();
        let mut both = pki.trust().to_vec();
        both.extend(pki.identity());
        run_on(&mutual, &both).expect(0, &healthy, &[]);
        run_on(&mutual, &pki.trust()).expect(1, &unhealthy, &[self.refused]);
    }
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> (i32, u8, u8) {
    let z = i64::try_from(days).unwrap() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        i32::try_from(year).unwrap(),
        u8::try_from(month).unwrap(),
        u8::try_from(day).unwrap(),
    )
}

#[test]
fn civil_dates_are_right() {
    assert_eq!(civil_date(0), (1970, 1, 1));
    assert_eq!(civil_date(19_723), (2024, 1, 1));
    assert_eq!(civil_date(19_782), (2024, 2, 29));
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A server that asks for no client certificate, or one that requires it.
const CLIENT_CERT_REQUIRED: &str = "requires a client certificate";

#[test]
fn redis_tls_matrix() {
    Matrix {
        probe: "redis",
        params: &["tls=true"],
        start: |pki, pem, clients| {
            let server = redis_tls(pki, pem, clients)?;
            let target = server.address_param();
            Running::new(server, target)
        },
        refused: CLIENT_CERT_REQUIRED,
        expiry: true,
    }
    .check();
}

#[test]
fn memcached_tls_matrix() {
    Matrix {
        probe: "memcached",
        params: &["tls=true"],
        start: |pki, pem, clients| {
            let mut option = format!(
                "ssl_chain_cert={},ssl_key={}",
                pem.cert.display(),
                pem.key.display()
            );
            if clients {
                // 2: a client certificate is required.
                option.push_str(&format!(
                    ",ssl_verify_mode=2,ssl_ca_cert={}",
                    pki.ca.display()
                ));
            }
            let server = crate::memcached::memcached(&["-Z", "-o", &option])?;
            let target = server.address_param();
            Running::new(server, target)
        },
        refused: CLIENT_CERT_REQUIRED,
        expiry: true,
    }
    .check();
}

#[test]
fn postgres_tls_matrix() {
    Matrix {
        probe: "postgres",
        params: &[
            "tls=require",
            "username=probe",
            "password=probe-secret",
            "database=postgres",
        ],
        start: |pki, pem, clients| {
            let server = crate::postgres::postgres_tls(Some(pem), clients.then_some(&*pki.ca))?;
            let target = server.address_param();
            Running::new(server, target)
        },
        // PostgreSQL asks for a certificate without requiring one in the handshake; the
        // login rule (clientcert=verify-ca) refuses, in the server's words.
        refused: "connection requires a valid client certificate",
        expiry: true,
    }
    .check();
}

#[test]
fn mysql_tls_matrix() {
    Matrix {
        probe: "mysql",
        params: &["tls=require", "username=probe", "password=secret"],
        start: |pki, pem, clients| {
            let mut args = vec![
                format!("--ssl-cert={}", pem.cert.display()),
                format!("--ssl-key={}", pem.key.display()),
            ];
            if clients {
                args.push(format!("--ssl-ca={}", pki.ca.display()));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let db = crate::mysql::MariaDb::start(&args)?;
            if clients {
                db.sql(
                    "ALTER USER 'probe'@'localhost' REQUIRE X509;
                     ALTER USER 'probe'@'127.0.0.1' REQUIRE X509;",
                );
            }
            let target = db.address();
            Running::new(db, target)
        },
        // MariaDB asks for a certificate; the user's REQUIRE X509 refuses the login.
        refused: "Access denied",
        expiry: true,
    }
    .check();
}

#[test]
fn grpc_tls_matrix() {
    Matrix {
        probe: "grpc",
        params: &["tls=true"],
        start: |pki, pem, clients| {
            let server =
                crate::grpc::HealthServer::start_tls(None, Some(pem), clients.then_some(&*pki.ca));
            let target = server.address();
            Running::new(server, target)
        },
        refused: CLIENT_CERT_REQUIRED,
        expiry: true,
    }
    .check();
}

#[test]
fn http_tls_matrix() {
    Matrix {
        probe: "http",
        params: &[],
        start: |pki, pem, clients| {
            let server = HttpsServer::start(pem, clients.then_some(&*pki.ca))?;
            let target = format!("url=https://127.0.0.1:{}/", server.port);
            Running::new(server, target)
        },
        refused: CLIENT_CERT_REQUIRED,
        // The host's http import reports the certificate it saw.
        expiry: true,
    }
    .check();
}

#[test]
fn grpc_needs_alpn_h2_over_tls() {
    let pki = Pki::new();
    let server = crate::grpc::HealthServer::start_with(None, Some(&pki.server));
    // Cleartext to a TLS server: the probe sees a TLS record and says what to do.
    run::<&str>("grpc", &[&server.address()], &[]).expect(1, "unhealthy: grpc: ", &["tls=true"]);
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
fn server_name_checks_another_name_than_the_address() {
    let pki = Pki::new();
    let Some(server) = redis_tls(&pki, &pki.wrong_name, false) else {
        return;
    };
    run(
        "redis",
        &[
            &server.address_param(),
            "tls=true",
            "server-name=db.example.com",
        ],
        &pki.trust(),
    )
    .expect(0, "healthy: redis: ", &["PONG"]);
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
    run("tcp", &[&address, "tls=true"], &["--timeout", "2s"]).expect(
        1,
        "unhealthy: tcp: ",
        &["timeout"],
    );
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
pub(crate) struct HttpsServer {
    pub port: u16,
    child: std::process::Child,
}

impl HttpsServer {
    pub fn start(pem: &Pem, client_ca: Option<&Path>) -> Option<Self> {
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
