//! `retz-client`: see [`retz_client::cli::client_cli`].

fn main() -> std::process::ExitCode {
    retz_client::cli::client_cli::main()
}
