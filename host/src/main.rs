use std::process::ExitCode;

fn main() -> ExitCode {
    match healthprobe::cli::run() {
        Ok(code) => code,
        // Only a failed write of the result escapes `run`: stdout is gone, so say it on
        // stderr; "could not run" (3) by contract, never clap's default 2.
        Err(err) => {
            healthprobe::output::print_err(&format!("error: {err}\n"));
            ExitCode::from(healthprobe::EXIT_ERROR)
        }
    }
}

#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
