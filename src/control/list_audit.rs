//! ListAuditEvents.

use super::Controller;
use crate::audit::{AuditFilter, AuditPage};
use crate::error::Result;

impl Controller {
    /// Lists the audit trail, newest first.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<AuditPage> {
        Ok(self.store.list_audit(filter, page_size, page_token).await?)
    }
}
