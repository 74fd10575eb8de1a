//! Test peers started from the project's own scripts, on 127.0.0.1, stopped by PID on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// npm `oidc-provider` (end2end/peers/oidc-provider.mjs): a real OpenID provider.
pub struct OidcProvider {
    child: Child,
    pub issuer: String,
}

impl OidcProvider {
    /// Start it for a portal whose base URL is `portal` (registers its redirect URIs).
    pub async fn start(portal: &str) -> Self {
        let port = super::free_port();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("end2end");
        assert!(
            root.join("node_modules/oidc-provider").exists(),
            "end2end/node_modules is missing: run scripts/setup.sh (scripts/test.sh does)"
        );
        let mut child = Command::new("node")
            .arg("peers/oidc-provider.mjs")
            .current_dir(&root)
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_REDIRECT_URIS", format!("{portal}/auth/callback"))
            .env("OIDC_POST_LOGOUT_URIS", format!("{portal}/signin"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let issuer = format!("http://localhost:{port}");
        let discovery = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
        for _ in 0..100 {
            if reqwest::get(&discovery).await.is_ok_and(|r| r.status().is_success()) {
                return Self { child, issuer };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("oidc-provider did not start");
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
