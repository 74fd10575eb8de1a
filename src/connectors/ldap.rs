//! An LDAP target: a person is added to or taken out of a group by adding or deleting their
//! entry's DN in the group's `member` attribute (`groupOfNames`) or `uniqueMember`
//! (`groupOfUniqueNames`). Both are idempotent: a value already there (result 20) or already
//! gone (16) is success.
//!
//! The person is found under the people base by `mail` (exactly one entry); their DN is kept
//! when they are added, and removal uses it, so a changed email still finds them.
//!
//! Both schemas require at least one member. Taking out a group's last member would be refused
//! (result 65, object class violation), so the placeholder DN (by default
//! `cn=quartermaster-placeholder,<people base>`, an entry that need not exist) takes its place
//! in the same operation, and is taken out again in the operation that adds a person. Give
//! it a DN that is used for nothing else.
//!
//! Each call opens its own connection (ldap://, ldaps://, or ldap:// with StartTLS), binds
//! with the system's DN and password (sealed at rest), and gives up after
//! [`super::CALL_TIMEOUT`] per operation.

use std::collections::HashSet;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use serde::{Deserialize, Serialize};

use super::{CallError, CALL_TIMEOUT};

/// The attribute that lists a group's members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberAttribute {
    /// `member`, of `groupOfNames`.
    #[default]
    Member,
    /// `uniqueMember`, of `groupOfUniqueNames`.
    UniqueMember,
}

impl MemberAttribute {
    fn name(self) -> &'static str {
        match self {
            MemberAttribute::Member => "member",
            MemberAttribute::UniqueMember => "uniqueMember",
        }
    }
}

/// How an LDAP system is reached (its `config`; the bind password is kept sealed apart).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
    pub bind_dn: String,
    /// Where people are found (by `mail`, the whole subtree).
    pub people_base: String,
    #[serde(default)]
    pub member_attribute: MemberAttribute,
    /// The DN that keeps a group from being empty (see the module's documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// Calls this instance makes to the directory at once (1–32; 4 when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u16>,
    /// The share of a group's members (percent) a drift repair removes without a
    /// confirmation (10 when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_threshold: Option<u8>,
}

impl LdapConfig {
    /// Settings an administrator may give: an ldap:// or ldaps:// URL with a host and nothing
    /// else; a bind password in clear (plain ldap:// without StartTLS) only to this machine.
    pub fn checked(
        url: &str,
        starttls: bool,
        bind_dn: &str,
        people_base: &str,
        member_attribute: MemberAttribute,
    ) -> Result<Self, String> {
        let parsed = url::Url::parse(url.trim()).map_err(|_| "the URL is not a URL".to_owned())?;
        let loopback = match parsed.host() {
            Some(host) => super::is_loopback(&host),
            None => return Err("the URL must be ldap://host or ldaps://host".into()),
        };
        match parsed.scheme() {
            "ldaps" if !starttls => {}
            "ldap" if starttls || loopback => {}
            "ldap" => {
                return Err("the URL must be ldaps://, or ldap:// with StartTLS (plain only to this machine)".into())
            }
            _ => return Err("the URL must be ldap://host or ldaps://host (StartTLS goes with ldap://)".into()),
        }
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err("the URL takes a host and port only (the bind DN and password are given apart)".into());
        }
        let dn = |what: &str, value: &str| {
            let value = value.trim();
            if value.is_empty() || value.len() > 1024 || !value.contains('=') {
                Err(format!("{what} must be a DN, like cn=quartermaster,ou=services,dc=example,dc=com"))
            } else {
                Ok(value.to_owned())
            }
        };
        Ok(LdapConfig {
            url: url.trim().trim_end_matches('/').to_owned(),
            starttls,
            bind_dn: dn("the bind DN", bind_dn)?,
            people_base: dn("the people base", people_base)?,
            member_attribute,
            placeholder: None,
            max_in_flight: None,
            removal_threshold: None,
        })
    }

    /// What the system's password is sealed for: it opens only for this directory and DN.
    pub fn seal_context(&self) -> String {
        format!("ldap {} {}", self.url, self.bind_dn)
    }

    /// The DN that keeps a group from being empty.
    pub fn placeholder(&self) -> String {
        self.placeholder.clone().unwrap_or_else(|| format!("cn=quartermaster-placeholder,{}", self.people_base))
    }
}

