//! A SCIM 2.0 target (RFC 7644): the person is found by `userName` (their email), created
//! when the connector may create people, and added to or removed from the target group with
//! PATCH. Both are idempotent: adding a member already there, or removing one already gone (or
//! a person the target does not know), is success. 200 and 204 are both success.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::CallError;

/// How a SCIM resource system is reached (its `config`; the bearer token is kept sealed apart).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimConfig {
    /// The service provider's base, e.g. `https://idp.example/scim/v2`.
    pub base_url: String,
    /// Create a person the target does not know (else adding them fails, saying so).
    #[serde(default)]
    pub create_users: bool,
    /// Calls this instance makes to the target at once (1–32; 4 when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u16>,
    /// The share of a group's members (percent) a drift repair removes without a
    /// confirmation (10 when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_threshold: Option<u8>,
}

impl ScimConfig {
    /// What the system's token is sealed for: a token is opened only for the address it was
    /// given for.
    pub fn seal_context(&self) -> String {
        format!("scim {}", self.base_url)
    }

    /// A base URL an administrator may give: see [`super::checked_url`].
    pub fn checked(base_url: &str, create_users: bool) -> Result<Self, String> {
        let base_url = super::checked_url(base_url).map_err(|e| format!("the base URL: {e}"))?;
        Ok(ScimConfig { base_url, create_users, max_in_flight: None, removal_threshold: None })
    }
}

/// One SCIM target with its token.
pub struct Scim<'a> {
    pub config: &'a ScimConfig,
    pub token: &'a str,
    /// The time of the calls (a `Retry-After` date is read against it).
    pub now: chrono::DateTime<chrono::Utc>,
}

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// A string inside a SCIM filter: quoted as JSON does (RFC 7644 §3.4.2.2).
fn filter_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

