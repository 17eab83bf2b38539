//! `healthprobe new NAME --lang LANG`: a probe project to start from, buildable and tested,
//! outside any clone of healthprobe. The templates are compiled into the binary
//! (`host/templates/`), so the binary alone is enough; the Rust one depends on
//! `healthprobe-sdk` by version, as from a registry, and the others get the WIT package
//! this binary speaks in `wit/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::output::{self, Format};
use crate::text;

use super::wit;

/// The `healthprobe-sdk` version requirement the Rust template asks for: the SDK release
/// that speaks this binary's WIT package (a test keeps it equal to `probes/sdk`'s version).
pub const SDK_VERSION: &str = "0.2";

/// Arguments of `healthprobe new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The probe's name, lower-case kebab-case (for example `queue-depth`); the project is
    /// written into a new folder of that name.
    pub name: String,

    /// The language of the project.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,

    /// Write the folder here instead of the current directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

/// The languages with a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with healthprobe-sdk (cargo, target wasm32-wasip2).
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Javascript,
    /// C with clang and wasi-libc (a preview-1 reactor, adapted).
    C,
}

/// One file of a template: where it goes, its text, and whether it is a script.
struct File {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

/// A template's files: `"path"` is `host/templates/LANG/path`, written under the same
/// name unless `as "name"` gives another; `from "file"` takes the text from another file
/// of the repository (relative to this one); `, executable` marks a script.
macro_rules! files {
    ($lang:literal: $($path:literal $(as $to:literal)? $(from $src:literal)? $(, $exec:ident)?);* $(;)?) => {
        &[$(File {
            path: files!(@to $path $(, $to)?),
            text: files!(@text $lang, $path $(, $src)?),
            executable: files!(@exec $($exec)?),
        }),*]
    };
    (@to $path:literal) => { $path };
    (@to $path:literal, $to:literal) => { $to };
    (@text $lang:literal, $path:literal) => {
        include_str!(concat!("../../templates/", $lang, "/", $path))
    };
    (@text $lang:literal, $path:literal, $src:literal) => { include_str!($src) };
    (@exec) => { false };
    (@exec executable) => { true };
}

fn template(lang: Lang) -> &'static [File] {
    match lang {
        Lang::Rust => files!("rust":
            "Cargo.toml"; "src/lib.rs"; "tests/component.rs"; "README.md";
            "gitignore" as ".gitignore"; "build.sh", executable),
        Lang::Python => files!("python":
            "app.py"; "logic.py"; "test_logic.py"; "README.md";
            "gitignore" as ".gitignore"; "build.sh", executable),
        Lang::Javascript => files!("javascript":
            "app.js"; "test.mjs"; "package.json"; "README.md";
            "gitignore" as ".gitignore"; "build.sh", executable),
        // The examples' componentize program, one copy, lock file included, so a project
        // builds it with the versions tested here.
        Lang::C => files!("c":
            "probe.c"; "logic.h"; "test.c"; "README.md";
            "gitignore" as ".gitignore"; "build.sh", executable;
            "componentize/Cargo.toml"
                from "../../../examples/probes/c/componentize/Cargo.toml";
            "componentize/Cargo.lock"
                from "../../../examples/probes/c/componentize/Cargo.lock";
            "componentize/src/main.rs"
                from "../../../examples/probes/c/componentize/src/main.rs"),
    }
}

/// Writes the project, or says why not (exit 3) without writing anything.
pub fn execute(args: NewArgs) -> Result<ExitCode, crate::Error> {
    if let Err(reason) = check_name(&args.name) {
        return Ok(output::fail("new", &reason, Format::Text));
    }
    let root = args.dir.join(&args.name);
    if root.exists() {
        return Ok(output::fail(
            "new",
            &format!(
                "{} already exists; choose another name, or remove it first",
                root.display()
            ),
            Format::Text,
        ));
    }
    let cannot_write = |e: std::io::Error| {
        output::fail(
            "new",
            &format!(
                "cannot write {}: {}; choose a directory you can write to (--dir)",
                root.display(),
                text::io_error(&e)
            ),
            Format::Text,
        )
    };
    // The folder to write into first, so that writes can be confined to it (it must exist
    // for that); then the project's own folder with create_dir, not create_dir_all: one
    // that appeared since the check is not ours, and is neither written into nor removed.
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        return Ok(cannot_write(e));
    }
    crate::confine::limit_writes(&[&args.dir]);
    if let Err(e) = std::fs::create_dir(&root) {
        return Ok(cannot_write(e));
    }
    if let Err(e) = write(&root, args.lang, &args.name) {
        // Half a project would be refused by the next try: take away what this run made.
        let _ = std::fs::remove_dir_all(&root);
        return Ok(cannot_write(e));
    }
    output::print_line(&format!(
        "wrote {} ({} probe); build and test it with {}/build.sh, then: healthprobe run {}",
        root.display(),
        args.lang
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string()),
        root.display(),
        built(args.lang, &args.name, &root).display(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Kebab-case ASCII: a Cargo package name, a file name and a probe name all at once.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid probe name {name:?}: use lower-case letters, digits and single dashes, \
             starting with a letter (for example queue-depth)"
        ))
    }
}

/// Writes the template's files into `root`, which this run has just created.
fn write(root: &Path, lang: Lang, name: &str) -> std::io::Result<()> {
    for file in template(lang) {
        let path = root.join(file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, fill(file.text, name))?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    if lang != Lang::Rust {
        let dir = root.join("wit");
        std::fs::create_dir(&dir)?;
        wit::write_package(&dir)?;
    }
    Ok(())
}

/// The template's text for the probe `name`.
fn fill(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{sdk}}", SDK_VERSION)
}

/// Where the project's build script puts the component.
fn built(lang: Lang, name: &str, root: &Path) -> PathBuf {
    match lang {
        Lang::Rust => root.join(format!(
            "target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        )),
        Lang::Python | Lang::Javascript | Lang::C => root.join(format!("{name}.wasm")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case() {
        for good in ["a", "queue-depth", "mqtt5", "x-1-y"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Queue", "1abc", "a--b", "a-", "a_b", "../x", "a b", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for lang in [Lang::Rust, Lang::Python, Lang::Javascript, Lang::C] {
            for file in template(lang) {
                let text = fill(file.text, "my-probe");
                assert!(!text.contains("{{"), "{lang:?} {}: {text}", file.path);
            }
        }
    }
}
