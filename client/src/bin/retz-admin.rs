//! `retz-admin`: see [`retz_client::cli::admin_cli`].

fn main() -> std::process::ExitCode {
    retz_client::cli::admin_cli::main()
}
