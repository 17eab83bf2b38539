use std::process::ExitCode;

// See Cargo.toml: musl's own allocator is slow for wasmtime's allocation pattern.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match healthprobe::cli::run() {
        Ok(code) => code,
        // Errors that escape `run` happen before a probe was run (argument parsing, I/O on
        // stdout): they are "could not run" (3) by contract, never clap's default 2.
        Err(err) => {
            println!("{}", healthprobe::output::error_line(&err.to_string()));
            ExitCode::from(healthprobe::EXIT_ERROR)
        }
    }
}
