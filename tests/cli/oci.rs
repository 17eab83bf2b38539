//! `oci://` probes, `pull` and `push`, against Debian's `docker-registry` (the CNCF
//! Distribution registry) started on loopback by each test: plain HTTP, and TLS with basic
//! auth; and interop both ways with `wkg`, the wasm-pkg-tools client.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::servers::{Server, find_binary, in_path, server_dir};
use crate::support::{Outcome, closed_port, guest, healthprobe_env, which};
use crate::tls::Pki;

const USER: &str = "pusher";
const PASSWORD: &str = "s3cret-registry";

/// A registry on a free loopback port: plain HTTP, or with TLS (`pki`'s server
/// certificate) and basic auth (`USER`/`PASSWORD`). `None` (skip) when not installed.
fn registry(secure: Option<&Pki>) -> Option<Server> {
    let bin = find_binary("docker-registry", &in_path("docker-registry"))?;
    let dir = server_dir();
    let (mut auth, mut tls) = (String::new(), String::new());
    if let Some(pki) = secure {
        let htpasswd = find_binary("htpasswd (apache2-utils)", &in_path("htpasswd"))?;
        let file = dir.path().join("htpasswd");
        let ok = Command::new(htpasswd)
            .args(["-Bbc", file.to_str().unwrap(), USER, PASSWORD])
            .output()
            .unwrap();
        assert!(ok.status.success(), "htpasswd: {ok:?}");
        auth = format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            file.display()
        );
        tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            pki.server.cert.display(),
            pki.server.key.display()
        );
    }
    let root = dir.path().to_path_buf();
    Some(Server::start(dir, Signal::SIGTERM, move |port| {
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n{auth}http:\n  addr: 127.0.0.1:{port}\n{tls}",
            root.join("data").display()
        );
        let path = root.join(format!("config-{port}.yml"));
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("serve").arg(path);
        cmd
    }))
}

/// `wkg`, or `None` (skip) when not installed; required under CI.
fn wkg() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut candidates: Vec<PathBuf> = which("wkg").into_iter().collect();
    candidates.push(home.join(".cargo/bin/wkg"));
    find_binary("wkg (cargo install wkg)", &candidates)
}

/// Runs `healthprobe` with a cache directory and Docker config of the test's own.
struct Client {
    cache: tempfile::TempDir,
    docker: tempfile::TempDir,
}

