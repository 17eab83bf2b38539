use std::process::ExitCode;

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

#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
