//! One way to build outgoing HTTP clients (webhooks, Raft RPC, admin CLI): it makes sure
//! the TLS crypto provider (aws-lc-rs) is installed first, which reqwest requires.

/// Installs aws-lc-rs as the process's rustls crypto provider (a second call does nothing).
/// aws-lc-rs because ractor_cluster's tokio-rustls already builds it; a second provider
/// (ring) would only add a C build to every clean build.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A reqwest client builder with the TLS provider installed and no system proxy.
pub fn builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder().no_proxy()
}