impl Scim<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url)
    }

    /// The call, with the token; its answer whatever the status.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        request.bearer_auth(self.token).header(reqwest::header::ACCEPT, "application/scim+json").send().await.map_err(
            |e| CallError::Unavailable {
                message: format!("SCIM target unreachable: {}", super::without_url(&e)),
                after: None,
            },
        )
    }

    /// The call; a status other than success is an error saying what the target answered.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        self.refused(self.call(request).await?).await
    }

    /// The answer, or what the target said when it refused.
    async fn refused(&self, response: reqwest::Response) -> Result<reqwest::Response, CallError> {
        if response.status().is_success() {
            return Ok(response);
        }
        Err(super::refusal(response, "SCIM target", self.token, self.now).await)
    }

    /// The target's id of the person whose `userName` is this email, if it knows them. The
    /// answer is checked, not trusted: only a user whose `userName` is the email (in any case)
    /// counts, and two of them is an error (a target that ignored the filter, or duplicates).
    async fn user_id(&self, email: &str) -> Result<Option<String>, CallError> {
        let filter = format!("userName eq {}", filter_string(email));
        let response = self.send(super::http()?.get(self.url("Users")).query(&[("filter", filter)])).await?;
        let list: serde_json::Value =
            response.json().await.map_err(|e| format!("SCIM target: unreadable user list: {e}"))?;
        let matching: Vec<&str> = list["Resources"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|u| u["userName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(email)))
            .filter_map(|u| u["id"].as_str())
            .collect();
        match matching.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).to_owned())),
            _ => Err(CallError::Permanent(format!("the SCIM target has {} users named {email}", matching.len()))),
        }
    }

    /// Create the person; if the target has them already (made meanwhile by another call: 409
    /// Conflict), theirs is the id.
    async fn create_user(&self, email: &str, name: &str) -> Result<String, CallError> {
        let body = json!({
            "schemas": [USER],
            "userName": email,
            "displayName": name,
            "emails": [{"value": email, "primary": true}],
            "active": true,
        });
        let response = self
            .call(super::http()?.post(self.url("Users")).header("content-type", "application/scim+json").json(&body))
            .await?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return self
                .user_id(email)
                .await?
                .ok_or_else(|| format!("SCIM target: {email} conflicts yet is not found").into());
        }
        let response = self.refused(response).await?;
        let user: serde_json::Value =
            response.json().await.map_err(|e| format!("SCIM target: unreadable new user: {e}"))?;
        user["id"].as_str().map(str::to_owned).ok_or_else(|| "SCIM target: the new user has no id".into())
    }

    async fn patch_group(&self, group: &str, operation: serde_json::Value) -> Result<(), CallError> {
        let body = json!({"schemas": [PATCH_OP], "Operations": [operation]});
        let url = self.url(&format!("Groups/{}", urlencoding(group)));
        self.send(super::http()?.patch(url).header("content-type", "application/scim+json").json(&body)).await?;
        Ok(())
    }

    /// The target's ids of the group's members that are people (a nested group is left
    /// out). A group without `members` has none.
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, CallError> {
        let url = self.url(&format!("Groups/{}", urlencoding(group)));
        let response = self.send(super::http()?.get(url).query(&[("attributes", "members")])).await?;
        let group: serde_json::Value =
            response.json().await.map_err(|e| format!("SCIM target: unreadable group: {e}"))?;
        Ok(group["members"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|m| m["type"].as_str().is_none_or(|t| t.eq_ignore_ascii_case("User")))
            .filter_map(|m| m["value"].as_str().map(str::to_owned))
            .collect())
    }

    /// The `userName` of the target's user with this id (none: no such user).
    pub async fn user_name(&self, id: &str) -> Result<Option<String>, CallError> {
        let url = self.url(&format!("Users/{}", urlencoding(id)));
        let response = self.call(super::http()?.get(url)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let user: serde_json::Value =
            self.refused(response).await?.json().await.map_err(|e| format!("SCIM target: unreadable user: {e}"))?;
        Ok(user["userName"].as_str().map(str::to_owned))
    }

    /// Ask the target for its `ServiceProviderConfig` (changing nothing): what it says of
    /// itself, in a line.
    pub async fn probe(&self) -> Result<String, CallError> {
        let response = self.send(super::http()?.get(self.url("ServiceProviderConfig"))).await?;
        let status = response.status();
        let config: serde_json::Value =
            response.json().await.map_err(|e| format!("SCIM target: unreadable ServiceProviderConfig: {e}"))?;
        let supported = |what: &str| config[what]["supported"].as_bool().unwrap_or(false);
        Ok(format!(
            "the target answered {status}: PATCH {}, filter {}",
            if supported("patch") { "supported" } else { "not supported" },
            if supported("filter") { "supported" } else { "not supported" },
        ))
    }

    /// Make the person a member of the group; the target's id of the person (to keep: removal
    /// uses it, whatever their email is by then).
    pub async fn ensure_member(&self, group: &str, email: &str, name: &str) -> Result<String, CallError> {
        let id = match self.user_id(email).await? {
            Some(id) => id,
            None if self.config.create_users => self.create_user(email, name).await?,
            None => {
                return Err(CallError::Permanent(format!(
                    "the SCIM target has no user {email} (and this connector does not create users)"
                )))
            }
        };
        self.patch_group(group, json!({"op": "add", "path": "members", "value": [{"value": id}]})).await?;
        Ok(id)
    }

    /// Make sure the person is not a member of the group: the target's id kept when they were
    /// added (`known`), else the one their email finds; a person the target does not know is
    /// no member.
    pub async fn ensure_not_member(&self, group: &str, known: Option<&str>, email: &str) -> Result<(), CallError> {
        let id = match known {
            Some(id) => id.to_owned(),
            None => match self.user_id(email).await? {
                Some(id) => id,
                None => return Ok(()),
            },
        };
        let path = format!("members[value eq {}]", filter_string(&id));
        self.patch_group(group, json!({"op": "remove", "path": path})).await
    }
}

/// A path segment: the group's id as the target gave it, percent-encoded.
fn urlencoding(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base_urls_and_filters_are_checked_and_quoted() {
        assert_eq!(ScimConfig::checked("http://127.0.0.1:9/v2/", false).unwrap().base_url, "http://127.0.0.1:9/v2");
        assert!(ScimConfig::checked("ftp://x/v2", false).is_err());
        assert!(ScimConfig::checked("http://idp.example/v2", false).is_err(), "the token would travel in clear");
        assert!(ScimConfig::checked("https://idp.example/v2", false).is_ok());
        assert!(ScimConfig::checked("http://localhost:8080/v2", false).is_ok());
        assert!(ScimConfig::checked("https://u:p@x/v2", false).is_err());
        assert!(ScimConfig::checked("https://x/v2?token=1", false).is_err());
        assert_eq!(filter_string(r#"a"b@x"#), r#""a\"b@x""#);
        assert_eq!(urlencoding("a b/c"), "a%20b%2Fc");
    }
}
