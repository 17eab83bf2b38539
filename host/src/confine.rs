//! "Never a child process", enforced by the kernel: a seccomp filter, installed before
//! anything else runs, under which `fork`, `vfork`, `clone` without `CLONE_THREAD`,
//! `execve` and `execveat` fail with `EPERM` for the rest of the process's life. Threads
//! keep working. Nothing in healthprobe starts a process; the filter makes that hold even
//! for a future dependency, or for code that escaped the wasm sandbox.
//!
//! `clone3` passes its flags in memory a filter cannot read, so it fails with `ENOSYS`:
//! C libraries then fall back to `clone`, whose flags the filter does check.
//!
//! File writes are confined too (Landlock): once a command knows what it must write (the
//! compile cache, `compile`'s output), it may create, change or remove files only there.
//! Reads stay open: the probe file, granted directories, the resolver's and the TLS
//! roots' files are read from places a command cannot list in advance.

use std::path::Path;
use std::sync::OnceLock;

/// Whether the filter is on, or why not, for `--verbose`.
static STATE: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the filter for every thread of the process, once; later calls return the
/// first outcome. Also sets `PR_SET_NO_NEW_PRIVS`, which the kernel requires for it.
pub fn forbid_processes() -> Result<(), String> {
    STATE.get_or_init(install).clone()
}

/// Whether file writes are confined, and where to, or why not, for `--verbose`.
static WRITES: OnceLock<Result<String, String>> = OnceLock::new();

/// What `--verbose` says about the filter and the write confinement, a line each.
pub fn describe() -> Vec<String> {
    let processes = match STATE.get() {
        Some(Ok(())) => "new processes: forbidden by a seccomp filter".into(),
        Some(Err(why)) => format!("new processes: not forbidden by the kernel ({why})"),
        None => "new processes: not forbidden by the kernel (no filter installed)".into(),
    };
    let writes = match WRITES.get() {
        Some(Ok(where_)) => format!("file writes: {where_} (Landlock)"),
        Some(Err(why)) => format!("file writes: not confined by the kernel ({why})"),
        None => "file writes: not confined by the kernel (no Landlock rules installed)".into(),
    };
    vec![processes, writes]
}

/// From now on, this thread and every thread it starts may create, change or remove files
/// only beneath `dirs` (none: nowhere). Call it before any other thread starts. Once;
/// later calls do nothing. Where the kernel has no Landlock, it says so and confines
/// nothing.
pub fn limit_writes(dirs: &[&Path]) {
    WRITES.get_or_init(|| restrict_writes(dirs));
}

#[cfg(target_os = "linux")]
fn restrict_writes(dirs: &[&Path]) -> Result<String, String> {
    use landlock::{
        ABI, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    };
    // The newest ABI this crate knows; an older kernel enforces what it can (best effort).
    let access = AccessFs::from_write(ABI::V7);
    let mut ruleset = Ruleset::default()
        .handle_access(access)
        .and_then(|r| r.create())
        .map_err(|e| e.to_string())?;
    for dir in dirs {
        let fd = PathFd::new(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| e.to_string())?;
    }
    let status = ruleset.restrict_self().map_err(|e| e.to_string())?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("this kernel has no Landlock".into());
    }
    Ok(if dirs.is_empty() {
        "none".into()
    } else {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("only beneath {}", dirs.join(", "))
    })
}

#[cfg(not(target_os = "linux"))]
fn restrict_writes(_dirs: &[&Path]) -> Result<String, String> {
    Err("no Landlock on this platform".into())
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn install() -> Result<(), String> {
    use std::collections::BTreeMap;

    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };

    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("{e:?}"))?;
    let always = Vec::new;
    // `clone(flags, …)`: only a new thread shares the process; anything else is a process.
    let not_a_thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .and_then(|c| SeccompRule::new(vec![c]))
    .map_err(|e| e.to_string())?;
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    eperm.insert(libc::SYS_execve, always());
    eperm.insert(libc::SYS_execveat, always());
    eperm.insert(libc::SYS_clone, vec![not_a_thread]);
    // arm64 has no fork or vfork: its C libraries use clone.
    #[cfg(target_arch = "x86_64")]
    {
        eperm.insert(libc::SYS_fork, always());
        eperm.insert(libc::SYS_vfork, always());
    }
    let mut enosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    enosys.insert(libc::SYS_clone3, always());

    let errno = |e: i32| u32::try_from(e).unwrap_or(1);
    for (rules, errno) in [(eperm, errno(libc::EPERM)), (enosys, errno(libc::ENOSYS))] {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            arch,
        )
        .map_err(|e| e.to_string())?;
        let program: seccompiler::BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        seccompiler::apply_filter_all_threads(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn install() -> Result<(), String> {
    Err("no seccomp filter for this platform".into())
}
