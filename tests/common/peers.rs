//! Test peers started from the project's own scripts, on 127.0.0.1, stopped by PID on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// npm `oidc-provider` (end2end/peers/oidc-provider.mjs): a real OpenID provider, with its
/// test-control interface (account claims, signing key rotation).
pub struct OidcProvider {
    child: Child,
    pub issuer: String,
    /// The test-control interface's base (`.../test`).
    control: String,
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
                return Self { child, issuer, control: format!("http://127.0.0.1:{port}/test") };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("oidc-provider did not start");
    }
}

impl OidcProvider {
    /// Merge `claims` (a JSON object; a null removes a claim) into the account `id`, creating
    /// it when new. Takes effect at the account's next sign-in.
    pub async fn set_claims(&self, id: &str, claims: serde_json::Value) {
        let res = reqwest::Client::new()
            .post(format!("{}/accounts/{id}", self.control))
            .json(&claims)
            .send()
            .await
            .expect("the provider's test control answers");
        assert!(res.status().is_success(), "setting claims of {id}: {}", res.text().await.unwrap_or_default());
    }

    /// Replace the provider's signing key by a new one (new `kid`; the old key is no longer
    /// published). Returns the new key id.
    pub async fn rotate_key(&self) -> String {
        let res = reqwest::Client::new()
            .post(format!("{}/rotate-key", self.control))
            .send()
            .await
            .expect("the provider's test control answers");
        assert!(res.status().is_success(), "rotating the key: {}", res.status());
        let body: serde_json::Value = res.json().await.unwrap();
        body["kid"].as_str().unwrap().to_owned()
    }
}

impl OidcProvider {
    /// Walk a browser (`c`, not following redirects) from `url` at this provider through its
    /// login and consent forms as `account` (any password), and return the URL it sends the
    /// browser back to on the portal at `portal` (its `/auth/callback`, not yet followed).
    pub async fn log_in(
        &self,
        c: &reqwest::Client,
        mut url: reqwest::Url,
        portal: &str,
        account: &str,
    ) -> reqwest::Url {
        let callback = format!("{portal}/auth/callback");
        let next = |res: &reqwest::Response, base: &reqwest::Url| {
            base.join(res.headers()[reqwest::header::LOCATION].to_str().unwrap()).unwrap()
        };
        for _ in 0..20 {
            if url.as_str().starts_with(&callback) {
                return url;
            }
            let res = c.get(url.clone()).send().await.unwrap();
            if res.status().is_redirection() {
                url = next(&res, &url);
                continue;
            }
            let html = res.text().await.unwrap();
            let action = html.split("action=\"").nth(1).and_then(|a| a.split('"').next()).expect("an interaction form");
            let form = url.join(action).unwrap();
            let prompt =
                html.split("name=\"prompt\" value=\"").nth(1).and_then(|v| v.split('"').next()).unwrap_or("consent");
            let body: Vec<(&str, &str)> = if prompt == "login" {
                vec![("prompt", "login"), ("login", account), ("password", "any")]
            } else {
                vec![("prompt", prompt)]
            };
            let res = c.post(form.clone()).form(&body).send().await.unwrap();
            assert!(res.status().is_redirection(), "interaction answered {}", res.status());
            url = next(&res, &form);
        }
        assert!(url.as_str().starts_with(&callback), "never reached the callback: {url}");
        url
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
