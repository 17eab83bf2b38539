//! "Never a child process", enforced by the kernel: a seccomp filter, installed before
//! anything else runs, under which `fork`, `vfork`, `clone` without `CLONE_THREAD`,
//! `execve` and `execveat` fail with `EPERM` for the rest of the process's life. Threads
//! keep working. Nothing in healthprobe starts a process; the filter makes that hold even
//! for a future dependency, or for code that escaped the wasm sandbox.
//!
//! `clone3` passes its flags in memory a filter cannot read, so it fails with `ENOSYS`:
//! C libraries then fall back to `clone`, whose flags the filter does check.

use std::sync::OnceLock;

/// Whether the filter is on, or why not, for `--verbose`.
static STATE: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the filter for every thread of the process, once; later calls return the
/// first outcome. Also sets `PR_SET_NO_NEW_PRIVS`, which the kernel requires for it.
pub fn forbid_processes() -> Result<(), String> {
    STATE.get_or_init(install).clone()
}

/// What `--verbose` says about the filter.
pub fn describe() -> String {
    match STATE.get() {
        Some(Ok(())) => "new processes: forbidden by a seccomp filter".into(),
        Some(Err(why)) => format!("new processes: not forbidden by the kernel ({why})"),
        None => "new processes: not forbidden by the kernel (no filter installed)".into(),
    }
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
