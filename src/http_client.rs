//! One way to build outgoing HTTP clients (webhooks, Raft RPC, admin CLI): it makes sure
//! the TLS crypto provider (ring) is installed first, which reqwest requires.

/// A reqwest client builder with the TLS provider installed and no system proxy.
pub fn builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy()
}
