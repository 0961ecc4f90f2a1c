//! ListAuditEvents.

use super::Controller;
use crate::error::Result;
use flinkbroker_model::audit::{AuditFilter, AuditPage};

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