/// A DN as compared here: lower case, no spaces around its commas and equals signs (two
/// spellings of one DN are one key).
pub fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// LDAP result codes this connector tells apart (RFC 4511 §4.1.9).
mod rc {
    pub const SUCCESS: u32 = 0;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
}

/// An operation's result code, classified.
fn refused(what: &str, code: u32, text: &str) -> CallError {
    let message =
        format!("LDAP directory refused {what}: result {code} {}", text.chars().take(200).collect::<String>());
    match code {
        // Credentials refused, or the directory busy or down: its other work waits too.
        rc::INVALID_CREDENTIALS | rc::INSUFFICIENT_ACCESS | rc::BUSY | rc::UNAVAILABLE => {
            CallError::Unavailable { message, after: None }
        }
        // The group or person is not there, or the change breaks the schema: fix, then retry.
        rc::NO_SUCH_OBJECT | rc::OBJECT_CLASS_VIOLATION => CallError::Permanent(message),
        _ => CallError::Transient(message),
    }
}

/// Entries a paged search asks for at a time.
const LDAP_PAGE: i32 = 100;

/// A transport or protocol error: the directory cannot be reached (said how: refused, or its
/// certificate not trusted or not for this name), or the call timed out.
fn unreachable(e: LdapError) -> CallError {
    let kind = match e {
        LdapError::Timeout { .. } => "timed out".to_owned(),
        LdapError::LdapResult { result } => return refused("the call", result.rc, &result.text),
        other => format!("the connection failed: {}", other.to_string().chars().take(300).collect::<String>()),
    };
    CallError::Unavailable { message: format!("LDAP directory unreachable: {kind}"), after: None }
}

/// One LDAP target with its bind password.
pub struct Directory<'a> {
    pub config: &'a LdapConfig,
    pub password: &'a str,
}

