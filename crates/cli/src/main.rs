//! The `vmig` binary: everything is in the library ([`vmig_cli::main`]).

fn main() -> std::process::ExitCode {
    vmig_cli::main()
}
