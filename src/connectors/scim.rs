//! A SCIM 2.0 target (RFC 7644): the person is found by `userName` (their email), created
//! when the connector may create people, and added to or removed from the target group with
//! PATCH. Both are idempotent: adding a member already there, or removing one already gone (or
//! a person the target does not know), is success. 200 and 204 are both success.

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter, PatchPath, PatchValuePath, ValFilter};
use scim_v2::models::group::{Member, MemberType};
use scim_v2::models::others::{OperationTarget, PatchOp, PatchOperation};
use scim_v2::models::user::{Email, User};
use scim_v2::{schema_urns, Asserted};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{CallError, TargetGroup};

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

/// `attribute eq "value"`: a comparison in the RFC 7644 §3.4.2.2 grammar, the value quoted
/// as the grammar requires.
fn equals(attribute: &str, value: &str) -> AttrExp {
    AttrExp::Comparison(AttrPath::with_name(attribute), CompareOp::Eq, CompValue::Str(value.to_owned()))
}

// What the target answers is read leniently, by the few attributes used (what is sent is
// built from scim_v2's RFC types): real providers leave out `schemas`, send odd `meta` dates
// or extra attributes, and one such resource in a list must not hide the others. A resource
// without the attributes used is passed over, as a non-matching one is.

/// A list answer (RFC 7644 §3.4.2): its resources, each read on its own.
#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "totalResults", default)]
    total_results: Option<i64>,
    #[serde(rename = "Resources", default)]
    resources: Option<Vec<serde_json::Value>>,
}

impl Listed {
    /// The resources that read as `T` (others passed over).
    fn read<T: DeserializeOwned>(self) -> Vec<T> {
        self.resources.unwrap_or_default().into_iter().filter_map(|r| serde_json::from_value(r).ok()).collect()
    }
}

/// A user, by the attributes used.
#[derive(Deserialize)]
struct UserSeen {
    id: String,
    #[serde(rename = "userName")]
    user_name: String,
}

/// A group, by the attributes used.
#[derive(Deserialize)]
struct GroupSeen {
    id: Option<String>,
    #[serde(rename = "displayName", default)]
    display_name: Option<String>,
    #[serde(default)]
    members: Option<Vec<MemberSeen>>,
}

impl GroupSeen {
    /// The members that are people (no `type`, or `User` in any case); a nested group is
    /// left out.
    fn people(self) -> Vec<String> {
        self.members
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.kind.clone().is_none_or(|t| MemberType::from(t) == MemberType::User))
            .filter_map(|m| m.value)
            .collect()
    }
}