impl Directory<'_> {
    /// A bound connection.
    async fn open(&self) -> Result<Ldap, CallError> {
        let settings = LdapConnSettings::new().set_conn_timeout(CALL_TIMEOUT).set_starttls(self.config.starttls);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url).await.map_err(unreachable)?;
        ldap3::drive!(conn);
        let bound = ldap.with_timeout(CALL_TIMEOUT).simple_bind(&self.config.bind_dn, self.password).await;
        let bound = bound.map_err(unreachable)?;
        if bound.rc != rc::SUCCESS {
            return Err(refused("the bind", bound.rc, &bound.text));
        }
        Ok(ldap)
    }

    /// The DN of the one person whose `mail` is this email.
    async fn person(&self, ldap: &mut Ldap, email: &str) -> Result<String, CallError> {
        let filter = format!("(mail={})", ldap3::ldap_escape(email));
        let (entries, result) = ldap
            .with_timeout(CALL_TIMEOUT)
            .search(&self.config.people_base, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .map_err(unreachable)?
            .success()
            .map_err(unreachable)?;
        let _ = result;
        let dns: Vec<String> = entries.into_iter().map(|e| SearchEntry::construct(e).dn).collect();
        match dns.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(CallError::Permanent(format!("the LDAP directory has nobody with mail {email}"))),
            _ => Err(CallError::Permanent(format!("the LDAP directory has {} people with mail {email}", dns.len()))),
        }
    }

    /// One modify of the group; the result code.
    async fn modify(&self, ldap: &mut Ldap, group: &str, mods: Vec<Mod<&str>>) -> Result<u32, CallError> {
        let result = ldap.with_timeout(CALL_TIMEOUT).modify(group, mods).await.map_err(unreachable)?;
        match result.rc {
            rc::SUCCESS | rc::ATTRIBUTE_OR_VALUE_EXISTS | rc::NO_SUCH_ATTRIBUTE | rc::OBJECT_CLASS_VIOLATION => {
                Ok(result.rc)
            }
            code => Err(refused("the change of the group", code, &result.text)),
        }
    }

    /// The DNs listed as the group's members (the placeholder left out).
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, CallError> {
        let mut ldap = self.open().await?;
        let attribute = self.config.member_attribute.name();
        let (entries, _) = ldap
            .with_timeout(CALL_TIMEOUT)
            .search(group, Scope::Base, "(objectClass=*)", vec![attribute])
            .await
            .map_err(unreachable)?
            .success()
            .map_err(unreachable)?;
        let _ = ldap.unbind().await;
        // People only: entries under the people base (a nested group or a service entry
        // elsewhere is left alone), the placeholder left out.
        let placeholder = dn_key(&self.config.placeholder());
        let people = format!(",{}", dn_key(&self.config.people_base));
        Ok(entries
            .into_iter()
            .flat_map(|e| SearchEntry::construct(e).attrs.into_values().flatten())
            .filter(|dn| {
                let key = dn_key(dn);
                key != placeholder && key.ends_with(&people)
            })
            .collect())
    }

    /// The groups under `base` (`groupOfNames` or `groupOfUniqueNames`, whichever this system
    /// lists members in), by DN, each with its `cn` (else its DN) as its name; sorted by DN,
    /// so an import can go through them a page at a time. Read with the paged-results control
    /// (RFC 2696), so a directory that caps plain searches (Active Directory at 1000) gives
    /// them all. At most `limit`.
    pub async fn groups(&self, base: &str, limit: usize) -> Result<Vec<super::TargetGroup>, CallError> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        let class = match self.config.member_attribute {
            MemberAttribute::Member => "groupOfNames",
            MemberAttribute::UniqueMember => "groupOfUniqueNames",
        };
        let mut ldap = self.open().await?;
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(LDAP_PAGE))];
        let mut search = ldap
            .with_timeout(CALL_TIMEOUT)
            .streaming_search_with(adapters, base, Scope::Subtree, &format!("(objectClass={class})"), vec!["cn"])
            .await
            .map_err(unreachable)?;
        let mut groups = Vec::new();
        while let Some(entry) = search.next().await.map_err(unreachable)? {
            if groups.len() == limit {
                drop(search); // the unbind ends it
                let _ = ldap.unbind().await;
                return Err(CallError::Permanent(format!(
                    "more than {limit} groups under {base}: import from a narrower base"
                )));
            }
            let entry = SearchEntry::construct(entry);
            let name = entry.attrs.get("cn").and_then(|v| v.first()).cloned().unwrap_or_else(|| entry.dn.clone());
            groups.push(super::TargetGroup { id: entry.dn, name });
        }
        let done = search.finish().await;
        let _ = ldap.unbind().await;
        done.success().map_err(unreachable)?;
        groups.sort_by_key(|g| dn_key(&g.id));
        Ok(groups)
    }

    /// The `mail` of the entry with this DN (none: no such entry, or no mail).
    pub async fn entry_mail(&self, dn: &str) -> Result<Option<String>, CallError> {
        let mut ldap = self.open().await?;
        let found = ldap
            .with_timeout(CALL_TIMEOUT)
            .search(dn, Scope::Base, "(objectClass=*)", vec!["mail"])
            .await
            .map_err(unreachable)?;
        let _ = ldap.unbind().await;
        if found.1.rc == rc::NO_SUCH_OBJECT {
            return Ok(None);
        }
        let (entries, _) = found.success().map_err(unreachable)?;
        Ok(entries
            .into_iter()
            .next()
            .and_then(|e| SearchEntry::construct(e).attrs.remove("mail"))
            .and_then(|mut mails| mails.pop()))
    }

    /// Bind, and read the people base (changing nothing): what the directory said.
    pub async fn probe(&self) -> Result<String, CallError> {
        let mut ldap = self.open().await?;
        let found = ldap
            .with_timeout(CALL_TIMEOUT)
            .search(&self.config.people_base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map_err(unreachable)?
            .success()
            .map_err(unreachable)?;
        let _ = ldap.unbind().await;
        Ok(format!(
            "bound as {}; the people base {} {}",
            self.config.bind_dn,
            self.config.people_base,
            if found.0.is_empty() { "was not returned" } else { "is there" }
        ))
    }

    /// Make the person a member of the group (and take the placeholder out); their DN (to
    /// keep: removal uses it).
    pub async fn ensure_member(&self, group: &str, email: &str) -> Result<String, CallError> {
        let mut ldap = self.open().await?;
        let dn = self.person(&mut ldap, email).await?;
        let attribute = self.config.member_attribute.name();
        match self.modify(&mut ldap, group, vec![Mod::Add(attribute, HashSet::from([dn.as_str()]))]).await? {
            rc::SUCCESS | rc::ATTRIBUTE_OR_VALUE_EXISTS => {}
            code => return Err(refused("the addition", code, "")),
        }
        // The group has a real member now: the placeholder goes, if it was there.
        let placeholder = self.config.placeholder();
        if placeholder != dn {
            let mods = vec![Mod::Delete(attribute, HashSet::from([placeholder.as_str()]))];
            match self.modify(&mut ldap, group, mods).await? {
                rc::SUCCESS | rc::NO_SUCH_ATTRIBUTE => {}
                code => return Err(refused("taking out the placeholder", code, "")),
            }
        }
        let _ = ldap.unbind().await;
        Ok(dn)
    }

    /// Make sure the person (their kept DN, else the one their email finds) is not a member;
    /// a person the directory does not know is no member. The last member is replaced by the
    /// placeholder in the same operation.
    pub async fn ensure_not_member(&self, group: &str, known: Option<&str>, email: &str) -> Result<(), CallError> {
        let mut ldap = self.open().await?;
        let dn = match known {
            Some(dn) => dn.to_owned(),
            None => match self.person(&mut ldap, email).await {
                Ok(dn) => dn,
                Err(CallError::Permanent(_)) => return Ok(()),
                Err(e) => return Err(e),
            },
        };
        let attribute = self.config.member_attribute.name();
        let delete = Mod::Delete(attribute, HashSet::from([dn.as_str()]));
        match self.modify(&mut ldap, group, vec![delete]).await? {
            rc::SUCCESS | rc::NO_SUCH_ATTRIBUTE => {}
            rc::OBJECT_CLASS_VIOLATION => {
                // The last member: the placeholder takes its place, in one operation.
                let placeholder = self.config.placeholder();
                let mods = vec![
                    Mod::Add(attribute, HashSet::from([placeholder.as_str()])),
                    Mod::Delete(attribute, HashSet::from([dn.as_str()])),
                ];
                match self.modify(&mut ldap, group, mods).await? {
                    rc::SUCCESS | rc::NO_SUCH_ATTRIBUTE => {}
                    code => return Err(refused("the removal of the last member", code, "")),
                }
            }
            code => return Err(refused("the removal", code, "")),
        }
        let _ = ldap.unbind().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settings_are_checked() {
        let ok = |url, tls| LdapConfig::checked(url, tls, "cn=qm,dc=x", "ou=people,dc=x", MemberAttribute::Member);
        assert!(ok("ldaps://dir.example:636", false).is_ok());
        assert!(ok("ldap://dir.example", true).is_ok(), "StartTLS");
        assert!(ok("ldap://dir.example", false).is_err(), "the password would travel in clear");
        assert!(ok("ldap://127.0.0.1:3890/", false).is_ok());
        assert!(ok("ldap://[::1]:3890", false).is_ok());
        assert!(ok("ldap://127.0.0.1.evil.example", false).is_err());
        assert!(ok("ldaps://dir.example", true).is_err());
        assert!(ok("http://dir.example", false).is_err());
        assert!(ok("ldaps://dir.example/dc=x??sub", false).is_err());
        assert!(LdapConfig::checked("ldaps://d", false, "nobody", "ou=p,dc=x", MemberAttribute::Member).is_err());
        let c = ok("ldaps://dir.example/", false).unwrap();
        assert_eq!(c.url, "ldaps://dir.example");
        assert_eq!(c.placeholder(), "cn=quartermaster-placeholder,ou=people,dc=x");
        assert!(matches!(refused("x", 65, ""), CallError::Permanent(_)));
        assert!(matches!(refused("x", 49, ""), CallError::Unavailable { .. }));
        assert!(matches!(refused("x", 80, ""), CallError::Transient(_)));
        assert_eq!(dn_key("CN=Maya Patel, OU=People ,DC=x"), "cn=maya patel,ou=people,dc=x");
    }
}
