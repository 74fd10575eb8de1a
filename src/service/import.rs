//! Adding people from a CSV (`quartermaster import-users`): `email,name[,department[,job
//! title[,manager's email]]]`, one person per line, a header line allowed. Without `apply`
//! nothing is written: each line says what would happen. With it, each person is added in a
//! transaction of their own with its audit event, and a refused line changes nothing.

use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Operator, Permission};
use crate::domain::model::UserKind;
use crate::domain::DomainResult;
use crate::store::{directory, to_ms};

/// Lines one file may hold.
pub const MAX_IMPORT: usize = 10_000;

/// What became of one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Imported {
    Added,
    WouldAdd,
    /// Someone already has this email: nothing to do (a second run after a fix says so).
    AlreadyThere,
    Refused(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportLine {
    pub line: usize,
    pub email: String,
    pub outcome: Imported,
}

impl std::fmt::Display for ImportLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Imported::Added => write!(f, "line {}: {} added", self.line, self.email),
            Imported::WouldAdd => write!(f, "line {}: {} would be added", self.line, self.email),
            Imported::AlreadyThere => write!(f, "line {}: {} is already there", self.line, self.email),
            Imported::Refused(why) => write!(f, "line {}: {} refused: {why}", self.line, self.email),
        }
    }
}

impl Service {
    /// Add the people a CSV names (see the module); answers each line's outcome.
    #[tracing::instrument(name = "import_people", skip(self, csv), fields(%by))]
    pub async fn import_people(&self, by: &Operator<'_>, csv: &str, apply: bool) -> DomainResult<Vec<ImportLine>> {
        by.require(Permission::Administer)?;
        let mut records = crate::domain::bulk::csv_records(csv)?;
        if records.first().and_then(|(_, f)| f.first()).is_some_and(|e| e.eq_ignore_ascii_case("email")) {
            records.remove(0);
        }
        if records.len() > MAX_IMPORT {
            return Err(crate::domain::DomainError::invalid("file", format!("at most {MAX_IMPORT} people per file")));
        }
        let mut out = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (line, fields) in records {
            let email = fields.first().map(|e| e.to_lowercase()).unwrap_or_default();
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let field = |n: usize| fields.get(n).copied().unwrap_or_default();
            let outcome = self.import_one(&email, &fields, field(4), apply, &seen).await?;
            if !matches!(outcome, Imported::Refused(_)) {
                seen.push(email.clone());
            }
            out.push(ImportLine { line: usize::try_from(line).unwrap_or(usize::MAX), email, outcome });
        }
        // Newcomers get their birthright access now rather than at the next pass.
        if apply {
            if let Err(e) = self.apply_rules_to(None).await {
                tracing::error!(error = ?e, "automatic assignment after an import failed: the next pass applies it");
            }
        }
        Ok(out)
    }

    async fn import_one(
        &self,
        email: &str,
        fields: &[&str],
        manager_email: &str,
        apply: bool,
        earlier: &[String],
    ) -> DomainResult<Imported> {
        let field = |n: usize| fields.get(n).copied().unwrap_or_default();
        let (name, department, title) = (field(1), field(2), field(3));
        let refused = |why: &str| Ok(Imported::Refused(why.to_owned()));
        let parts: Vec<&str> = email.split('@').collect();
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != ',');
        if parts.len() != 2
            || !plain(parts[0])
            || !parts[1].contains('.')
            || parts[1].split('.').any(|label| !plain(label))
            || email.len() > 320
        {
            return refused("not an email address");
        }
        if name.is_empty() || name.chars().count() > 200 {
            return refused("a name (at most 200 characters) is required");
        }
        if [department, title].iter().any(|f| f.chars().count() > 200) {
            return refused("department and job title: at most 200 characters");
        }
        if earlier.iter().any(|e| e == email) {
            return refused("named twice in this file");
        }
        let mut tx = self.db.begin().await?;
        if directory::user_by_email(&mut tx, email).await?.is_some() {
            return Ok(Imported::AlreadyThere);
        }
        let manager = match manager_email {
            "" => None,
            m => match directory::user_by_email(&mut tx, m).await? {
                Some((u, _)) => Some(u.id),
                None if !apply && earlier.iter().any(|e| e.eq_ignore_ascii_case(m)) => None,
                None => return refused("the manager's email names nobody (list managers before their reports)"),
            },
        };
        if !apply {
            return Ok(Imported::WouldAdd);
        }
        let new = directory::NewUser {
            email,
            display_name: name,
            department,
            job_title: title,
            manager_id: manager,
            kind: UserKind::Member,
            connected_org_id: None,
        };
        let id = directory::insert_user(&mut tx, &new, to_ms(self.now())).await?;
        let event = AuditEvent::new(None, "user.imported", "user", id.0).after(
            json!({"email": email, "name": name, "department": department, "job_title": title, "manager": manager}),
        );
        self.commit(tx, vec![event]).await?;
        Ok(Imported::Added)
    }
}
