//! The status page's connection log over the real store: scans and blocks a page at a time
//! from their tables (a time window on the indexed `ts`, newest first), and new connections
//! from the hourly roll-ups, so the cost doesn't grow with the connection rate.

use super::{StoreStatus, source_error};
use netvantage_core::{ConnsEvent, ConnsRecord};
use netvantage_server::status::{
    BlockEvent, ConnectionCounts, EventQuery, Page, ScanEvent, SourceError, TimeRange, UnixMs,
};
use netvantage_store::rollup::Tier;
use netvantage_store::{ConnsKind, ConnsLog, ConnsQuery};

fn store_range(range: TimeRange) -> netvantage_store::TimeRange {
    netvantage_store::TimeRange {
        from_unix_ms: range.from.0,
        until_unix_ms: range.to.0,
    }
}

fn scan_of(record: ConnsRecord) -> Option<ScanEvent> {
    let ConnsEvent::Scan {
        source,
        destinations,
        ports,
        closed,
    } = record.event
    else {
        return None;
    };
    Some(ScanEvent {
        id: record.id.to_string(),
        at: UnixMs(record.ts_unix_ms),
        host: record.host,
        source: source.to_string(),
        destinations: destinations.iter().map(ToString::to_string).collect(),
        ports,
        closed_ports: closed,
    })
}

fn block_of(record: ConnsRecord) -> Option<BlockEvent> {
    let ConnsEvent::Block {
        target,
        until_unix_ms,
        offenses,
    } = record.event
    else {
        return None;
    };
    Some(BlockEvent {
        id: record.id.to_string(),
        at: UnixMs(record.ts_unix_ms),
        host: record.host,
        target,
        until: UnixMs(until_unix_ms),
        offenses,
    })
}

impl StoreStatus {
    async fn page_of<T>(
        &self,
        kind: ConnsKind,
        query: &EventQuery,
        event: impl Fn(ConnsRecord) -> Option<T>,
    ) -> Result<Page<T>, SourceError> {
        // Read per request, not kept: a page that lists it is rendered anew each time.
        crate::memo::untracked();
        let store = self.store().await?;
        let page = store
            .recent(
                kind,
                &ConnsQuery {
                    range: store_range(query.range),
                    host: query.host.clone(),
                    limit: query.page.per_page,
                    offset: query.page.offset(),
                },
            )
            .await
            .map_err(source_error)?;
        Ok(Page {
            items: page.records.into_iter().filter_map(event).collect(),
            page: query.page.page,
            per_page: query.page.per_page,
            total: page.total,
        })
    }

    pub(super) async fn scan_page(
        &self,
        query: &EventQuery,
    ) -> Result<Page<ScanEvent>, SourceError> {
        self.page_of(ConnsKind::Scan, query, scan_of).await
    }

    pub(super) async fn block_page(
        &self,
        query: &EventQuery,
    ) -> Result<Page<BlockEvent>, SourceError> {
        self.page_of(ConnsKind::Block, query, block_of).await
    }

    /// The hours that overlap `range`, summed from the hourly roll-ups: at most 25 rows a
    /// (host, port) for a day, whatever the connection rate.
    pub(super) async fn hourly_connection_counts(
        &self,
        range: TimeRange,
    ) -> Result<ConnectionCounts, SourceError> {
        crate::memo::untracked();
        let store = self.store().await?;
        let from = Tier::Hour.bucket_start(range.from.0);
        let rows = store
            .conns_rollups(
                Tier::Hour,
                netvantage_store::TimeRange {
                    from_unix_ms: from,
                    until_unix_ms: range.to.0,
                },
                None,
            )
            .await
            .map_err(source_error)?;
        let mut counts = ConnectionCounts::default();
        for row in rows {
            counts.inbound += row.inbound;
            counts.outbound += row.outbound;
        }
        Ok(counts)
    }
}
