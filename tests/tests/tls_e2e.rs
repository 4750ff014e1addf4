//! End-to-end over TLS: the central serves HTTPS (rustls) with a certificate
//! from a CA that only this test knows; `lojad` syncs from it when its
//! `[central] ca_cert` names that CA, and refuses the connection when not.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use loja_e2e::central::{Central, Tls};
use loja_e2e::scratch::ScratchDir;
use loja_e2e::store::Store;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

const STORE: &str = "loja-tls";
const TOKEN: &str = "token-loja-tls";

/// Writes ca.pem, cert.pem (for localhost and 127.0.0.1) and key.pem in `dir`.
fn make_pki(dir: &Path) -> Tls {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Loja e2e test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let cert = params.signed_by(&key, &issuer).expect("server cert");

    let tls = Tls {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: dir.join("ca.pem"),
    };
    std::fs::write(&tls.cert, cert.pem()).expect("write cert");
    std::fs::write(&tls.key, key.serialize_pem()).expect("write key");
    std::fs::write(&tls.ca, ca_cert.pem()).expect("write ca");
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lojad_syncs_over_tls_with_the_chains_ca_and_refuses_without_it() {
    let pki_dir = ScratchDir::new("pki");
    let tls = make_pki(&pki_dir);
    let central = Central::builder()
        .catalog(200, 50)
        .store(STORE, "master", TOKEN)
        .tls(tls.clone())
        .start()
        .expect("central starts with TLS");
    assert!(central.url().starts_with("https://"), "{}", central.url());
    central.release_everything().await.expect("admin over TLS");

    // A client that does not trust the test CA is refused at the handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let refused = plain
        .get(format!("{}/v1/health", central.url()))
        .send()
        .await;
    assert!(refused.is_err(), "an unknown CA must not be trusted");

    // lojad without the CA: the sync fails and says why, nothing applied.
    let untrusting = Store::builder(central.url(), STORE, TOKEN)
        .build()
        .expect("config");
    let failed = untrusting.command(&["sync", "products"]).expect("run sync");
    assert!(!failed.status.success(), "sync must fail without the CA");
    let why = String::from_utf8_lossy(&failed.stderr).to_lowercase();
    assert!(
        why.contains("certificate"),
        "the error must say it is the certificate: {why}"
    );
    assert_eq!(untrusting.replica_count("products").unwrap_or(0), 0);

    // lojad with `[central] ca_cert`: the full sync goes through TLS.
    let store = Store::builder(central.url(), STORE, TOKEN)
        .ca_cert(&tls.ca)
        .build()
        .expect("config");
    store.sync(&[]).expect("sync over TLS");
    assert_eq!(store.replica_count("products").expect("count"), 200);
    assert_eq!(store.replica_count("barcodes").expect("count"), 400);
    assert_eq!(store.replica_count("customers").expect("count"), 50);
}
