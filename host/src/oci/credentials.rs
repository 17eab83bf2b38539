//! Registry credentials from the Docker config file, where `docker login`, `podman login
//! --authfile` and `wkg` keep them: `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`. Only its `auths` are read. Credential helpers (`credsStore`,
//! `credHelpers`) are programs, and healthprobe never starts a process: a registry they
//! hold credentials for is named in the message when it refuses access.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::report::Failure;
use crate::text;

/// The credentials found, by registry host.
#[derive(Default)]
pub struct Credentials {
    /// The file read, if there was one.
    pub path: Option<PathBuf>,
    auths: HashMap<String, (String, String)>,
    /// Registries a credential helper holds credentials for (`*` for `credsStore`).
    helpers: Vec<String>,
}

// Never printed: it holds passwords.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("path", &self.path)
            .field("registries", &self.auths.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl Credentials {
    /// Reads the Docker config file, if there is one. A file that exists but cannot be
    /// read is refused: silently pulling anonymously would hide why a pull is refused.
    pub fn load() -> Result<Self, Failure> {
        let path = match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => match dirs::home_dir() {
                Some(home) => home.join(".docker/config.json"),
                None => return Ok(Self::default()),
            },
        };
        let bad = |why: String| {
            Failure::BadInput(format!(
                "cannot read the Docker config file {}: {why}; fix it, or point DOCKER_CONFIG at another directory",
                path.display()
            ))
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(bad(text::io_error(&e))),
        };
        let file: ConfigFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut auths = HashMap::new();
        for (key, entry) in file.auths {
            let pair = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|d| String::from_utf8(d).ok())
                        .ok_or_else(|| {
                            bad(format!("the auth of {key} is not base64 of USER:PASSWORD"))
                        })?;
                    let (user, password) = decoded.split_once(':').ok_or_else(|| {
                        bad(format!("the auth of {key} is not base64 of USER:PASSWORD"))
                    })?;
                    (user.to_string(), password.to_string())
                }
                (_, Some(user), Some(password)) => (user, password),
                // An entry a credential helper fills in, or a token healthprobe does not use.
                _ => continue,
            };
            auths.insert(host(&key), pair);
        }
        let mut helpers: Vec<String> = file.cred_helpers.into_keys().map(|k| host(&k)).collect();
        if file.creds_store.is_some() {
            helpers.push("*".into());
        }
        Ok(Credentials {
            path: Some(path),
            auths,
            helpers,
        })
    }

    /// The credentials for `registry`, or anonymous access.
    pub fn for_registry(&self, registry: &str) -> RegistryAuth {
        match self.lookup(registry) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn lookup(&self, registry: &str) -> Option<&(String, String)> {
        self.auths.get(registry).or_else(|| {
            // Docker Hub's credentials are kept under its old index address.
            matches!(registry, "docker.io" | "registry-1.docker.io")
                .then(|| self.auths.get("index.docker.io"))
                .flatten()
        })
    }

    /// What to do about a refusal by `registry`, in words.
    pub fn advice(&self, registry: &str) -> String {
        let file = self
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.docker/config.json".into());
        if self.lookup(registry).is_some() {
            return format!(
                "the registry refused the credentials for {registry} in {file}; log in again (`docker login {registry}`)"
            );
        }
        if self.helpers.iter().any(|h| h == registry || h == "*") {
            return format!(
                "no credentials for {registry} in {file}: a credential helper holds them, and helpers are programs, which healthprobe never starts; put them in the file's auths (`docker login` without a credsStore), or point DOCKER_CONFIG at a directory with such a file"
            );
        }
        format!(
            "no credentials for {registry} in {file}; log in with `docker login {registry}` (or set DOCKER_CONFIG to the directory of a config.json that has them)"
        )
    }
}

/// An `auths` key as a registry host: `https://host/v1/` → `host`.
fn host(key: &str) -> String {
    let bare = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    bare.split('/').next().unwrap_or(bare).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_registry_hosts() {
        assert_eq!(host("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(host("http://r.example:8443/x"), "r.example:8443");
    }
}
