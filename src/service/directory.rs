//! Who is signed in, and what the navigation shows them.

use super::Service;
use crate::domain::authz::Actor;
use crate::domain::ids::UserId;
use crate::domain::DomainResult;
use crate::store::directory;
use crate::views::{DemoPerson, Viewer};

impl Service {
    /// The actor behind a session: `None` when the user is unknown or disabled (a disabled
    /// user's sessions stop working at their next request).
    pub async fn actor(&self, user: UserId) -> DomainResult<Option<Actor>> {
        let mut conn = self.db.pool().acquire().await?;
        let Some(user) = directory::user(&mut conn, user).await? else {
            return Ok(None);
        };
        if !user.is_active() {
            return Ok(None);
        }
        let roles = directory::roles(&mut conn, user.id).await?;
        Ok(Some(Actor { user, roles }))
    }

    /// What the page chrome needs: name, which areas to show, the approvals count.
    pub async fn viewer(&self, actor: &Actor) -> DomainResult<Viewer> {
        let mut conn = self.db.pool().acquire().await?;
        let pending = crate::store::requests::pending_approval_count(&mut conn, actor.id()).await?;
        let approver = pending > 0
            || directory::has_reports(&mut conn, actor.id()).await?
            || crate::store::requests::has_been_approver(&mut conn, actor.id()).await?;
        Ok(Viewer {
            id: actor.id().0,
            name: actor.user.display_name.clone(),
            email: actor.user.email.clone(),
            department: actor.user.department.clone(),
            job_title: actor.user.job_title.clone(),
            is_admin: actor.is_admin(),
            admin_area: actor.has_admin_area(),
            approver,
            pending_approvals: pending,
        })
    }

    /// The people offered by demo sign-in.
    pub async fn demo_people(&self) -> DomainResult<Vec<DemoPerson>> {
        let mut conn = self.db.pool().acquire().await?;
        let users = directory::active_users(&mut conn, 100).await?;
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let roles = directory::roles(&mut conn, u.id).await?;
            let mut names: Vec<String> = roles.iter().map(|r| r.role.as_str().replace('_', " ")).collect();
            names.sort();
            names.dedup();
            out.push(DemoPerson {
                id: u.id.0,
                name: u.display_name,
                email: u.email,
                title: u.job_title,
                department: u.department,
                roles: names,
            });
        }
        Ok(out)
    }
}
