//! The audit trail on SQLite and PostgreSQL: rows of `audit_events`, appended one by one,
//! listed newest first by keyset on the row id (the page token is the URL-safe base64 of
//! the last id returned), and deleted only once older than the retention.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::{Order, Query};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use super::entities::audit_event;
use super::sea::{db_error, limited_models};
use super::{AuditTrail, SeaStore, StoreError};
use flinkbroker_model::audit::{AuditAction, AuditEvent, AuditFilter, AuditPage, NewAuditEvent};
use flinkbroker_model::job::UnixMillis;

/// The page size used when the caller asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page ListAuditEvents returns, whatever the caller asks for.
const MAX_PAGE_SIZE: u32 = 1000;

#[async_trait]
impl AuditTrail for SeaStore {
    async fn record_audit(&self, event: NewAuditEvent) -> Result<(), StoreError> {
        insert_audit(&self.db, event)
            .await
            .map_err(db_error("cannot record the audit event"))
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<AuditPage, StoreError> {
        let before = page_token.map(decode_page_token).transpose()?;
        let page_size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => Ord::min(size, MAX_PAGE_SIZE),
        };
        let mut query = audit_event::Entity::find();
        if let Some(tenant) = &filter.tenant {
            query = query.filter(audit_event::Column::Tenant.eq(tenant.as_str()));
        }
        if let Some(principal) = &filter.principal {
            query = query.filter(audit_event::Column::Principal.eq(principal.as_str()));
        }
        if let Some(action) = filter.action {
            query = query.filter(audit_event::Column::Action.eq(action.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::At.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_event::Column::At.lt(until));
        }
        if let Some(id) = before {
            query = query.filter(audit_event::Column::Id.lt(id));
        }
        let newest_first = query.order_by_desc(audit_event::Column::Id);
        let rows: Vec<audit_event::Model> =
            limited_models(&self.db, newest_first, u64::from(page_size) + 1)
                .await
                .map_err(db_error("cannot list audit events"))?;
        let has_more = rows.len() > page_size as usize;
        let events = rows
            .into_iter()
            .take(page_size as usize)
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = match events.last() {
            Some(last) if has_more => Some(URL_SAFE_NO_PAD.encode(last.id.to_string())),
            _ => None,
        };
        Ok(AuditPage {
            events,
            next_page_token,
        })
    }

    async fn expire_audit(&self, before: UnixMillis, limit: u64) -> Result<u64, StoreError> {
        let oldest = Query::select()
            .column(audit_event::Column::Id)
            .from(audit_event::Entity)
            .and_where(audit_event::Column::At.lt(before))
            .order_by(audit_event::Column::Id, Order::Asc)
            .limit(limit)
            .to_owned();
        let deleted = audit_event::Entity::delete_many()
            .filter(audit_event::Column::Id.in_subquery(oldest))
            .exec(&self.db)
            .await
            .map_err(db_error("cannot delete expired audit events"))?;
        Ok(deleted.rows_affected)
    }
}

/// Appends one event on `conn` (a transaction, to record it with what it audits).
pub(super) async fn insert_audit<C: ConnectionTrait>(
    conn: &C,
    event: NewAuditEvent,
) -> Result<(), DbErr> {
    let row = audit_event::ActiveModel {
        id: ActiveValue::NotSet,
        at: ActiveValue::Set(event.at),
        principal: ActiveValue::Set(event.principal),
        tenant: ActiveValue::Set(event.tenant),
        action: ActiveValue::Set(event.action.as_str().to_owned()),
        method: ActiveValue::Set(event.method),
        job_id: ActiveValue::Set(event.job_id),
        request_id: ActiveValue::Set(event.request_id),
        outcome: ActiveValue::Set(event.outcome),
        detail: ActiveValue::Set(event.detail),
    };
    audit_event::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn decode_page_token(token: &str) -> Result<i64, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| StoreError::InvalidPageToken)?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(StoreError::InvalidPageToken)
}

fn event_from_row(row: audit_event::Model) -> Result<AuditEvent, StoreError> {
    let action = AuditAction::parse(&row.action).ok_or_else(|| StoreError::Corrupt {
        job_id: row.job_id.clone().unwrap_or_default(),
        detail: format!("audit event {} action {:?}", row.id, row.action),
    })?;
    Ok(AuditEvent {
        id: row.id,
        at: row.at,
        principal: row.principal,
        tenant: row.tenant,
        action,
        method: row.method,
        job_id: row.job_id,
        request_id: row.request_id,
        outcome: row.outcome,
        detail: row.detail,
    })
}