#[derive(Deserialize)]
struct MemberSeen {
    value: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// `ServiceProviderConfig` (RFC 7643 §5), by the features the probe reports.
#[derive(Deserialize)]
struct ProviderSeen {
    #[serde(default)]
    patch: Option<SupportedSeen>,
    #[serde(default)]
    filter: Option<SupportedSeen>,
}

#[derive(Deserialize)]
struct SupportedSeen {
    #[serde(default)]
    supported: serde_json::Value,
}

impl SupportedSeen {
    /// `true`, or `"true"` as some providers send it.
    fn yes(&self) -> bool {
        match &self.supported {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
}

/// A page of the target's groups: those readable, how many resources the page held (the next
/// page starts after them), and how many the target says it has in all (if it says).
pub struct GroupsPage {
    pub groups: Vec<TargetGroup>,
    pub returned: u64,
    pub total: Option<u64>,
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

    /// The answer's body, read as the RFC's type for it (`what` names it in the error).
    async fn read<T: DeserializeOwned>(response: reqwest::Response, what: &str) -> Result<T, CallError> {
        let body = response.bytes().await.map_err(|e| format!("SCIM target: {what} not received: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| CallError::from(format!("SCIM target: unreadable {what}: {e}")))
    }

    /// The target's id of the person whose `userName` is this email, if it knows them. The
    /// answer is checked, not trusted: only a user whose `userName` is the email (in any case)
    /// counts, and two of them is an error (a target that ignored the filter, or duplicates).
    async fn user_id(&self, email: &str) -> Result<Option<String>, CallError> {
        let filter = Filter::Attr(equals("userName", email)).to_string();
        let response = self.send(super::http()?.get(self.url("Users")).query(&[("filter", filter)])).await?;
        let list: Listed = Self::read(response, "user list").await?;
        let matching: Vec<String> = list
            .read::<UserSeen>()
            .into_iter()
            .filter(|u| u.user_name.eq_ignore_ascii_case(email))
            .map(|u| u.id)
            .collect();
        match matching.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            _ => Err(CallError::Permanent(format!("the SCIM target has {} users named {email}", matching.len()))),
        }
    }

    /// Create the person; if the target has them already (made meanwhile by another call: 409
    /// Conflict), theirs is the id.
    async fn create_user(&self, email: &str, name: &str) -> Result<String, CallError> {
        let user = User::<String> {
            schemas: vec![schema_urns::USER.to_owned()],
            user_name: email.to_owned(),
            display_name: Asserted::set(name.to_owned()),
            emails: Asserted::set(vec![Email {
                value: Some(email.to_owned()),
                primary: Some(true),
                ..Email::default()
            }]),
            active: Asserted::set(true),
            ..User::default()
        };
        // `groups` is read-only (RFC 7643 §4.1.2), and the type always writes it: left out.
        let mut body =
            serde_json::to_value(&user).map_err(|e| format!("SCIM: the new user could not be written: {e}"))?;
        if let Some(fields) = body.as_object_mut() {
            fields.remove("groups");
        }
        let response = self
            .call(super::http()?.post(self.url("Users")).header("content-type", "application/scim+json").json(&body))
            .await?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return self
                .user_id(email)
                .await?
                .ok_or_else(|| format!("SCIM target: {email} conflicts yet is not found").into());
        }
        let created: serde_json::Value = Self::read(self.refused(response).await?, "new user").await?;
        created["id"].as_str().map(str::to_owned).ok_or_else(|| "SCIM target: the new user has no id".into())
    }

    async fn patch_group(&self, group: &str, operation: PatchOperation) -> Result<(), CallError> {
        let body = PatchOp { schemas: vec![schema_urns::PATCH_OP.to_owned()], operations: vec![operation] };
        let url = self.url(&format!("Groups/{}", urlencoding(group)));
        self.send(super::http()?.patch(url).header("content-type", "application/scim+json").json(&body)).await?;
        Ok(())
    }

    /// The target's ids of the group's members that are people (a nested group is left
    /// out). A group without `members` has none.
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, CallError> {
        let url = self.url(&format!("Groups/{}", urlencoding(group)));
        let response = self.send(super::http()?.get(url).query(&[("attributes", "displayName,members")])).await?;
        let group: GroupSeen = Self::read(response, "group").await?;
        Ok(group.people())
    }

    /// A page of the target's groups, `count` from the `start`th (1-based, as RFC 7644 §3.4.2.4
    /// counts), by display name.
    pub async fn groups(&self, start: u64, count: u64) -> Result<GroupsPage, CallError> {
        let query =
            [("attributes", "displayName".to_owned()), ("startIndex", start.to_string()), ("count", count.to_string())];
        let response = self.send(super::http()?.get(self.url("Groups")).query(&query)).await?;
        let list: Listed = Self::read(response, "group list").await?;
        let total = list.total_results.and_then(|t| u64::try_from(t).ok());
        let returned = list.resources.as_ref().map_or(0, |r| u64::try_from(r.len()).unwrap_or(u64::MAX));
        let groups = list
            .read::<GroupSeen>()
            .into_iter()
            .filter_map(|g| {
                let id = g.id?;
                Some(TargetGroup { name: g.display_name.unwrap_or_else(|| id.clone()), id })
            })
            .collect();
        Ok(GroupsPage { groups, returned, total })
    }

    /// The `userName` of the target's user with this id (none: no such user).
    pub async fn user_name(&self, id: &str) -> Result<Option<String>, CallError> {
        let url = self.url(&format!("Users/{}", urlencoding(id)));
        let response = self.call(super::http()?.get(url)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let user: serde_json::Value = Self::read(self.refused(response).await?, "user").await?;
        Ok(user["userName"].as_str().map(str::to_owned))
    }

    /// Ask the target for its `ServiceProviderConfig` (changing nothing): what it says of
    /// itself, in a line.
    pub async fn probe(&self) -> Result<String, CallError> {
        let response = self.send(super::http()?.get(self.url("ServiceProviderConfig"))).await?;
        let status = response.status();
        let config: ProviderSeen = Self::read(response, "ServiceProviderConfig").await?;
        let said = |s: Option<SupportedSeen>| if s.is_some_and(|s| s.yes()) { "supported" } else { "not supported" };
        Ok(format!("the target answered {status}: PATCH {}, filter {}", said(config.patch), said(config.filter)))
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
        self.patch_group(group, add_member(&id)).await?;
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
        self.patch_group(group, remove_member(&id)).await
    }
}

/// `{"op": "add", "path": "members", "value": [{"value": id}]}`
fn add_member(id: &str) -> PatchOperation {
    let member = Member::<String> { value: Some(id.to_owned()), ..Member::default() };
    PatchOperation::Add(OperationTarget::WithPath {
        path: PatchPath::Attr(AttrPath::with_name("members")),
        value: Some(serde_json::json!([member])),
    })
}

/// `{"op": "remove", "path": "members[value eq \"id\"]"}`
fn remove_member(id: &str) -> PatchOperation {
    PatchOperation::Remove {
        path: PatchPath::Value(PatchValuePath {
            attr: AttrPath::with_name("members"),
            filter: ValFilter::Attr(equals("value", id)),
            sub_attr: None,
        }),
        value: None,
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
    fn answers_are_read_by_the_attributes_used() {
        // A resource a strict reading refuses (no schemas, a numeric id, an odd date) is passed
        // over; the others are found.
        let list: Listed = serde_json::from_value(serde_json::json!({"Resources": [
            {"id": 7, "userName": "x@y"},
            {"id": "u1", "userName": "a@b", "meta": {"created": "yesterday"}, "active": "True"},
        ]}))
        .unwrap();
        let users = list.read::<UserSeen>();
        assert_eq!(users.iter().map(|u| (u.id.as_str(), u.user_name.as_str())).collect::<Vec<_>>(), [("u1", "a@b")]);
        let said: ProviderSeen = serde_json::from_value(serde_json::json!({"patch": {"supported": "True"}})).unwrap();
        assert!(said.patch.is_some_and(|p| p.yes()) && said.filter.is_none());
        let group: GroupSeen = serde_json::from_value(serde_json::json!({"id": "g", "members": [
            {"value": "u1"}, {"value": "g2", "type": "Group"}, {"value": "u2", "type": "user", "display": "U"},
        ]}))
        .unwrap();
        assert_eq!(group.people(), ["u1", "u2"]);
    }

    #[test]
    fn base_urls_and_filters_are_checked_and_quoted() {
        assert_eq!(ScimConfig::checked("http://127.0.0.1:9/v2/", false).unwrap().base_url, "http://127.0.0.1:9/v2");
        assert!(ScimConfig::checked("ftp://x/v2", false).is_err());
        assert!(ScimConfig::checked("http://idp.example/v2", false).is_err(), "the token would travel in clear");
        assert!(ScimConfig::checked("https://idp.example/v2", false).is_ok());
        assert!(ScimConfig::checked("http://localhost:8080/v2", false).is_ok());
        assert!(ScimConfig::checked("https://u:p@x/v2", false).is_err());
        assert!(ScimConfig::checked("https://x/v2?token=1", false).is_err());
        assert_eq!(Filter::Attr(equals("userName", r#"a"b@x"#)).to_string(), r#"userName eq "a\"b@x""#);
        let patch = |op| {
            serde_json::to_value(PatchOp { schemas: vec![schema_urns::PATCH_OP.into()], operations: vec![op] }).unwrap()
        };
        assert_eq!(
            patch(add_member("u 1")),
            serde_json::json!({"schemas": [schema_urns::PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": "u 1"}]}]})
        );
        assert_eq!(
            patch(remove_member(r#"u"1"#)),
            serde_json::json!({"schemas": [schema_urns::PATCH_OP], "Operations": [{"op": "remove", "path": r#"members[value eq "u\"1"]"#}]})
        );
        assert_eq!(urlencoding("a b/c"), "a%20b%2Fc");
    }
}
