//! The actions an administrator can take on a user, as the admin area names them. Each is
//! applied with its audit row (who, what, to whom, when) in one store transaction
//! ([`crate::store::Admin::act`]).

pub use crate::store::{Action, AuditEntry as Entry};
use crate::ui::Text;

impl Action {
    /// The last segment of the action's URL: `/admin/users/{id}/<segment>`.
    pub fn path_segment(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Unbind => "unbind",
            Action::GrantAdmin => "grant-admin",
            Action::RevokeAdmin => "revoke-admin",
        }
    }

    /// Parses [`Action::path_segment`].
    pub fn from_path_segment(segment: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.path_segment() == segment)
    }

    /// The button and audit log label.
    /// Whether it takes a second step: the ones that lock someone out.
    pub fn needs_confirming(self) -> bool {
        matches!(self, Action::Disable | Action::Unbind | Action::RevokeAdmin)
    }

    /// What the page asks before it is done (for [`Action::needs_confirming`] ones).
    pub fn question(self, t: &Text) -> Option<&'static str> {
        match self {
            Action::Disable => Some(t.admin_confirm_disable),
            Action::Unbind => Some(t.admin_confirm_unbind),
            Action::RevokeAdmin => Some(t.admin_confirm_revoke),
            Action::Enable | Action::GrantAdmin => None,
        }
    }

    /// What the page says once it is done.
    pub fn done(self, t: &Text) -> &'static str {
        match self {
            Action::Disable => t.admin_done_disable,
            Action::Enable => t.admin_done_enable,
            Action::Unbind => t.admin_done_unbind,
            Action::GrantAdmin => t.admin_done_grant,
            Action::RevokeAdmin => t.admin_done_revoke,
        }
    }

    pub fn label(self, t: &Text) -> &'static str {
        match self {
            Action::Disable => t.admin_action_disable,
            Action::Enable => t.admin_action_enable,
            Action::Unbind => t.admin_action_unbind,
            Action::GrantAdmin => t.admin_action_grant,
            Action::RevokeAdmin => t.admin_action_revoke,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn codes_and_path_segments_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::from_code(action.code()), Some(action));
            assert_eq!(
                Action::from_path_segment(action.path_segment()),
                Some(action)
            );
        }
        assert_eq!(Action::from_path_segment("delete"), None);
    }
}
