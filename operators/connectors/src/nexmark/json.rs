//! Events as JSON lines in the layout of Flink's Nexmark event table (`event_type`, then
//! `person`, `auction` and `bid` objects, two of them null), with timestamps in Flink's
//! SQL format (`2026-01-01 00:00:00.000`), so that Flink's `json` format reads files of
//! them with the Nexmark DDL and views as published.

use serde_json::{json, Value};

use super::generator::Event;

/// `ms` (epoch milliseconds) as `YYYY-MM-DD HH:MM:SS.sss` in UTC.
pub fn sql_timestamp(ms: i64) -> String {
    arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
}

/// One event as a JSON object of Flink's event table.
pub fn flink_event(event: &Event) -> Value {
    let (event_type, person, auction, bid) = match event {
        Event::Person(p) => (
            0,
            json!({
                "id": p.id, "name": p.name, "emailAddress": p.email_address, "creditCard": p.credit_card,
                "city": p.city, "state": p.state, "dateTime": sql_timestamp(p.date_time), "extra": p.extra,
            }),
            Value::Null,
            Value::Null,
        ),
        Event::Auction(a) => (
            1,
            Value::Null,
            json!({
                "id": a.id, "itemName": a.item_name, "description": a.description, "initialBid": a.initial_bid,
                "reserve": a.reserve, "dateTime": sql_timestamp(a.date_time), "expires": sql_timestamp(a.expires),
                "seller": a.seller, "category": a.category, "extra": a.extra,
            }),
            Value::Null,
        ),
        Event::Bid(b) => (
            2,
            Value::Null,
            Value::Null,
            json!({
                "auction": b.auction, "bidder": b.bidder, "price": b.price, "channel": b.channel, "url": b.url,
                "dateTime": sql_timestamp(b.date_time), "extra": b.extra,
            }),
        ),
    };
    json!({ "event_type": event_type, "person": person, "auction": auction, "bid": bid })
}

#[cfg(test)]
mod tests {
    use super::super::generator::{Generator, GeneratorConfig};
    use super::*;

    #[test]
    fn events_are_written_in_flinks_layout() {
        assert_eq!(sql_timestamp(1_767_225_600_123), "2026-01-01 00:00:00.123");
        let generator = Generator::new(GeneratorConfig { base_time_ms: 1_767_225_600_000, ..Default::default() });
        let auction = flink_event(&generator.event(0));
        assert_eq!((auction["event_type"].as_i64(), auction["bid"].is_null()), (Some(1), true));
        assert_eq!(auction["auction"]["id"], 1001);
        assert_eq!(auction["auction"]["dateTime"], "2026-01-01 00:00:00.000");
        let bid = flink_event(&generator.event(2));
        assert_eq!(bid["event_type"], 2);
        assert!(bid["bid"]["url"].as_str().unwrap().starts_with("https://www.nexmark.com/"), "{bid}");
    }
}
