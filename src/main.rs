#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // kube (rustls) and sigstore (aws-lc-rs) share one crypto provider; installing it first
    // keeps rustls from panicking on an ambiguous default. A second install is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    signet::cli::run()
}