impl Client {
    fn new() -> Client {
        Client {
            cache: tempfile::tempdir().unwrap(),
            docker: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Outcome {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let cache = self.cache.path().to_str().unwrap();
        let docker = self.docker.path().to_str().unwrap();
        let mut all = vec![("HEALTHPROBE_CACHE_DIR", cache), ("DOCKER_CONFIG", docker)];
        all.extend_from_slice(env);
        healthprobe_env(args, &all)
    }

    /// Pushes the `probe-raw` test guest to `registry` (plain HTTP) as `probes/raw:v1`,
    /// made at `epoch` (`SOURCE_DATE_EPOCH`) if given, and returns the pinned reference
    /// push prints.
    fn push_raw(&self, registry: &Server, epoch: Option<&str>) -> String {
        let raw = guest("probe-raw");
        let tag = format!("{}/probes/raw:v1", registry.address());
        let args = ["push", "--insecure-registry", raw.to_str().unwrap(), &tag];
        let env: Vec<_> = epoch
            .map(|e| ("SOURCE_DATE_EPOCH", e))
            .into_iter()
            .collect();
        let pushed = self.run_env(&args, &env);
        assert_eq!(pushed.code, 0, "{pushed:?}");
        pinned(&pushed)
    }

    /// Writes the Docker config's `auths` for `registry`, as `docker login` does.
    fn login(&self, registry: &str, user: &str, password: &str) {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        std::fs::write(
            self.docker.path().join("config.json"),
            format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
    }
}

/// The pinned reference `push` printed.
fn pinned(out: &Outcome) -> String {
    let at = out
        .stdout
        .find("pin it as ")
        .expect("push prints the pinned reference")
        + 10;
    out.stdout[at..].trim().to_string()
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn push_pull_and_run_by_digest_from_a_plain_http_registry() {
    let Some(reg) = registry(None) else { return };
    let raw = guest("probe-raw");
    let client = Client::new();
    let tag = format!("{}/probes/raw:v1", reg.address());

    // Plain HTTP only when asked.
    client.run(&["push", raw.to_str().unwrap(), &tag]).expect(
        3,
        "error: ",
        &["does not speak TLS", "--insecure-registry"],
    );
    let pushed = client.run(&["push", "--insecure-registry", raw.to_str().unwrap(), &tag]);
    pushed.expect(
        0,
        "pushed ",
        &[&format!("component sha256:{}", sha256_of(&raw))],
    );
    let reference = pinned(&pushed);
    assert!(reference.starts_with(&format!("oci://{}/probes/raw@sha256:", reg.address())));
    // The same push as JSON, made at a fixed time: another manifest, the same layer.
    let json = client.run_env(
        &[
            "push",
            "--insecure-registry",
            "--format=json",
            raw.to_str().unwrap(),
            &format!("{tag}-json"),
        ],
        &[("SOURCE_DATE_EPOCH", "0")],
    );
    json.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["status"], "pushed", "{json:?}");
    assert_eq!(v["tag"], format!("oci://{tag}-json"));
    assert_eq!(v["layer_digest"], format!("sha256:{}", sha256_of(&raw)));
    let by_json = v["reference"].as_str().unwrap();
    assert_eq!(
        by_json.rsplit_once('@').map(|x| x.1),
        v["manifest_digest"].as_str()
    );
    assert_ne!(by_json, reference);
    // Reproducible: pushed again at the same SOURCE_DATE_EPOCH, the same manifest.
    let again = client.run_env(
        &[
            "push",
            "--insecure-registry",
            raw.to_str().unwrap(),
            &format!("{tag}-again"),
        ],
        &[("SOURCE_DATE_EPOCH", "0")],
    );
    assert_eq!(
        pinned(&again).rsplit_once('@').map(|x| x.1),
        by_json.rsplit_once('@').map(|x| x.1)
    );

    // Without oci:// it is a path, and the message says what to write.
    client.run(&["run", &tag]).expect(
        3,
        "error: ",
        &[&format!("for a probe in an OCI registry write oci://{tag}")],
    );
    // Not pulled: refused, and no registry is contacted without --pull.
    client
        .run(&["run", &reference])
        .expect(3, "error: ", &["not pulled yet", "healthprobe pull"]);
    let out = tempfile::tempdir().unwrap();
    let copy = out.path().join("raw.wasm");
    client
        .run(&[
            "pull",
            "--insecure-registry",
            &reference,
            "-o",
            copy.to_str().unwrap(),
        ])
        .expect(0, "pulled ", &[&reference, "run it with `healthprobe run"]);
    assert_eq!(sha256_of(&copy), sha256_of(&raw));
    // Pulled again: from the store, and as JSON for scripts.
    let again = client.run(&["pull", "--format=json", &reference]);
    again.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["status"], "stored", "{again:?}");
    assert_eq!(v["reference"].as_str(), Some(reference.as_str()));
    assert_eq!(
        v["manifest_digest"].as_str(),
        reference.rsplit_once('@').map(|x| x.1)
    );
    assert_eq!(v["layer_digest"], format!("sha256:{}", sha256_of(&raw)));
    assert_eq!(v["size"], std::fs::metadata(&raw).unwrap().len());
    client.run(&["run", &reference, "name=x"]).expect(
        0,
        "healthy: raw: ",
        &["params: [name=x greeting=hi]"],
    );
    let inspected = client.run(&["inspect", &reference]);
    inspected.expect_code(0);
    for line in [
        format!("source:  {reference}"),
        format!("manifest: {}", reference.rsplit_once('@').unwrap().1),
        format!("layer:   sha256:{}", sha256_of(&raw)),
        "asks for:".to_string(),
    ] {
        assert!(inspected.stdout.contains(&line), "{line:?}: {inspected:#?}");
    }
    let json = client.run(&["inspect", &reference, "--format=json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["sha256"], sha256_of(&raw));
    assert_eq!(
        v["manifest_digest"].as_str(),
        reference.rsplit_once('@').map(|x| x.1)
    );
    // compile takes it too.
    let cwasm = out.path().join("raw.cwasm");
    client
        .run(&["compile", &reference, "-o", cwasm.to_str().unwrap()])
        .expect(0, "compiled ", &[]);
    // inspect and compile pull too when told to, into an empty store.
    let fresh = Client::new();
    fresh
        .run(&["inspect", &reference])
        .expect(3, "error: ", &["not pulled yet"]);
    let inspected = fresh.run(&["inspect", "--pull", "--insecure-registry", &reference]);
    inspected.expect_code(0);
    assert!(
        inspected.stdout.contains(&format!("source:  {reference}")),
        "{inspected:#?}"
    );
    let fresh = Client::new();
    let cwasm = out.path().join("fresh.cwasm");
    fresh
        .run(&[
            "compile",
            "--pull",
            "--insecure-registry",
            &reference,
            "-o",
            cwasm.to_str().unwrap(),
        ])
        .expect(0, "compiled ", &[]);
    fresh
        .run(&["run", cwasm.to_str().unwrap(), "name=y"])
        .expect(0, "healthy: raw: ", &["params: [name=y greeting=hi]"]);

    // A tag: refused without the operator's permission; resolved, printed and run with it.
    let tagged = format!("oci://{tag}");
    client
        .run(&["run", &tagged])
        .expect(3, "error: ", &["by tag", "--allow-tags"]);
    client
        .run(&[
            "run",
            "--pull",
            "--allow-tags",
            "--insecure-registry",
            &tagged,
        ])
        .expect(0, "healthy: raw: ", &[])
        .stderr_contains(&format!("resolved {tagged} to {reference}"));
    // A checks file is held to the same rule.
    let checks = out.path().join("checks.toml");
    std::fs::write(&checks, format!("[checks.raw]\nprobe = \"{tagged}\"\n")).unwrap();
    client
        .run(&["run", "--config", checks.to_str().unwrap()])
        .expect(3, "error: ", &["[checks.raw]", "by tag"]);

    // A stored component changed on disk is refused, not run.
    let blob = client
        .cache
        .path()
        .join("oci/blobs/sha256")
        .join(sha256_of(&raw));
    std::fs::write(&blob, b"\0asm\x0d\0\x01\0").unwrap();
    client
        .run(&["run", &reference])
        .expect(3, "error: ", &["does not match its layer digest"]);
}

#[test]
fn pull_failures_are_explained() {
    let Some(reg) = registry(None) else { return };
    let client = Client::new();
    let raw = guest("probe-raw");
    let reference = client.push_raw(&reg, None);
    let pull = |args: &[&str]| {
        let mut all = vec!["pull", "--insecure-registry"];
        all.extend_from_slice(args);
        Client::new().run(&all)
    };

    // Over --max-size: refused from the manifest, before downloading.
    pull(&["--max-size", "1KiB", &reference]).expect(
        3,
        "error: ",
        &[
            "over the size limit of 1 KiB",
            "nothing was downloaded",
            "--max-size",
        ],
    );
    // A digest the registry does not have, a repository it does not have.
    let wrong = format!("{}{}", &reference[..reference.len() - 4], "0000");
    pull(&[&wrong]).expect(
        3,
        "error: ",
        &["not found at", "check the repository, tag or digest"],
    );
    pull(&[&format!("{}/nothing/here:v1", reg.address())]).expect(3, "error: ", &["not found at"]);
    // A registry that accepts but never answers: `run --pull` ends by its --timeout, as
    // a run does, and says what it was waiting for.
    reg.pause();
    Client::new()
        .run(&[
            "run",
            "--pull",
            "--insecure-registry",
            "--timeout",
            "2s",
            &reference,
        ])
        .expect(
            3,
            "error: ",
            &[
                "timeout pulling it: the registry at",
                "did not answer in the",
            ],
        );
    reg.resume();
    // Nothing listening.
    pull(&[&format!("{}/probes/raw:v1", closed_port())]).expect(
        3,
        "error: ",
        &["unreachable: connection refused"],
    );
    // Not references at all.
    pull(&["oci://"]).expect(3, "error: ", &["bad OCI reference"]);
    pull(&[&format!("{}/a@sha512:{}", reg.address(), "ab".repeat(64))]).expect(
        3,
        "error: ",
        &["only sha256 digests"],
    );

    // Not components: a core module is refused by push, and a container image by pull.
    let core = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(core.path(), b"\0asm\x01\0\0\0").unwrap();
    client
        .run(&[
            "push",
            "--insecure-registry",
            core.path().to_str().unwrap(),
            &format!("{}/probes/core:v1", reg.address()),
        ])
        .expect(3, "error: ", &["core WebAssembly module"]);
    let image = push_container_image(&reg.address(), "images/app", "v1");
    let image_ref = format!("oci://{}/images/app@sha256:{image}", reg.address());
    pull(&[&image_ref]).expect(
        3,
        "error: ",
        &["container image", "not a Wasm component artifact"],
    );
    Client::new()
        .run(&["run", "--pull", "--insecure-registry", &image_ref])
        .expect(3, "error: ", &["container image"]);

    // The registry serves other bytes than the digest names (its storage changed under
    // it): the layer's digest is checked, and nothing is kept.
    let layer = sha256_of(&raw);
    let data = reg
        .dir
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&layer[..2])
        .join(&layer)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let tampered = Client::new();
    tampered
        .run(&["pull", "--insecure-registry", &reference])
        .expect(
            3,
            "error: ",
            &["digest mismatch", &format!("not sha256:{layer}")],
        );
    assert!(
        !tampered
            .cache
            .path()
            .join("oci/manifests/sha256")
            .join(&reference[reference.len() - 64..])
            .exists(),
        "a manifest whose layer did not match was kept"
    );
}

/// Pushes a minimal container image (OCI image config, a tar layer) with plain HTTP
/// requests, as `docker push` would, and returns its manifest digest (hex).
fn push_container_image(registry: &str, repo: &str, tag: &str) -> String {
    use sha2::Digest;
    let hex = |b: &[u8]| format!("{:x}", sha2::Sha256::digest(b));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tar";
    for blob in [&config[..], &layer[..]] {
        // The registry's two-step upload: open a session, then PUT the bytes to it.
        let start = agent
            .post(&format!("http://{registry}/v2/{repo}/blobs/uploads/"))
            .send_empty()
            .unwrap();
        assert_eq!(start.status(), 202, "blob upload session");
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("http://{registry}{location}")
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = agent
            .put(&format!("{location}{sep}digest=sha256:{}", hex(blob)))
            .header("Content-Type", "application/octet-stream")
            .send(blob)
            .unwrap();
        assert_eq!(r.status(), 201, "blob upload");
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{}","size":{}}}]}}"#,
        hex(config),
        config.len(),
        hex(layer),
        layer.len()
    );
    let r = agent
        .put(&format!("http://{registry}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .send(manifest.as_bytes())
        .unwrap();
    assert_eq!(r.status(), 201, "manifest upload");
    hex(manifest.as_bytes())
}

#[test]
fn a_registry_with_tls_and_basic_auth() {
    let pki = Pki::new();
    let Some(reg) = registry(Some(&pki)) else {
        return;
    };
    let client = Client::new();
    let raw = guest("probe-raw");
    let tag = format!("{}/probes/raw:v1", reg.address());
    let ca = pki.ca.to_str().unwrap();
    let file = raw.to_str().unwrap();

    client
        .run(&["push", file, &tag])
        .expect(3, "error: ", &["unknown issuer", "--tls-ca"]);
    client.run(&["push", "--tls-ca", ca, file, &tag]).expect(
        3,
        "error: ",
        &["unauthorised", "no credentials for", "docker login"],
    );
    client.login(&reg.address(), USER, "wrong");
    client.run(&["push", "--tls-ca", ca, file, &tag]).expect(
        3,
        "error: ",
        &["unauthorised", "refused the credentials"],
    );
    client.login(&reg.address(), USER, PASSWORD);
    let pushed = client.run(&["push", "--tls-ca", ca, file, &tag]);
    pushed.expect(0, "pushed ", &[]);
    let reference = pinned(&pushed);
    client
        .run(&["pull", "--tls-ca", ca, &tag])
        .expect(0, "pulled ", &[&reference]);
    // run pulls with the registry's CA flag, which is not the probes' --tls-ca.
    let fresh = Client::new();
    fresh.login(&reg.address(), USER, PASSWORD);
    fresh.run(&["run", "--pull", &reference]).expect(
        3,
        "error: ",
        &["unknown issuer", "--registry-ca"],
    );
    fresh
        .run(&["run", "--pull", "--registry-ca", ca, &reference])
        .expect(0, "healthy: raw: ", &[])
        .stderr_contains(&format!("pulled {reference}"));
    // A credential helper is a program: named, never run.
    let helper = Client::new();
    std::fs::write(
        helper.docker.path().join("config.json"),
        r#"{"auths":{},"credsStore":"desktop"}"#,
    )
    .unwrap();
    helper.run(&["pull", "--tls-ca", ca, &reference]).expect(
        3,
        "error: ",
        &["credential helper", "never starts"],
    );
}

#[test]
fn wkg_and_healthprobe_read_each_others_artifacts() {
    let Some(reg) = registry(None) else { return };
    let Some(wkg) = wkg() else { return };
    let raw = guest("probe-raw");
    let client = Client::new();
    let home = tempfile::tempdir().unwrap();
    let wkg_cmd = || {
        let mut c = Command::new(&wkg);
        c.env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .env("DOCKER_CONFIG", client.docker.path());
        c
    };

    // wkg pushes, healthprobe pulls and runs.
    let by_wkg = format!("{}/probes/by-wkg:v1", reg.address());
    let out = wkg_cmd()
        .args([
            "oci",
            "push",
            "--insecure",
            &reg.address(),
            &by_wkg,
            raw.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "wkg push: {out:?}");
    let pulled = client.run(&["pull", "--insecure-registry", &by_wkg]);
    pulled.expect(
        0,
        "pulled oci://",
        &[&format!("component sha256:{}", sha256_of(&raw))],
    );
    let at = pulled.stdout.find("run it with `healthprobe run ").unwrap() + 29;
    let reference = pulled.stdout[at..].split('`').next().unwrap().to_string();
    client
        .run(&["run", &reference, "name=wkg"])
        .expect(0, "healthy: raw: ", &["name=wkg"]);

    // healthprobe pushes, wkg pulls the same bytes.
    let by_us = format!("{}/probes/by-healthprobe:v1", reg.address());
    client
        .run(&["push", "--insecure-registry", raw.to_str().unwrap(), &by_us])
        .expect(0, "pushed ", &[]);
    let dest = home.path().join("pulled.wasm");
    let out = wkg_cmd()
        .args(["oci", "pull", "--insecure", &reg.address(), &by_us, "-o"])
        .arg(&dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "wkg pull: {out:?}");
    assert_eq!(sha256_of(&dest), sha256_of(&raw));
}

#[test]
fn serve_pulls_at_start_and_keeps_serving_when_the_registry_goes() {
    let Some(reg) = registry(None) else { return };
    let client = Client::new();
    let reference = client.push_raw(&reg, None);
    let checks = format!(
        "[defaults]\ninterval = \"200ms\"\n\n[checks.raw]\nprobe = \"{reference}\"\nparams = {{ name = \"c\" }}\n\n[modules.raw]\nprobe = \"{reference}\"\ntarget = \"name\"\n"
    );
    let serve = crate::serve::Serve::start_with(&checks, &["--pull", "--insecure-registry"]);
    serve.log_contains(&format!("pulled {reference}"));
    serve.wait_for("/readyz?verbose", |b| b.contains("[+]raw ok"));
    let (status, _, body) = serve.get("/probe?module=raw&target=t");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("probe_success 1"), "{body}");

    // The registry goes away: checks, /probe and a reload go on from the store.
    drop(reg);
    let (_, _, body) = serve.get("/probe?module=raw&target=u");
    assert!(body.contains("probe_success 1"), "{body}");
    serve.signal("HUP");
    serve.log_contains("reloaded");
    serve.wait_for("/readyz?verbose", |b| b.contains("[+]raw ok"));
    let (_, _, body) = serve.get("/probe?module=raw&target=v");
    assert!(body.contains("probe_success 1"), "{body}");
}

#[test]
fn serve_takes_a_tag_only_when_allowed_and_resolves_it_again_on_reload() {
    let Some(reg) = registry(None) else { return };
    let client = Client::new();
    let first = client.push_raw(&reg, None);
    let tag = format!("oci://{}/probes/raw:v1", reg.address());
    let checks = format!("[checks.raw]\nprobe = \"{tag}\"\nparams = {{ name = \"c\" }}\n");

    // Without the operator's permission the file is refused before serving.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checks.toml");
    std::fs::write(&file, &checks).unwrap();
    client
        .run(&[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--pull",
            "--insecure-registry",
        ])
        .expect(3, "error: ", &["[checks.raw]", "by tag", "--allow-tags"]);

    let serve = crate::serve::Serve::start_with(
        &checks,
        &["--pull", "--allow-tags", "--insecure-registry"],
    );
    serve.log_contains(&format!("resolved {tag} to {first}"));
    serve.wait_for("/readyz?verbose", |b| b.contains("[+]raw ok"));

    // The tag moves (the same component pushed at another time is another manifest): a
    // reload resolves it again, and the check is restarted on what it names now.
    let second = client.push_raw(&reg, Some("86400"));
    assert_ne!(first, second);
    serve.signal("HUP");
    serve.log_contains(&format!("resolved {tag} to {second}"));
    serve.log_contains("changed raw");
    serve.wait_for("/readyz?verbose", |b| b.contains("[+]raw ok"));
}
